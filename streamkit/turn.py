"""One reply streamed to stdout: the step shared by ``complete`` and ``chat``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial

import trio

from streamkit.backend import Backend
from streamkit.pipeline import Consumer, Producer, run_stream
from streamkit.reply import Reply
from streamkit.request import GenerationRequest
from streamkit.sinks.printer import Printer
from streamkit.sinks.stats import StatsRecorder
from streamkit.sinks.store import ConversationLog


async def stream_turn(
    backend: Backend,
    request: GenerationRequest,
    *,
    stop: trio.CancelScope,
    events: bool = False,
    stats: bool = False,
    log: ConversationLog | None = None,
    prompt_text: str | None = None,
) -> Reply:
    """Stream one reply to stdout (text, or JSON event lines) and return it.

    The text of an interrupted or failed reply is printed as far as it was
    received, and a text reply always ends on a newline, so the shell prompt
    or the error line that follows starts on a line of its own. ``stop`` is
    the scope that interrupts the reply (see ``run_stream``). With ``stats``,
    a line with time to first token and tokens/s follows on stderr.
    With ``log``, the prompt (``prompt_text``) and the reply, as it streams,
    are written to the conversation log.
    """
    consumers: list[Consumer] = []
    if log is not None:
        if prompt_text is not None:
            await log.add_message("user", prompt_text)
        consumers.append(await log.reply_recorder(request, backend))
    return await print_stream(partial(backend.stream, request), stop=stop, events=events,
                              stats=stats, consumers=consumers)


async def print_stream(
    produce: Producer,
    *,
    stop: trio.CancelScope,
    events: bool = False,
    stats: bool = False,
    consumers: Sequence[Consumer] = (),
) -> Reply:
    """Stream what ``produce`` sends to stdout (and ``consumers``); see ``stream_turn``."""
    out = sys.stdout.buffer
    printer = Printer(out, events=events)
    recorder = StatsRecorder() if stats else None
    everyone = [printer, *([recorder] if recorder is not None else []), *consumers]
    reply = await run_stream(produce, everyone, stop=stop)
    if printer.wrote_text and not printer.ends_with_newline:
        out.write(b"\n")
        out.flush()
    if recorder is not None:
        print(f"streamkit: {recorder.summary()}", file=sys.stderr, flush=True)
    return reply
