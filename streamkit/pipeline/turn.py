"""One reply streamed to stdout: the step shared by ``complete`` and ``chat``."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from functools import partial
from typing import Any

import trio

from streamkit.events import StreamError
from streamkit.pipeline.command import report_log_failure
from streamkit.pipeline.stream import Consumer, Producer, run_stream
from streamkit.protocol.reply import Reply
from streamkit.protocol.structured import PartialTracker, check_reply
from streamkit.providers.backend import Backend
from streamkit.request import GenerationRequest
from streamkit.sinks.printer import Display, Printer, ReasoningView
from streamkit.sinks.recorder import ConversationLog
from streamkit.sinks.stats import StatsRecorder


async def stream_turn(
    backend: Backend,
    request: GenerationRequest,
    *,
    stop: trio.CancelScope,
    events: bool = False,
    stats: bool = False,
    log: ConversationLog | None = None,
    prompt_text: str | None = None,
    reasoning: ReasoningView | None = None,
    display: Display = "plain",
) -> Reply:
    """Stream one reply to stdout (text, or JSON event lines) and return it.

    The text of an interrupted or failed reply is printed as far as it was
    received, and a text reply always ends on a newline, so the shell prompt
    or the error line that follows starts on a line of its own. ``stop`` is
    the scope that interrupts the reply (see ``run_stream``). With ``stats``,
    a line with time to first token and tokens/s follows on stderr.
    With ``log``, the prompt (``prompt_text``) and the reply, as it streams,
    are written to the conversation log; if the log fails, its one warning
    line follows the reply. ``display`` says how the text is shown (see
    ``Display``).
    """
    consumers: list[Consumer] = []
    if log is not None:
        if prompt_text is not None:
            await log.add_message("user", prompt_text)
        consumers.append(await log.reply_recorder(request, backend))
    schema = request.options.schema
    partials = PartialTracker() if schema is not None and events else None
    reply = await print_stream(
        partial(backend.stream, request),
        stop=stop,
        events=events,
        stats=stats,
        consumers=consumers,
        partials=partials,
        reasoning=reasoning,
        display=display,
    )
    if log is not None:
        report_log_failure()
    if schema is not None and reply.error is None and reply.finish_reason != "cancelled":
        _check_structured(reply, schema)
    return reply


def _check_structured(reply: Reply, schema: dict[str, Any]) -> None:
    """A reply asked for with a schema must validate: if not, that is its error."""
    _, mismatch = check_reply(reply.text, schema)
    if mismatch is not None:
        reply.error = StreamError("schema", mismatch)
    elif reply.finish_reason == "length":
        print(
            "streamkit: the reply reached its token limit and was closed early to stay "
            "valid (truncated)",
            file=sys.stderr,
            flush=True,
        )


async def print_stream(
    produce: Producer,
    *,
    stop: trio.CancelScope,
    events: bool = False,
    stats: bool = False,
    consumers: Sequence[Consumer] = (),
    partials: PartialTracker | None = None,
    reasoning: ReasoningView | None = None,
    display: Display = "plain",
) -> Reply:
    """Stream what ``produce`` sends to stdout (and ``consumers``); see ``stream_turn``."""
    out = sys.stdout.buffer
    printer: Printer | None = None
    if display == "markdown" and not events:
        from streamkit.sinks.markdown import MarkdownPrinter  # rich: terminals only

        printer = MarkdownPrinter(out, reasoning=reasoning)
    elif display != "none":
        printer = Printer(out, events=events, partials=partials, reasoning=reasoning)
    recorder = StatsRecorder() if stats else None
    everyone = [
        *([printer] if printer is not None else []),
        *([recorder] if recorder is not None else []),
        *consumers,
    ]
    reply = await run_stream(produce, everyone, stop=stop)
    if printer is not None:
        printer.end()
    if recorder is not None:
        print(f"streamkit: {recorder.summary()}", file=sys.stderr, flush=True)
    return reply
