"""The store consumer: a streamed reply written to the log as it arrives.

It must not slow the producer or the printer, so receiving never waits on
the disk: the receiving task only adds the text to the reply (which the
fan-out does anyway, ``run_stream``), and the log's flusher
(``reply_flusher``: one task for every reply of a log) queues the write of
what the last one left about every 200 ms or 1 KiB, whichever comes first (but not
more than once per 20 ms). The reply row is created with the first text (a
reply that has ended by then, as a short one read in one piece, is written
whole instead); when the stream ends, ``end`` queues how it ended
(``complete``, ``interrupted`` for Ctrl-C, SIGTERM or a timeout, ``error``),
finish reason, usage, TTFT and duration, and ``settle`` waits for that write.

The timed writes are queued, not waited for: the log runs them in order
(``AsyncStore``), so the row they create is there before the chunks and the
end that refer to it, and each learns the row's id when it runs.

A write that fails (``LogError``) stops the writing, and the reply goes on
being received and printed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import trio

from streamkit.errors import LogError
from streamkit.events import Batch, ReasoningDelta, ResponseInfo, TextDelta
from streamkit.protocol.reply import Reply
from streamkit.protocol.wire import request_bytes
from streamkit.request import GenerationRequest
from streamkit.sinks.reply_flusher import flusher_for

if TYPE_CHECKING:
    from streamkit.store.async_store import AsyncStore, Queued

FLUSH_INTERVAL = 0.2  # seconds
FLUSH_BYTES = 1024
MIN_GAP = 0.02  # seconds between two writes, at least


class Conversation(Protocol):
    """What the recorder needs of a ``recorder.ConversationLog``."""

    store: AsyncStore
    conversation_id: str
    last_reply_id: int | None


class ReplyRecorder:
    """Inline consumer (``run_stream``): streams one reply into the store.

    ``take`` only notes the first token and how much text waits; the log's
    flusher writes that text from the reply (``due`` and
    ``write``), ``end`` queues the end and ``settle`` waits for it. Its
    ``reply`` is filled by ``run_stream``, not here (``reads_whole_reply``),
    before each ``take``: the recorder reads its text as it grows, and the
    rest after ``end()`` (by then every batch has been added).
    """

    reads_whole_reply = True

    def __init__(
        self,
        log: Conversation,
        *,
        request_id: int | None,
        provider: str,
        model: str | None,
        request: GenerationRequest | None = None,
    ) -> None:
        self.log = log
        self.request = request  # its body is kept if it fails
        self.response: ResponseInfo | None = None
        self.request_id = request_id
        self.provider = provider
        self.model = model
        self.reply = Reply()
        self.message_id: int | None = None  # set by the write that creates the row, when it runs
        self._flusher = flusher_for(log.store)
        self._row_queued = False  # the row's creation is queued (or done)
        self._taken = 0  # the reply's text pieces already written (or queued)
        self._counted = 0  # and those counted in ``_pending_bytes``
        self._pending_bytes = 0
        self._seq = 0
        self._failed = False  # the log failed: nothing more is kept or written
        self._ended = False
        self._end: Queued | None = None  # the end's write, once queued
        self._last_write = -math.inf
        self._started = trio.current_time()
        self._first_token_at: float | None = None

    def end(self) -> None:
        """The stream ended: its end's write is queued at once (so a stream cut short
        from outside still gets it), and ``settle`` waits for it."""
        self._ended = True
        self._flusher.forget(self)
        if not self._failed:
            try:
                self._end = self.log.store.post(self._write_end(self._take_text()))
            except LogError:
                self._fail()

    def take(self, batch: Batch) -> None:
        """The text itself is the reply's (``run_stream`` fills it before this): here
        only the first token's time, the server's answer, and how much text waits."""
        if self._first_token_at is None:
            for event in batch:
                kind = type(event)
                if kind is ResponseInfo:
                    self.response = event  # it comes before any text (retries too)
                elif (
                    self._first_token_at is None
                    and (kind is ReasoningDelta or (kind is TextDelta and event.text))  # type: ignore[union-attr]
                    and event.choice == 0  # type: ignore[union-attr]
                ):
                    self._first_token_at = trio.current_time()  # thinking is output too
                    self._watch()  # the row is created at the first token
        if self._row_queued and not self._failed:
            new = self.reply.text_pieces(self._counted)
            self._counted += len(new)
            self._pending_bytes += sum(map(len, new))
            if self._pending_bytes >= FLUSH_BYTES:
                self._flusher.reschedule(self)

    def _watch(self) -> None:
        if not self._failed and not self._ended:
            self._flusher.watch(self)

    def due(self) -> float:
        """When the next write is due: the row at once; then new text every
        ``FLUSH_INTERVAL``, or after ``MIN_GAP`` once ``FLUSH_BYTES`` are waiting."""
        if self._failed or self._ended:
            return math.inf
        if not self._row_queued:
            return math.inf if self._first_token_at is None else self._first_token_at
        if self._pending_bytes >= FLUSH_BYTES:
            return self._last_write + MIN_GAP
        return self._last_write + FLUSH_INTERVAL

    def write(self) -> None:
        """Queue the write that is due (the flusher calls it; it never waits)."""
        store, blocking = self.log.store, self.log.store.store
        self._last_write = trio.current_time()
        try:
            if not self._row_queued:
                self._row_queued = True
                text = self._take_text()

                def create_row() -> None:
                    self.message_id = blocking.add_message(
                        self.log.conversation_id,
                        "assistant",
                        text,
                        request_id=self.request_id,
                        model=self.model,
                        provider=self.provider,
                        status="streaming",
                    )
                    self.log.last_reply_id = self.message_id

                store.post(create_row)
            elif text := self._take_text():
                seq = self._seq
                self._seq += 1
                store.post(lambda: blocking.append_chunk(self._row(), seq, text))
        except LogError:
            self._fail()

    def _row(self) -> int:
        """The row's id, in the worker thread: its creation ran before (queue order)."""
        if self.message_id is None:
            raise LogError("the reply's row was not written")
        return self.message_id

    def _fail(self) -> None:
        self._failed = True
        self._pending_bytes = 0
        self._flusher.forget(self)

    async def settle(self) -> None:
        """After ``end()``: wait until the reply's end is written (nothing, after a log
        failure)."""
        if self._end is not None:
            try:
                await self.log.store.outcome(self._end)
            except LogError:
                self._fail()

    def _write_end(self, text: str) -> Callable[[], int | None]:
        """How the reply ended, with its last ``text`` and the server's answer, as one
        call to the log. A reply whose row was never created (it ended in the read that
        brought its first text) is written whole, once."""
        blocking = self.log.store.store
        ending = self._ending()
        row_queued = self._row_queued

        def write_end() -> int | None:
            if not row_queued:
                self.message_id = blocking.add_ended_reply(
                    self.log.conversation_id,
                    text,
                    request_id=self.request_id,
                    model=self.model,
                    provider=self.provider,
                    **ending,
                )
                self.log.last_reply_id = self.message_id
            else:
                blocking.finish_message(self._row(), tail=text, **ending)
            self._record_exchange()
            return self.message_id

        return write_end

    def _ending(self) -> dict[str, Any]:
        """How the reply ended, as ``Store.finish_message`` records it."""
        reply = self.reply
        usage = reply.usage
        status = "complete"
        if reply.error is not None:
            status = "interrupted" if reply.error.kind == "timeout" else "error"
        elif reply.finish_reason == "cancelled":
            status = "interrupted"
        calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in reply.tool_calls]
        opaque = reply.opaque_reasoning
        return {
            "status": status,
            "finish_reason": reply.finish_reason,
            "prompt_tokens": usage.prompt_tokens if usage else None,
            "completion_tokens": usage.completion_tokens if usage else None,
            "ttft_s": (
                None if self._first_token_at is None else self._first_token_at - self._started
            ),
            "duration_s": trio.current_time() - self._started,
            "error": reply.error.message if reply.error else None,
            "tool_calls": msgspec.json.encode(calls).decode() if calls else None,
            "reasoning": reply.reasoning or None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "reasoning_opaque": msgspec.json.encode(opaque).decode() if opaque else None,
        }

    def _record_exchange(self) -> None:
        """In the worker thread: the server's status and kept headers; for a failure,
        the body as sent."""
        blocking = self.log.store.store
        if self.request_id is None:
            return  # the request itself could not be logged
        if self.response is not None:
            blocking.record_response(
                self.request_id, http_status=self.response.status, headers=self.response.headers
            )
        if self.reply.error is not None and self.request is not None:
            sent = self.response.sent if self.response is not None else None
            endpoint, body = sent or request_bytes(self.request)
            blocking.record_failure(self.request_id, endpoint=endpoint, body=body)

    def _take_text(self) -> str:
        """The text not yet written, taken to be written."""
        new = self.reply.text_pieces(self._taken)
        self._taken = self._counted = self._taken + len(new)
        self._pending_bytes = 0
        return "".join(new)
