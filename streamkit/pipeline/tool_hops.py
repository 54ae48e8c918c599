"""Tool calls where no one is asked: batch lines and relayed requests.

The same dispatcher as ``chat``, without a terminal. A reply that asks for
tools gets them run (all calls of a reply at once) and the model is asked
again with the results, up to ``max_hops`` replies that called tools. Nothing
is printed: a batch line's record carries the final answer and a
``tool_results`` list, a relayed request gets a ``tool_result`` frame per
call. There is no one to ask, so a tool marked ``confirm`` runs only with
``--yes`` (the dispatcher's ``approve`` says so) and is refused otherwise.
MCP servers start on the first line or request that needs them and serve
every one after it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec

from streamkit.errors import ToolHopLimit
from streamkit.events import ToolResult
from streamkit.protocol.reply import Reply
from streamkit.request import GenerationRequest, Message, ToolCallRef
from streamkit.sinks.recorder import ConversationLog
from streamkit.tools.dispatch import Dispatcher

StreamOne = Callable[[GenerationRequest, int], Awaitable[Reply]]


class ToolHops(msgspec.Struct, frozen=True):
    """What a batch's lines may call, and how many replies may call tools."""

    dispatcher: Dispatcher
    max_hops: int = 8


async def reply_with_tools(
    stream_one: StreamOne,
    request: GenerationRequest,
    tools: ToolHops,
    log: ConversationLog | None,
    on_result: Callable[[ToolResult], None] | None = None,
) -> tuple[Reply, list[ToolResult]]:
    """The last reply and every tool result on the way (``ToolHopLimit`` past it).

    ``stream_one(request, hop)`` streams one reply (and logs it);
    ``on_result`` hears of each result as soon as its reply's calls are done.
    """
    await tools.dispatcher.refresh()
    request = msgspec.structs.replace(request, tools=tools.dispatcher.definitions())
    history = list(request.messages)
    ran: list[ToolResult] = []
    for hop in range(1, tools.max_hops + 2):
        reply = await stream_one(request, hop)
        calls = reply.tool_calls
        if not calls or reply.error is not None or reply.finish_reason == "cancelled":
            return reply, ran
        if hop > tools.max_hops:
            raise ToolHopLimit(
                f"the model still asked for tools after {tools.max_hops} "
                "hop(s) (--max-hops); its last calls were not run"
            )
        refs = tuple(
            ToolCallRef(c.id or f"call_{hop}_{c.index}", c.name or "", c.arguments) for c in calls
        )
        results = await tools.dispatcher.run_all(calls, hop)
        history.append(Message("assistant", reply.text, tool_calls=refs))
        for call, ref, result in zip(calls, refs, results, strict=True):
            result = msgspec.structs.replace(result, call_id=ref.id)
            ran.append(result)
            if on_result is not None:
                on_result(result)
            if log is not None:
                await log.add_tool_result(log.last_reply_id, call.arguments, result)
            history.append(Message("tool", result.content, tool_call_id=ref.id))
        request = msgspec.structs.replace(request, messages=tuple(history), tool_choice="auto")
    raise AssertionError("unreachable")


def tool_result_fields(results: list[ToolResult]) -> list[dict[str, Any]]:
    """The record's ``tool_results``: each call's id, name, source, status and content."""
    return [
        {
            "id": r.call_id,
            "name": r.name,
            "source": r.source,
            "status": r.status,
            "content": r.content,
            "hop": r.hop,
        }
        for r in results
    ]
