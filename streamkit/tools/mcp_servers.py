"""MCP servers as a tool source: started lazily, reused, stopped with the command.

The official ``mcp`` SDK is the client (its ``Client``, on AnyIO, which runs
on Trio). Each server lives in a task of the nursery ``open_servers`` opens
for the command: the task enters the SDK's client -- over our own stdio
transport (``mcp_stdio``), or Streamable HTTP -- lists the tools, says it is
ready, and then waits until the command ends, when leaving the nursery
cancels it and the client shuts the server down (shielded, bounded). Calls
come from the dispatcher's tasks; a call cancelled by its timeout or by
Ctrl-C sends MCP's cancellation notification (the SDK does, shielded).

Servers start on the first turn that needs their tools, all at once, each
within its ``start_timeout``. One that cannot start, or that dies later, is
one line on stderr and leaves the conversation without its tools; it is not
started again.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import AsyncIterator, Callable, Collection
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import anyio
import httpx2
import mcp_types
import trio
from mcp import Client, MCPError

from streamkit import __version__
from streamkit.config import McpServerSpec, ToolSpec
from streamkit.errors import one_line, redact
from streamkit.tools.mcp_config import expand, needs_confirmation, offered
from streamkit.tools.mcp_names import exposed_names
from streamkit.tools.mcp_results import McpAnswer, tool_message
from streamkit.tools.mcp_stdio import StderrTail, server_environment, stdio_transport
from streamkit.tools.registry import Tool, ToolAnswer, ToolFailed

_PAGES = 100  # of a tools/list: a server whose cursor never ends is cut here
_HTTP_TIMEOUT = httpx2.Timeout(30.0, read=300.0)
Warn = Callable[[str], None]


class Server:
    """One server's state: ``pending``, ``running``, ``failed``."""

    def __init__(self, name: str, spec: McpServerSpec) -> None:
        self.name = name
        self.spec = spec
        self.state = "pending"
        self.error: str | None = None
        self.client: Client | None = None
        self.tools: list[mcp_types.Tool] = []
        self.stderr = StderrTail()
        self.ready = trio.Event()  # set once it runs or failed
        self.scope = trio.CancelScope()
        self.secrets: list[str | None] = []
        self.http_status: int | None = None  # the last HTTP error status, to explain a failure

    def fail(self, reason: str) -> None:
        self.state = "failed"
        self.error = redact(one_line(reason, 300), self.secrets)
        self.ready.set()


