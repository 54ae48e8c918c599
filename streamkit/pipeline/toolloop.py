"""A chat turn with tools: reply, run the calls it asks for, feed results back, repeat.

Tool calls are complete only when the reply's choice finishes, so the calls
run after each reply's stream (through the same printer and log), all calls of
one reply concurrently. The loop ends when a reply asks for no tools, when a
reply fails or is interrupted, or at ``max_hops`` replies that still asked
for tools -- then ``ToolHopLimit`` (exit 9), after a notice in the log.
"""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractContextManager

import msgspec
import trio

from streamkit.errors import ToolHopLimit, one_line
from streamkit.events import ToolResult, encode_event_line
from streamkit.pipeline.turn import stream_turn
from streamkit.protocol.reply import Reply
from streamkit.providers.backend import Backend
from streamkit.request import GenerationRequest, Message, ToolCallRef
from streamkit.sinks.printer import Display, ReasoningView
from streamkit.sinks.recorder import ConversationLog
from streamkit.tools.dispatch import Dispatcher

Guard = Callable[[], AbstractContextManager[trio.CancelScope]]


async def run_with_tools(
    backend: Backend,
    request: GenerationRequest,
    history: list[Message],
    *,
    dispatcher: Dispatcher,
    max_hops: int,
    guard: Guard,
    events: bool,
    stats: bool,
    log: ConversationLog | None,
    prompt_text: str | None,
    fit: Callable[[list[Message]], Awaitable[Sequence[Message]]],
    reasoning: ReasoningView | None = None,
    display: Display = "plain",
) -> Reply:
    """Run replies and tool calls until the model answers; ``history`` grows in place.

    ``guard()`` gives the cancel scope of each step (Ctrl-C, ``--timeout``);
    ``fit(history)`` is what each later hop sends of the grown history (fitted
    to the context window, as the first request was).
    """
    with guard() as scope, scope:
        await dispatcher.refresh()  # MCP servers start on the first turn that needs them
    if scope.cancelled_caught:  # interrupted while servers started: no reply at all
        reply = Reply()
        reply.finish_reason = "cancelled"
        return reply
    request = msgspec.structs.replace(request, tools=dispatcher.definitions())
    for hop in range(1, max_hops + 2):
        with guard() as scope:
            reply = await stream_turn(
                backend,
                request,
                stop=scope,
                events=events,
                stats=stats,
                log=log,
                prompt_text=prompt_text,
                reasoning=reasoning,
                display=display,
            )
        prompt_text = None  # the user's message is logged once
        calls = reply.tool_calls
        if not calls or reply.error is not None or reply.finish_reason == "cancelled":
            return reply
        if hop > max_hops:
            notice = (
                f"the model still asked for tools after {max_hops} hop(s) "
                "(--max-hops); its last calls were not run"
            )
            if log is not None:
                await log.add_message("system", f"[streamkit] {notice}")
            raise ToolHopLimit(notice)
        refs = tuple(
            ToolCallRef(c.id or f"call_{hop}_{c.index}", c.name or "", c.arguments) for c in calls
        )
        with guard() as scope, scope:
            results = await dispatcher.run_all(calls, hop)
        if scope.cancelled_caught:
            return reply  # interrupted while tools ran: their processes are gone
        history.append(Message("assistant", reply.text, tool_calls=refs))
        for call, ref, result in zip(calls, refs, results, strict=True):
            result = msgspec.structs.replace(result, call_id=ref.id)
            _show(result, call.arguments, events)
            if log is not None:
                await log.add_tool_result(log.last_reply_id, call.arguments, result)
            history.append(Message("tool", result.content, tool_call_id=ref.id))
        # A forced tool_choice asks for the first call only; after that the
        # model decides, or it could never give its answer.
        request = msgspec.structs.replace(
            request, messages=tuple(await fit(history)), tool_choice="auto"
        )
    raise AssertionError("unreachable")


def _show(result: ToolResult, arguments: str, events: bool) -> None:
    """``--events``: a ``tool_result`` line; otherwise one line on stderr."""
    if events:
        sys.stdout.buffer.write(encode_event_line(result))
        sys.stdout.buffer.flush()
        return
    mark = "" if result.status == "ok" else f" [{result.status}]"
    print(
        f"streamkit: tool {result.name}({one_line(arguments, 200)}) -> "
        f"{one_line(result.content, 120)}{mark}",
        file=sys.stderr,
        flush=True,
    )
