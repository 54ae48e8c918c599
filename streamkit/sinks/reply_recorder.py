"""The store consumer: a streamed reply written to the log as it arrives.

It must not slow the producer or the printer, so receiving never waits on
the disk: the receiving task only appends text to a buffer, and a second task
writes the buffer in a worker thread about every 200 ms or 1 KiB, whichever
comes first (but not more than once per 20 ms). The reply row is created
with the first text (a reply that has ended by then, as a short one read in
one piece, is written whole instead); when the stream ends, the row gets its status
(``complete``, ``interrupted`` for Ctrl-C, SIGTERM or a timeout, ``error``),
finish reason, usage, TTFT and duration.

A write that fails (``LogError``) stops the writing, and the reply goes on
being received and printed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import msgspec
import trio

from streamkit.errors import LogError
from streamkit.events import Batch, ReasoningDelta, ResponseInfo, TextDelta
from streamkit.protocol.reply import Reply
from streamkit.protocol.wire import request_bytes
from streamkit.request import GenerationRequest

if TYPE_CHECKING:
    from streamkit.store.async_store import AsyncStore
    from streamkit.store.database import Store

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

    ``take`` only buffers text; ``background`` writes it. Its ``reply`` is
    filled by ``run_stream``, not here (``reads_whole_reply``), and the
    recorder reads it after ``end()`` (by then every batch has been added).
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
        self.message_id: int | None = None
        self._pending: list[str] = []
        self._pending_bytes = 0
        self._seq = 0
        self._failed = False  # the log failed: nothing more is kept or written
        self._ended = trio.Event()  # end() was called: no write waits any longer
        self._wake = trio.Event()
        self._started = trio.current_time()
        self._first_token_at: float | None = None

    def end(self) -> None:
        self._ended.set()
        self._wake.set()

    def take(self, batch: Batch) -> None:
        for event in batch:
            if (
                type(event) is ReasoningDelta
                and event.choice == 0
                and (self._first_token_at is None)
            ):
                self._first_token_at = trio.current_time()  # thinking is output too
                self._wake.set()
            elif type(event) is TextDelta and event.choice == 0 and event.text:
                if self._first_token_at is None:
                    self._first_token_at = trio.current_time()
                    self._wake.set()  # the row is created at the first token
                if not self._failed:
                    self._pending.append(event.text)
                    self._pending_bytes += len(event.text)
            elif type(event) is ResponseInfo:
                self.response = event
        if self._pending_bytes >= FLUSH_BYTES:
            self._wake.set()

    async def background(self) -> None:
        """Write the reply as it comes; after a log failure, write nothing more.

        The receiving side keeps draining the stream either way, so the
        producer and the printer never notice the log.
        """
        try:
            await self._write_reply()
        except LogError:
            self._failed = True
            self._pending, self._pending_bytes = [], 0

    async def _write_reply(self) -> None:
        while True:
            with trio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()
            if self._ended.is_set():
                break
            await self._flush()
            # At most one write per MIN_GAP however fast the stream: a 1 KiB
            # trigger alone would write every few hundred tokens. The end of
            # the reply cuts the gap short: the command's exit waits for it.
            with trio.move_on_after(MIN_GAP):
                await self._ended.wait()
        # The reply's end is one call to the log: its last text, how it
        # ended, and the server's answer, together (one round trip a reply).
        blocking, message_id = self.log.store.store, self.message_id
        text = self._take_text()
        ending = self._ending()
        if message_id is None:
            # It ended before its row was written (a short reply, often one
            # network read): the row is written whole, once.
            def add_whole() -> int:
                written = blocking.add_ended_reply(
                    self.log.conversation_id,
                    text,
                    request_id=self.request_id,
                    model=self.model,
                    provider=self.provider,
                    **ending,
                )
                self._record_exchange(blocking)
                return written

            self.message_id = self.log.last_reply_id = await self.log.store.together(add_whole)
            return

        def finish() -> None:
            blocking.finish_message(message_id, tail=text, **ending)
            self._record_exchange(blocking)

        await self.log.store.together(finish)

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
            "ttft_s": (self._first_token_at - self._started) if self._first_token_at else None,
            "duration_s": trio.current_time() - self._started,
            "error": reply.error.message if reply.error else None,
            "tool_calls": msgspec.json.encode(calls).decode() if calls else None,
            "reasoning": reply.reasoning or None,
            "reasoning_tokens": usage.reasoning_tokens if usage else None,
            "reasoning_opaque": msgspec.json.encode(opaque).decode() if opaque else None,
        }

    def _record_exchange(self, blocking: Store) -> None:
        """The server's status and kept headers; for a failure, the body as sent."""
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

    async def _ensure_row(self) -> None:
        """The reply's row, with the text so far as its content (later text goes in
        chunks, compacted into it when the reply ends)."""
        if self.message_id is None:
            self.message_id = await self.log.store.add_message(
                self.log.conversation_id,
                "assistant",
                self._take_text(),
                request_id=self.request_id,
                model=self.model,
                provider=self.provider,
                status="streaming",
            )
            self.log.last_reply_id = self.message_id

    async def _flush(self) -> None:
        if not self._pending and self._first_token_at is None:
            return
        if self.message_id is None:
            await self._ensure_row()
        elif self._pending:
            await self.log.store.append_chunk(self.message_id, self._seq, self._take_text())
            self._seq += 1

    def _take_text(self) -> str:
        """The text not yet written, taken to be written."""
        text = "".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        return text
