"""The printer: the consumer that writes a reply to stdout.

Text mode writes the first text at once (time to first token is what a user
feels), then coalesces: pending text is written when 16 chunks have piled up
or 50 ms have passed since the last write, and at the end. A fast stream thus
costs one ``write`` per ~16 tokens instead of one per token, and a slow one
still appears live.

Events mode (``--events``) writes every event as a JSON line instead, for
pipelines; lines are coalesced the same way.

A reasoning model's thinking (``reasoning`` events) is never part of the
answer: on a terminal it comes first, dim, and a blank line separates it
from the answer; elsewhere it goes to stderr, and only when asked for, so
stdout in a pipeline carries the answer alone (``ReasoningView``).

Writes are plain blocking writes to the binary stdout. A pipe that does not
drain therefore slows the printer, then (bounded channels) the producer: that
is the documented backpressure of the printer.

A write that fails (a full disk, an I/O error; not a closed pipe, which ends
the command quietly) stops the printing, not the reply: the printer drains
the rest unwritten, so the other consumers -- the log -- keep all of it, and
``end`` raises the failure as an ``OutputError`` once the stream is done.
What reached stdout before the failure stays there.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import BinaryIO, Literal

import trio

from streamkit.errors import OutputError
from streamkit.events import Batch, ReasoningDelta, TextDelta, encode_event_line, is_reply_event
from streamkit.protocol.structured import PartialTracker

FLUSH_INTERVAL = 0.05  # seconds
FLUSH_CHUNKS = 16
DIM, RESET = b"\x1b[2m", b"\x1b[0m"

# How the reply's text reaches stdout: as it came, drawn as Markdown (a terminal,
# ``sinks.markdown``), or not at all (``--extract`` prints a part of it afterwards).
Display = Literal["plain", "markdown", "none"]


def text_display(*, markdown: bool) -> Display:
    """Markdown when asked for and stdout is a terminal that takes colour (no
    ``NO_COLOR``); else the text as it came, byte for byte."""
    if markdown and sys.stdout.isatty() and not os.environ.get("NO_COLOR"):
        return "markdown"
    return "plain"


@dataclass(frozen=True)
class ReasoningView:
    """Where thinking is shown: ``out`` (stdout itself, or stderr), dim or plain."""

    out: BinaryIO
    dim: bool
    to_stdout: bool


def reasoning_view(*, show: bool, to_stderr: bool) -> ReasoningView | None:
    """Thinking on the terminal's stdout (unless hidden), on stderr when stdout is not a
    terminal only if asked for (``--reasoning``), or nowhere."""
    color = not os.environ.get("NO_COLOR")
    if sys.stdout.isatty():
        return ReasoningView(sys.stdout.buffer, color, True) if show else None
    if to_stderr:
        return ReasoningView(sys.stderr.buffer, color and sys.stderr.isatty(), False)
    return None


class Printer:
    """Consumes batches of events and writes them to ``out``."""

    def __init__(
        self,
        out: BinaryIO,
        *,
        events: bool = False,
        partials: PartialTracker | None = None,
        reasoning: ReasoningView | None = None,
    ) -> None:
        self.out = out
        self.events = events
        self.partials = partials  # with a schema: ``json_partial`` events after the deltas
        self.reasoning = reasoning
        self._thinking = False  # inside shown reasoning (its colour is on)
        self.wrote_text = False  # any reply text reached ``out``
        self.ends_with_newline = True
        self.failure: OutputError | None = None  # a write failed: nothing more is written
        self._pending: list[bytes] = []
        self._last_flush = -1.0  # never: the first text goes out at once

    async def __call__(self, receive: trio.MemoryReceiveChannel[Batch]) -> None:
        render = self._render_events if self.events else self._render_text
        async with receive:
            try:
                while True:
                    if self._pending:
                        with trio.move_on_at(self._last_flush + FLUSH_INTERVAL):
                            batch = await receive.receive()
                            render(batch)
                            if len(self._pending) < FLUSH_CHUNKS:
                                continue
                        self.flush()
                    else:
                        batch = await receive.receive()
                        render(batch)
                        if self._last_flush < 0 or len(self._pending) >= FLUSH_CHUNKS:
                            self.flush()
            except trio.EndOfChannel:
                pass
            finally:
                if self._thinking:  # a reply that ended (or was stopped) while thinking
                    self._end_thinking(b"\n")
                self.flush()

    def _render_text(self, batch: Batch) -> None:
        for event in batch:
            if type(event) is TextDelta and event.choice == 0 and event.text:
                if self._thinking:
                    self._end_thinking(b"\n\n")
                self._answer(event.text)
            elif (
                type(event) is ReasoningDelta
                and event.choice == 0
                and event.text
                and self.reasoning is not None
            ):
                self._think(event.text.encode())

    def _answer(self, text: str) -> None:
        """A piece of the answer's text, to be written at the next flush."""
        self._pending.append(text.encode())

    def _think(self, data: bytes) -> None:
        view = self.reasoning
        assert view is not None
        if not self._thinking:
            self._thinking = True
            data = (DIM if view.dim else b"") + data
        if view.to_stdout:
            self._pending.append(data)
        else:
            view.out.write(data)
            view.out.flush()

    def _end_thinking(self, separator: bytes) -> None:
        """Close the thinking block: its colour off, then ``separator`` before the answer."""
        view = self.reasoning
        assert view is not None
        self._thinking = False
        data = (RESET if view.dim else b"") + (separator if view.to_stdout else b"\n")
        if view.to_stdout:
            self._pending.append(data)
        else:
            view.out.write(data)
            view.out.flush()

    def _render_events(self, batch: Batch) -> None:
        self._pending.extend(encode_event_line(e) for e in batch if is_reply_event(e))
        partial = self.partials.after(batch) if self.partials is not None else None
        if partial is not None:
            self._pending.append(encode_event_line(partial))

    def flush(self) -> None:
        """Write everything pending, now."""
        if not self._pending:
            return
        data = b"".join(self._pending)
        self._pending.clear()
        self._last_flush = trio.current_time()
        if data and self._write(data) and not self.events:
            self.wrote_text = True
            self.ends_with_newline = data.endswith(b"\n")

    def end(self) -> None:
        """After the stream: text ends on a newline (so what follows starts a line of
        its own); a write that failed is raised now, as an ``OutputError``."""
        if self.failure is None and self.wrote_text and not self.ends_with_newline:
            self._write(b"\n")
        if self.failure is not None:
            raise self.failure

    def _write(self, data: bytes) -> bool:
        """Whether ``data`` reached ``out``; a failure is kept for ``end``."""
        if self.failure is not None:
            return False
        try:
            self.out.write(data)
            self.out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.failure = OutputError(f"cannot write the reply to stdout: {exc.strerror or exc}")
            return False
        return True
