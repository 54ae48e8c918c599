"""Running the tool calls of one reply: validate, approve, run concurrently, cap.

Every call yields exactly one ``ToolResult`` -- the model always sees an
answer for each call it made: a call with no name, arguments that are not a
JSON object or do not match the tool's schema, an unknown tool, a refusal,
a failure or a timeout all become an error result instead of a crash.

The calls of one reply run concurrently in one nursery, each under its
timeout, and a call ends when its timeout passes or a signal cancels it:
command tools are stopped with their whole process group (``commands``),
a sync Python tool's thread is abandoned. A timed-out call's result keeps
what the tool wrote before it was stopped. Output beyond ``output_cap`` bytes
is cut, with a marker saying how much was dropped.

Besides its fixed tools, a dispatcher may have sources whose tools are known
only once asked (MCP servers, started on the first turn that needs them):
``refresh()`` takes in what they offer before each turn, and a source that
lost its tools (a server that died) takes them away.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Collection, Sequence
from functools import partial
from typing import Any, Protocol

import msgspec
import trio

from streamkit.events import ToolResult
from streamkit.protocol.toolcalls import ToolCall
from streamkit.tools.commands import CappedOutput, run_command
from streamkit.tools.registry import Tool, ToolAnswer, ToolFailed, is_async

DEFAULT_TIMEOUT = 30.0  # seconds a tool may run
DEFAULT_OUTPUT_CAP = 16 * 1024  # bytes of a tool's answer the model gets

Approver = Callable[[Tool, dict[str, Any]], Awaitable[bool]]


class ToolSource(Protocol):
    """Tools that are known only once asked for (an MCP server's)."""

    async def tools(self, taken: Collection[str]) -> dict[str, Tool]:
        """The tools offered now, named apart from ``taken`` (the fixed tools' names)."""
        ...


class Dispatcher:
    """Runs tool calls against a set of tools."""

    def __init__(
        self,
        tools: dict[str, Tool],
        *,
        approve: Approver,
        timeout: float = DEFAULT_TIMEOUT,
        output_cap: int = DEFAULT_OUTPUT_CAP,
        sources: Sequence[ToolSource] = (),
    ) -> None:
        self.fixed = dict(tools)
        self.tools = dict(tools)
        self.approve = approve
        self.timeout = timeout
        self.output_cap = output_cap
        self.sources = tuple(sources)
        self._asking = trio.Lock()  # one confirmation prompt at a time

    async def refresh(self) -> None:
        """Take in what the sources offer now (the first time, this starts them)."""
        tools = dict(self.fixed)
        for source in self.sources:
            tools.update(await source.tools(self.fixed.keys()))
        self.tools = tools

    def definitions(self) -> tuple[dict[str, Any], ...]:
        return tuple(tool.definition() for tool in self.tools.values())

    async def run_all(self, calls: list[ToolCall], hop: int) -> list[ToolResult]:
        """Results for ``calls``, in the order of the calls, run concurrently."""
        results: list[ToolResult | None] = [None] * len(calls)

        async def run_into(index: int, call: ToolCall) -> None:
            results[index] = await self.run(call, hop)

        async with trio.open_nursery() as nursery:
            for index, call in enumerate(calls):
                nursery.start_soon(run_into, index, call)
        return [result for result in results if result is not None]

    async def run(self, call: ToolCall, hop: int) -> ToolResult:
        started = trio.current_time()

        tool = self.tools.get(call.name or "")
        source = tool.remote.source if tool is not None and tool.remote is not None else None

        def result(status: str, content: str, record: str | None = None) -> ToolResult:
            return ToolResult(
                call.id,
                call.name,
                status,
                content,
                round(trio.current_time() - started, 6),
                hop,
                source,
                record,
            )

        problem = call.problem()
        if problem is not None:
            return result("invalid", problem)
        if tool is None:
            return result("invalid", f"there is no tool named {call.name!r}")
        arguments = call.parsed_arguments()
        import jsonschema  # ~20 ms to import: only once a tool is actually called

        try:
            jsonschema.validate(arguments, tool.spec.parameters)
        except jsonschema.ValidationError as exc:
            return result("invalid", f"the arguments do not match the schema: {exc.message}")
        except jsonschema.SchemaError as exc:
            return result("error", f"the tool's own schema is broken: {exc.message}")
        if tool.spec.confirm:
            async with self._asking:
                if not await self.approve(tool, arguments):
                    return result("refused", "the user did not approve this tool call")
        limit = tool.spec.timeout or self.timeout
        out = CappedOutput(self.output_cap)
        with trio.move_on_after(limit):
            try:
                answer = await self._execute(tool, arguments, out)
            except ToolFailed as exc:
                return result("error", _cap(str(exc), self.output_cap))
            return result("ok", answer.content, answer.record)
        note = f"the tool did not finish within {limit:g} s"
        if written := out.text():  # what a command wrote before it was stopped
            note = written.rstrip("\n") + f"\n[{note}]"
        return result("timeout", note)

    async def _execute(
        self, tool: Tool, arguments: dict[str, Any], out: CappedOutput
    ) -> ToolAnswer:
        if tool.remote is not None:
            answer = await tool.remote.call(arguments)
            return ToolAnswer(_cap(answer.content, self.output_cap), answer.record)
        if tool.function is not None:
            return ToolAnswer(_cap(await _call_python(tool.function, arguments), self.output_cap))
        assert tool.spec.command is not None
        payload = json.dumps(arguments)
        argv = [*tool.spec.command]
        if tool.spec.arguments == "argument":
            argv.append(payload)
            stdin = b""
        else:
            stdin = payload.encode()
        return ToolAnswer(await run_command(argv, stdin, out))


async def _call_python(function: Callable[..., Any], arguments: dict[str, Any]) -> str:
    try:
        if is_async(function):
            value = await function(**arguments)
        else:
            # A thread cannot be stopped, so one that outlives its timeout or
            # Ctrl-C is abandoned: the call ends at once, the thread finishes
            # (or dies with the process, as a daemon) unobserved.
            value = await trio.to_thread.run_sync(
                partial(function, **arguments), abandon_on_cancel=True
            )
    except Exception as exc:
        raise ToolFailed(f"{type(exc).__name__}: {exc}") from None
    if isinstance(value, str):
        return value
    try:
        return msgspec.json.encode(value).decode()
    except (TypeError, msgspec.EncodeError):
        return str(value)


def _cap(text: str, cap: int) -> str:
    data = text.encode()
    if len(data) <= cap:
        return text
    return (
        data[:cap].decode("utf-8", "ignore") + f"\n[output truncated: {len(data) - cap} more bytes]"
    )
