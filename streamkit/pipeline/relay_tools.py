"""A relayed request whose model calls tools: the tool loop on the relay's side.

The relay has no terminal to ask, so only tools approved in advance run
(``ToolHops``); each result also goes to the client as a ``tool_result``
frame, so a client sees what ran on its behalf.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import msgspec
import trio

from streamkit.events import ToolResult
from streamkit.pipeline.relay_outbox import Outbox
from streamkit.pipeline.stream import run_stream
from streamkit.pipeline.tool_hops import ToolHops, reply_with_tools
from streamkit.protocol.relay_frames import GenerateFrame
from streamkit.protocol.reply import Reply
from streamkit.providers.backend import Backend
from streamkit.request import GenerationRequest
from streamkit.sinks.recorder import ConversationLog


async def relayed_with_tools(
    backend: Backend,
    tools: ToolHops,
    frame: GenerateFrame,
    forward: Callable,
    log: ConversationLog | None,
    scope: trio.CancelScope,
    outbox: Outbox,
) -> Reply:
    """Replies and tool calls until the model answers, each result a frame.

    A ``cancel`` frame (or the client going away) cancels ``scope``, which
    holds every hop and every tool call of the request: what runs stops,
    an MCP call with MCP's cancellation, and the request ends cancelled.
    """

    async def stream_one(request: GenerationRequest, hop: int) -> Reply:
        consumers: list = [forward]
        if log is not None:  # the request's messages once, then each reply
            consumers.append(
                await (
                    log.record_request(request, backend)
                    if hop == 1
                    else log.reply_recorder(request, backend)
                )
            )
        return await run_stream(partial(backend.stream, request), consumers)

    def tell(result: ToolResult) -> None:
        outbox.put({"type": "tool_result", "id": frame.id, "result": msgspec.to_builtins(result)})

    with scope:
        reply, _ = await reply_with_tools(stream_one, frame.request, tools, log, tell)
        return reply
    cancelled = Reply()
    cancelled.finish_reason = "cancelled"
    return cancelled
