"""Which MCP servers a run uses: ``[mcp.NAME]`` tables, ``mcpServers`` JSON files, ``--mcp``.

Nothing here starts a server or imports the ``mcp`` SDK: a bad table, file
or name is a usage error (exit 2) before anything runs. A server is started
only when a run picks it -- ``--mcp NAME``, or every server of a file given
with ``--mcp-config FILE`` -- so a configured server costs nothing until it
is asked for.

``--mcp-config`` reads the ``{"mcpServers": {NAME: {...}}}`` shape other MCP
clients write, so a user's existing file works as it is: ``command``,
``args``, ``env``, ``cwd``, ``url``, ``headers``, ``type`` and ``disabled``
are read, and other clients' own keys are ignored.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import msgspec

from streamkit.config import McpServerSpec
from streamkit.errors import UsageError

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_HTTP_TYPES = frozenset({"http", "streamable-http", "streamableHttp", "streamable_http"})
_JSON_KEYS = ("command", "args", "env", "cwd", "url", "headers")


def load_mcp_json(path: Path) -> dict[str, McpServerSpec]:
    """The servers of an ``mcpServers`` JSON file."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise UsageError(f"cannot read MCP config {path}: {exc.strerror}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"MCP config {path}: not JSON ({exc})") from None
    servers = raw.get("mcpServers") if isinstance(raw, dict) else None
    if not isinstance(servers, dict):
        raise UsageError(f'MCP config {path}: no "mcpServers" object')
    return {name: _from_json(path, name, entry) for name, entry in servers.items()}


def _from_json(path: Path, name: str, entry: Any) -> McpServerSpec:
    if not isinstance(entry, dict):
        raise UsageError(f"MCP config {path}: server {name!r} is not an object")
    kind = entry.get("type")
    if kind == "sse":
        raise UsageError(
            f"MCP config {path}: server {name!r} uses the old SSE transport; "
            "give its Streamable HTTP URL instead"
        )
    if kind not in (None, "stdio", *_HTTP_TYPES):
        raise UsageError(f"MCP config {path}: server {name!r} has unknown type {kind!r}")
    fields = {key: entry[key] for key in _JSON_KEYS if entry.get(key) is not None}
    fields["enabled"] = not entry.get("disabled", False)
    try:
        return msgspec.convert(fields, McpServerSpec)
    except msgspec.ValidationError as exc:
        raise UsageError(f"MCP config {path}: server {name!r}: {exc}") from None


def check_server(name: str, spec: McpServerSpec) -> None:
    """A server must say how to reach it: a command, or a URL (not both)."""
    if (spec.command is None) == (spec.url is None):
        raise UsageError(f"MCP server {name!r}: give exactly one of `command` or `url`")
    if spec.command is not None and not spec.command.strip():
        raise UsageError(f"MCP server {name!r}: `command` is empty")
    if spec.url is not None and not spec.url.startswith(("http://", "https://")):
        raise UsageError(f"MCP server {name!r}: `url` must start with http:// or https://")


def select_servers(
    names: list[str], files: list[Path], configured: dict[str, McpServerSpec]
) -> dict[str, McpServerSpec]:
    """The servers of this run: ``names`` (from the files or the config), else all of ``files``.

    With neither, no server. A name that is unknown or whose server is
    disabled is a usage error; so is a server without a way to reach it.
    """
    from_files: dict[str, McpServerSpec] = {}
    for path in files:
        from_files.update(load_mcp_json(path))
    known = {**configured, **from_files}
    if names:
        chosen: dict[str, McpServerSpec] = {}
        for name in names:
            if name not in known:
                listed = ", ".join(sorted(known)) or "none configured"
                raise UsageError(f"unknown MCP server {name!r} (known: {listed})")
            if not known[name].enabled:
                raise UsageError(f"MCP server {name!r} is disabled (enabled = false)")
            chosen[name] = known[name]
    else:
        chosen = {name: spec for name, spec in from_files.items() if spec.enabled}
    for name, spec in chosen.items():
        check_server(name, spec)
    return chosen


def expand(name: str, values: dict[str, str], env: dict[str, str] | None = None) -> dict[str, str]:
    """``values`` with each ``${VAR}`` read from the environment.

    A variable that is not set is a usage error naming the variable, never
    showing a value (the values are often tokens).
    """
    env = dict(os.environ) if env is None else env

    def value_of(match: re.Match[str]) -> str:
        variable = match.group(1)
        if variable not in env:
            raise UsageError(f"MCP server {name!r}: environment variable {variable} is not set")
        return env[variable]

    return {key: _VARIABLE.sub(value_of, value) for key, value in values.items()}


def needs_confirmation(spec: McpServerSpec, tool: str) -> bool:
    """``confirm = true`` asks for every tool of the server; a list, for those tools."""
    return spec.confirm if isinstance(spec.confirm, bool) else tool in spec.confirm


def offered(spec: McpServerSpec, tool: str) -> bool:
    """Whether ``allow`` and ``deny`` let the model see ``tool``."""
    return (spec.allow is None or tool in spec.allow) and tool not in spec.deny
