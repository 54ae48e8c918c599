"""One reply streamed to stdout: the step shared by ``complete`` and ``chat``."""

from __future__ import annotations

import sys
from functools import partial

import trio

from streamkit.backend import Backend
from streamkit.pipeline import run_stream
from streamkit.reply import Reply
from streamkit.request import GenerationRequest
from streamkit.sinks.printer import Printer
from streamkit.sinks.stats import StatsRecorder


async def stream_turn(
    backend: Backend,
    request: GenerationRequest,
    *,
    stop: trio.CancelScope,
    events: bool = False,
    stats: bool = False,
) -> Reply:
    """Stream one reply to stdout (text, or JSON event lines) and return it.

    The text of an interrupted or failed reply is printed as far as it was
    received, and a text reply always ends on a newline, so the shell prompt
    or the error line that follows starts on a line of its own. ``stop`` is
    the scope that interrupts the reply (see ``run_stream``). With ``stats``,
    a line with time to first token and tokens/s follows on stderr.
    """
    out = sys.stdout.buffer
    printer = Printer(out, events=events)
    recorder = StatsRecorder()
    consumers = [printer, recorder] if stats else [printer]
    reply = await run_stream(partial(backend.stream, request), consumers, stop=stop)
    if printer.wrote_text and not printer.ends_with_newline:
        out.write(b"\n")
        out.flush()
    if stats:
        print(f"streamkit: {recorder.summary()}", file=sys.stderr, flush=True)
    return reply
