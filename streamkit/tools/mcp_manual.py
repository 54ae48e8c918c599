"""MCP servers by hand: what ``streamkit mcp list`` and ``streamkit mcp call`` do.

Here reaching the server is the job, so a server that fails is the
command's error (``ToolServerError``, exit 13), not a warning. The call goes
through the same checks as a model's: the arguments are validated against
the tool's ``inputSchema`` before anything is sent.
"""

from __future__ import annotations

from typing import Any

import trio

from streamkit.config import McpServerSpec
from streamkit.errors import RequestTimeout, ToolServerError, UsageError
from streamkit.tools.dispatch import DEFAULT_TIMEOUT
from streamkit.tools.mcp_servers import open_servers, server_table
from streamkit.tools.registry import ToolFailed


def _quiet(line: str) -> None:
    """Failures are in the table (or the error) instead of on stderr."""


async def list_servers(specs: dict[str, McpServerSpec]) -> list[dict[str, Any]]:
    """Every server of ``specs`` with its state and tools; the enabled ones are started."""
    enabled = {name: spec for name, spec in specs.items() if spec.enabled}
    async with open_servers(enabled, warn=_quiet) as servers:
        await servers.start()
        rows = {row["name"]: row for row in server_table(servers)}
    disabled = {"state": "disabled", "error": None, "tools": []}
    return [rows.get(name, {"name": name, **disabled}) for name in specs]


async def call_tool(
    name: str, spec: McpServerSpec, tool: str, arguments: dict[str, Any]
) -> dict[str, Any]:
    """One call of ``tool`` on server ``name``, within the server's ``timeout``
    (``--tool-timeout``'s default otherwise); its result as MCP's JSON."""
    import jsonschema

    async with open_servers({name: spec}, warn=_quiet) as servers:
        await servers.start()
        server = servers.servers[name]
        if server.state != "running":
            raise ToolServerError(f"MCP server {name!r} {server.error}")
        listed = {entry.name: entry for entry in server.tools}
        if tool not in listed:
            raise UsageError(
                f"MCP server {name!r} has no tool {tool!r} (tools: {', '.join(listed) or 'none'})"
            )
        try:
            jsonschema.validate(arguments, listed[tool].input_schema)
        except jsonschema.ValidationError as exc:
            raise UsageError(f"the arguments do not match {tool}'s schema: {exc.message}") from None
        except jsonschema.SchemaError as exc:
            raise ToolServerError(f"{tool}'s own schema is broken: {exc.message}") from None
        limit = spec.timeout or DEFAULT_TIMEOUT
        with trio.move_on_after(limit):
            try:
                return await servers.call(name, tool, arguments)
            except ToolFailed as exc:
                raise ToolServerError(str(exc)) from None
    raise RequestTimeout(f"{name}/{tool} did not finish within {limit:g} s")
