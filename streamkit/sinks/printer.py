"""The printer: the consumer that writes a reply to stdout.

Text mode writes the first text at once (time to first token is what a user
feels), then coalesces: pending text is written when 16 chunks have piled up
or 50 ms have passed since the last write, and at the end. A fast stream thus
costs one ``write`` per ~16 tokens instead of one per token, and a slow one
still appears live.

Events mode (``--events``) writes every event as a JSON line instead, for
pipelines; lines are coalesced the same way.

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

from typing import BinaryIO

import trio

from streamkit.errors import OutputError
from streamkit.events import Batch, TextDelta, encode_event_line, is_reply_event
from streamkit.protocol.structured import PartialTracker

FLUSH_INTERVAL = 0.05  # seconds
FLUSH_CHUNKS = 16


class Printer:
    """Consumes batches of events and writes them to ``out``."""

    def __init__(
        self, out: BinaryIO, *, events: bool = False, partials: PartialTracker | None = None
    ) -> None:
        self.out = out
        self.events = events
        self.partials = partials  # with a schema: ``json_partial`` events after the deltas
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
                self.flush()

    def _render_text(self, batch: Batch) -> None:
        pending = self._pending
        for event in batch:
            if type(event) is TextDelta and event.choice == 0 and event.text:
                pending.append(event.text.encode())

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
        if self._write(data) and not self.events:
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
            self.failure = OutputError(f"cannot write the reply to stdout: "
                                       f"{exc.strerror or exc}")
            return False
        return True
