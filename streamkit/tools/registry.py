"""The tool registry: what each tool is, what it accepts, and how it runs.

Tools come from ``[tools.NAME]`` tables, in the config file or in a file
given with ``--tools FILE``::

    [tools.weather]
    description = "Current weather for a city"
    parameters = { type = "object", properties = { city = { type = "string" } },
                   required = ["city"] }
    command = ["weather-cli", "--json"]   # run directly, never through a shell
    arguments = "stdin"                   # or "argument": JSON as the last argv item
    timeout = 10                          # seconds (default: --tool-timeout)
    confirm = true                        # ask before each run

    [tools.lookup]
    description = "Look a word up"
    parameters = { type = "object", properties = { word = { type = "string" } } }
    python = "mypackage.tools:lookup"     # called with the arguments as keywords

MCP servers' tools (``tools.mcp_servers``) are ``Tool`` values too, run by
their ``remote``: the dispatcher treats every tool alike.

A command tool gets the arguments as a JSON object on stdin (or as its last
argument) and answers on stdout; a non-zero exit status is an error result.
It runs in a session of its own: once it exits, times out or the command is
interrupted, whatever is left of its process group is stopped.
A Python tool returns a string, or any JSON-encodable value.
"""

from __future__ import annotations

import importlib
import inspect
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from streamkit.config import ToolSpec
from streamkit.errors import UsageError


class ToolFailed(Exception):
    """The tool ran and failed; the message goes back to the model."""


class ToolAnswer(msgspec.Struct, frozen=True):
    """A remote tool's answer: what the model gets, and what the log keeps when that is more.

    An MCP image reaches the model as a line saying its type and size; the
    log keeps its data too (``record``).
    """

    content: str
    record: str | None = None


class RemoteTool(Protocol):
    """A tool that runs elsewhere (an MCP server's), called with checked arguments."""

    @property
    def source(self) -> str:
        """Where the call goes, for the log: ``SERVER/TOOL``."""
        ...

    async def call(self, arguments: dict[str, Any]) -> ToolAnswer:
        """Run the tool; ``ToolFailed`` when it reports an error or cannot be reached."""
        ...


class Tool(msgspec.Struct, frozen=True):
    """A runnable tool: its spec, and the Python callable or the remote tool if it is one."""

    name: str
    spec: ToolSpec
    function: Callable[..., Any] | None = None
    remote: RemoteTool | None = None

    def definition(self) -> dict[str, Any]:
        """The OpenAI ``tools`` entry the model sees."""
        return {
            "type": "function",
            "function": {
                "name": self.name,
                "description": self.spec.description,
                "parameters": self.spec.parameters,
            },
        }


class _ToolsFile(msgspec.Struct):
    tools: dict[str, ToolSpec] = {}


def tool_from_spec(name: str, spec: ToolSpec) -> Tool:
    """Check a spec and resolve its callable; a bad spec is a usage error."""
    if (spec.command is None) == (spec.python is None):
        raise UsageError(f"tool {name!r}: give exactly one of `command` or `python`")
    if spec.command is not None and not spec.command:
        raise UsageError(f"tool {name!r}: `command` is empty")
    function = _import_callable(name, spec.python) if spec.python else None
    return Tool(name, spec, function)


def _import_callable(name: str, target: str) -> Callable[..., Any]:
    module_name, _, attribute = target.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise UsageError(f"tool {name!r}: cannot import {target!r}: {exc}") from None
    if not callable(function):
        raise UsageError(f"tool {name!r}: {target!r} is not callable")
    return function


def load_tools_file(path: Path) -> dict[str, ToolSpec]:
    """The ``[tools.*]`` tables of a TOML file."""
    try:
        raw = tomllib.loads(path.read_text("utf-8"))
        return msgspec.convert(raw, _ToolsFile).tools
    except OSError as exc:
        raise UsageError(f"cannot read tools file {path}: {exc.strerror}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, msgspec.ValidationError) as exc:
        raise UsageError(f"tools file {path}: {exc}") from None


def select_tools(
    names: list[str],
    files: list[Path],
    configured: dict[str, ToolSpec],
    builtins: dict[str, Tool],
) -> dict[str, Tool]:
    """The tools offered in this run: every tool of ``files``, plus ``names``.

    A name is looked up in the files, then the config file, then the built-ins.
    """
    from_files: dict[str, ToolSpec] = {}
    for path in files:
        from_files.update(load_tools_file(path))
    chosen = {name: tool_from_spec(name, spec) for name, spec in from_files.items()}
    for name in names:
        if name in chosen:
            continue
        if name in configured:
            chosen[name] = tool_from_spec(name, configured[name])
        elif name in builtins:
            chosen[name] = builtins[name]
        else:
            known = ", ".join(sorted({*configured, *builtins})) or "none"
            raise UsageError(f"unknown tool {name!r} (known: {known})")
    return chosen


def is_async(function: Callable[..., Any]) -> bool:
    return inspect.iscoroutinefunction(function)