class McpServers:
    """The servers of one command, and their tools for the dispatcher."""

    def __init__(
        self,
        specs: dict[str, McpServerSpec],
        nursery: trio.Nursery,
        *,
        warn: Warn,
        debug: bool = False,
    ) -> None:
        self.servers = {name: Server(name, spec) for name, spec in specs.items()}
        self._nursery = nursery
        self._warn = warn
        self._debug = debug
        self._names: dict[str, tuple[str, str]] | None = None
        self._starting = trio.Lock()  # a batch's lines ask at once: each server starts once

    async def start(self) -> None:
        """Start every server not started yet, at once; return when each runs or failed."""
        async with self._starting, trio.open_nursery() as starting:
            for server in self.servers.values():
                if server.state == "pending":
                    starting.start_soon(self._start, server)

    async def _start(self, server: Server) -> None:
        self._nursery.start_soon(self._serve, server)
        with trio.move_on_after(server.spec.start_timeout):
            await server.ready.wait()
            return
        server.scope.cancel()
        server.fail(
            f"did not answer within {server.spec.start_timeout:g} s "
            "(start_timeout)" + _last_words(server)
        )
        self._warn(_failed_line(server))

    async def tools(self, taken: Collection[str]) -> dict[str, Tool]:
        """The running servers' tools, by the names the model sees (``mcp_names``)."""
        await self.start()
        if self._names is None:  # named once: a name never changes within a command
            pairs = [
                (server.name, tool.name)
                for server in self.servers.values()
                if server.state == "running"
                for tool in server.tools
                if offered(server.spec, tool.name)
            ]
            self._names = exposed_names(pairs, taken)
        listed = {
            (server.name, tool.name): tool
            for server in self.servers.values()
            for tool in server.tools
        }
        return {
            name: self._tool(name, self.servers[server], listed[server, tool])
            for name, (server, tool) in self._names.items()
            if self.servers[server].state == "running"
        }

    def _tool(self, name: str, server: Server, tool: mcp_types.Tool) -> Tool:
        spec = ToolSpec(
            description=tool.description or tool.title or "",
            parameters=tool.input_schema,
            timeout=server.spec.timeout,
            confirm=needs_confirmation(server.spec, tool.name),
        )
        return Tool(name, spec, remote=McpTool(self, server.name, tool.name))

    async def call(self, name: str, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """One ``tools/call`` on a running server: the result as JSON (MCP's names).

        ``ToolFailed`` when the server is not running or fails the call; a
        server whose connection ended is marked failed, with one line.
        """
        server = self.servers[name]
        if server.client is None or server.state != "running":
            raise ToolFailed(f"MCP server {name!r} is not running: {server.error}")
        progress = _show_progress(f"{name}/{tool}") if sys.stderr.isatty() else None
        try:
            result = await server.client.call_tool(tool, arguments, progress_callback=progress)
        except MCPError as exc:
            if exc.code == mcp_types.CONNECTION_CLOSED:
                raise self._lost(server) from None
            raise ToolFailed(redact(one_line(exc.error.message), server.secrets)) from None
        except (
            anyio.BrokenResourceError,
            anyio.ClosedResourceError,
            anyio.EndOfStream,
            httpx2.HTTPError,
        ):
            raise self._lost(server) from None
        except (RuntimeError, ValueError) as exc:  # e.g. output not matching its schema
            raise ToolFailed(redact(one_line(exc), server.secrets)) from None
        return result.model_dump(mode="json", by_alias=True, exclude_none=True)

    def _lost(self, server: Server) -> ToolFailed:
        """A running server's connection ended: one line (once, however many calls
        were in flight), and the failure each of those calls gets."""
        if server.state == "running":
            server.fail("stopped answering" + _last_words(server))
            self._warn(_failed_line(server))
        return ToolFailed(f"MCP server {server.name!r} {server.error}")

    async def _serve(self, server: Server) -> None:
        """Run the server's client until the command ends (or the start is given up)."""
        with server.scope:
            try:
                async with AsyncExitStack() as stack:
                    client = await stack.enter_async_context(self._client(server, stack))
                    server.tools = await _list_tools(client)
                    server.client = client
                    server.state = "running"
                    server.ready.set()
                    await trio.sleep_forever()
            except* Exception as group:
                if server.state == "pending":
                    server.fail(_describe(group, server))
                    self._warn(_failed_line(server))
        if server.state == "pending":  # cancelled before it ran
            server.ready.set()

    def _client(self, server: Server, stack: AsyncExitStack) -> Client:
        spec = server.spec
        info = mcp_types.Implementation(name="streamkit", version=__version__)
        if spec.url is not None:
            headers = expand(server.name, spec.headers)
            server.secrets = list(headers.values())

            async def note_status(response: httpx2.Response) -> None:
                if response.status_code >= 400:
                    server.http_status = response.status_code

            http = httpx2.AsyncClient(
                headers=headers, timeout=_HTTP_TIMEOUT, event_hooks={"response": [note_status]}
            )
            stack.push_async_callback(http.aclose)
            from mcp.client.streamable_http import streamable_http_client

            return Client(streamable_http_client(spec.url, http_client=http), client_info=info)
        assert spec.command is not None
        env = expand(server.name, spec.env)
        server.secrets = list(env.values())
        transport = stdio_transport(
            [spec.command, *spec.args],
            server_environment(env),
            spec.cwd,
            server.stderr,
            echo=self._debug,
        )
        return Client(transport, client_info=info)


class McpTool:
    """One MCP tool, as the dispatcher runs it (``registry.RemoteTool``)."""

    def __init__(self, servers: McpServers, server: str, tool: str) -> None:
        self.servers = servers
        self.server = server
        self.tool = tool

    @property
    def source(self) -> str:
        return f"{self.server}/{self.tool}"

    async def call(self, arguments: dict[str, Any]) -> ToolAnswer:
        answer: McpAnswer = tool_message(await self.servers.call(self.server, self.tool, arguments))
        if answer.is_error:
            raise ToolFailed(answer.content or "the tool reported an error")
        return ToolAnswer(answer.content, answer.record)


@asynccontextmanager
async def open_servers(
    specs: dict[str, McpServerSpec], *, warn: Warn, debug: bool = False
) -> AsyncIterator[McpServers]:
    """The servers of a command; leaving stops every one that was started.

    The SDK logs through ``logging``, which with no handler configured prints
    warnings on stderr: its words would stand beside streamkit's one line, so
    they are kept out unless ``--debug`` asks for them.
    """
    if not debug:
        for name in ("mcp", "httpx2"):
            logger = logging.getLogger(name)
            logger.addHandler(logging.NullHandler())
            logger.propagate = False
    async with trio.open_nursery() as nursery:
        servers = McpServers(specs, nursery, warn=warn, debug=debug)
        try:
            yield servers
        finally:
            nursery.cancel_scope.cancel()


async def _list_tools(client: Client) -> list[mcp_types.Tool]:
    tools: list[mcp_types.Tool] = []
    cursor: str | None = None
    for _ in range(_PAGES):
        page = await client.list_tools(cursor=cursor)
        tools.extend(page.tools)
        cursor = page.next_cursor
        if cursor is None:
            break
    return tools


def _show_progress(label: str) -> Callable[[float, float | None, str | None], Any]:
    async def show(progress: float, total: float | None, message: str | None) -> None:
        amount = f"{progress:g}/{total:g}" if total else f"{progress:g}"
        print(
            f"streamkit: {label}: {amount}" + (f" {message}" if message else ""),
            file=sys.stderr,
            flush=True,
        )

    return show


def _describe(group: BaseExceptionGroup, server: Server) -> str:
    """Why a server did not start, in one line (its own last stderr line if it has one)."""
    leaf: BaseException = group
    while isinstance(leaf, BaseExceptionGroup):
        leaf = leaf.exceptions[0]
    spec = server.spec
    if isinstance(leaf, OSError) and spec.command is not None:
        return f"cannot run {shlex.join([spec.command])}: {leaf.strerror or leaf}"
    if isinstance(leaf, httpx2.HTTPStatusError):
        return f"{spec.url} answered HTTP {leaf.response.status_code}"
    if isinstance(leaf, httpx2.HTTPError):
        return f"cannot connect to {spec.url}: {one_line(leaf)}"
    if isinstance(leaf, MCPError) and server.http_status is not None:
        return f"{spec.url} answered HTTP {server.http_status}"
    if isinstance(leaf, MCPError):
        return f"{one_line(leaf.error.message)}{_last_words(server)}"
    if isinstance(leaf, anyio.EndOfStream | anyio.BrokenResourceError | anyio.ClosedResourceError):
        return "closed the connection" + _last_words(server)
    return f"{type(leaf).__name__}: {one_line(leaf)}{_last_words(server)}"


def _last_words(server: Server) -> str:
    line = server.stderr.last_line()
    return f" (its stderr: {one_line(line, 200)})" if line else ""


def _failed_line(server: Server) -> str:
    return f"MCP server {server.name!r} {server.error}; going on without its tools"


def server_table(servers: McpServers) -> list[dict[str, Any]]:
    """Each server with its state and tools, for ``streamkit mcp list``."""
    rows = []
    for server in servers.servers.values():
        tools = [
            {
                "name": tool.name,
                "description": one_line(tool.description or "", 100),
                "offered": offered(server.spec, tool.name),
            }
            for tool in server.tools
        ]
        rows.append(
            {"name": server.name, "state": server.state, "error": server.error, "tools": tools}
        )
    return rows
