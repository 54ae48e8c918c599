"""The store consumer: a streamed reply written to the log as it arrives.

It must not slow the producer or the printer, so receiving never waits on
the disk: the receiving task only appends text to a buffer, and a second task
writes the buffer in a worker thread about every 200 ms or 1 KiB, whichever
comes first (but not more than once per 20 ms). The reply row is created
with the first text; when the stream ends, the row gets its status
(``complete``, ``interrupted`` for Ctrl-C, SIGTERM or a timeout, ``error``),
finish reason, usage, TTFT and duration.

The log never takes a command down: a write that fails (``LogError``, kept
on the store and the command's ``LogHealth``) stops the writing, and the
reply goes on being printed. Only what a command cannot do without the log
-- the history ``-c`` continues, the lines ``--resume`` skips -- can fail it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import msgspec
import trio

from streamkit.errors import LogError, UsageError
from streamkit.events import Batch, ReasoningDelta, ResponseInfo, TextDelta, ToolResult
from streamkit.protocol.reply import Reply
from streamkit.protocol.wire import request_bytes
from streamkit.request import GenerationRequest, Message, ToolCallRef
from streamkit.store.async_store import AsyncStore
from streamkit.store.records import StoredMessage

if TYPE_CHECKING:
    from streamkit.providers.backend import Backend

P = ParamSpec("P")
R = TypeVar("R")

FLUSH_INTERVAL = 0.2  # seconds
FLUSH_BYTES = 1024
MIN_GAP = 0.02  # seconds between two writes, at least


@asynccontextmanager
async def open_conversation(
    db: Path | None,
    *,
    continue_last: bool = False,
    conversation_id: str | None = None,
    system: str | None = None,
) -> AsyncIterator[tuple[ConversationLog | None, list[Message]]]:
    """The conversation to log into and the history it already has.

    With logging off (``db`` is None), yields ``(None, [])`` -- unless a
    conversation to continue was asked for, which needs the log.
    """
    if db is None:
        if continue_last or conversation_id:
            raise UsageError("--continue and --cid need the conversation log (not --no-log)")
        yield None, []
        return
    store = await AsyncStore.open(db)
    try:
        history: list[Message] = []
        if continue_last or conversation_id:
            chosen = conversation_id or await store.last_conversation()
            if chosen is None:
                raise UsageError("no earlier conversation to continue")
            if not await store.has_conversation(chosen):
                raise UsageError(f"no conversation {chosen!r} in the log")
            history = [
                _as_message(m)
                for m in await store.messages(chosen)
                if (m.content or m.tool_calls)
                and m.undone_at is None
                and m.role in ("system", "user", "assistant", "tool")
            ]
            log = ConversationLog(store, chosen)
        else:
            log = await new_conversation_log(store)
        if system and not (history and history[0].role == "system"):
            await log.add_message("system", system)
            history.insert(0, Message("system", system))
        yield log, history
    finally:
        with trio.CancelScope(shield=True):
            await store.aclose()


async def replay_or_record(log: ConversationLog | None, key: str | None) -> StoredMessage | None:
    """Idempotency (``--request-id KEY``): the stored reply if KEY already completed.

    Otherwise KEY is recorded with the request about to be made. A replayed
    request leaves no trace of its own: the fresh, empty conversation goes.
    """
    if key is None:
        return None
    if log is None:
        raise UsageError("--request-id needs the conversation log (not --no-log)")
    try:
        stored = await log.store.completed_reply(key)
        if stored is None:
            log.idempotency_key = key
            return None
        if not await log.store.messages(log.conversation_id):
            await log.store.delete_conversation(log.conversation_id)
    except LogError:
        # The log cannot tell (or forget the empty conversation): the reply
        # comes first, so the model is asked; the command reports the failure.
        return None
    return stored


async def new_conversation_log(
    store: AsyncStore, *, batch: str | None = None, record_id: str | None = None
) -> ConversationLog:
    """A fresh conversation to log into; if the log fails, one that writes nothing."""
    try:
        conversation_id = await store.new_conversation(batch, record_id)
    except LogError:
        conversation_id = ""  # never used: every later write meets the failed store
    return ConversationLog(store, conversation_id)


class ConversationLog:
    """One conversation in the store, as the commands use it."""

    def __init__(self, store: AsyncStore, conversation_id: str) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.last_reply_id: int | None = None  # the newest assistant row
        self.idempotency_key: str | None = None  # recorded on the next request

    async def write(
        self, method: Callable[P, Awaitable[R]], *args: P.args, **kwargs: P.kwargs
    ) -> R | None:
        """A write to the log, or ``None`` once the log has failed: the command goes on."""
        try:
            return await method(*args, **kwargs)
        except LogError:
            return None

    async def add_message(
        self, role: str, content: str, *, tool_call_id: str | None = None
    ) -> None:
        await self.write(
            self.store.add_message, self.conversation_id, role, content, tool_call_id=tool_call_id
        )

    async def mark_undone(self, text: str) -> None:
        """The exchange user message ``text`` opened is out of the conversation (/undo,
        /retry): its rows stay in the log, marked, and ``--continue`` leaves them out."""
        await self.write(self.store.mark_undone, self.conversation_id, text)

    async def add_tool_result(
        self, message_id: int | None, arguments: str, result: ToolResult
    ) -> None:
        """One tool run: in ``tool_calls`` (for the record) and as a ``tool`` message."""
        # An MCP tool is logged by its server and tool (the name the model used is
        # in the assistant message's calls); binary content with its data.
        await self.write(
            self.store.add_tool_call,
            self.conversation_id,
            message_id,
            hop=result.hop,
            call_id=result.call_id,
            name=result.source or result.name,
            arguments=arguments,
            result=result.record or result.content,
            status=result.status,
            duration_s=result.duration_s,
        )
        await self.add_message("tool", result.content, tool_call_id=result.call_id)

    async def reply_recorder(self, request: GenerationRequest, backend: Backend) -> ReplyRecorder:
        """Log the request (options only: no key, no headers) and return the reply's sink."""
        options = msgspec.structs.asdict(request.options)
        model = request.model or backend.model_name
        request_id = await self.write(
            self.store.add_request,
            self.conversation_id,
            kind=request.kind,
            provider=backend.provider,
            model=model,
            options={k: v for k, v in options.items() if _given(v)},
            idempotency_key=self.idempotency_key,
        )
        return ReplyRecorder(
            self, request_id=request_id, provider=backend.provider, model=model, request=request
        )

    async def record_request(self, request: GenerationRequest, backend: Backend) -> ReplyRecorder:
        """A whole request at once (batch lines, relayed requests): its messages, then
        the sink of its reply."""
        for message in request.messages or (Message("user", logged_prompt(request)),):
            await self.add_message(message.role, message.content)
        return await self.reply_recorder(request, backend)


class ReplyRecorder:
    """Consumer: streams one reply into the store.

    Its ``reply`` is filled by the fan-out, not here (``run_stream`` fills the
    ``reply`` of a consumer with ``reads_whole_reply``), and the recorder reads
    it when its channel closes (by then the fan-out has added every batch).
    """

    reads_whole_reply = True

    def __init__(
        self,
        log: ConversationLog,
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
        self._done = False
        self._wake = trio.Event()
        self._started = trio.current_time()
        self._first_token_at: float | None = None

    async def __call__(self, receive: trio.MemoryReceiveChannel[Batch]) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop)
            try:
                async with receive:
                    async for batch in receive:
                        self._take(batch)
            finally:
                self._done = True
                self._wake.set()

    def _take(self, batch: Batch) -> None:
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

    async def _write_loop(self) -> None:
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
        store = self.log.store
        while True:
            with trio.move_on_after(FLUSH_INTERVAL):
                await self._wake.wait()
            self._wake = trio.Event()
            # Read before flushing: text that arrives while a flush is in
            # its thread must still get a flush of its own.
            done = self._done
            await self._flush()
            if not done:
                # At most one write per MIN_GAP however fast the stream: a
                # 1 KiB trigger alone would write every few hundred tokens.
                await trio.sleep(MIN_GAP)
            if done:
                break
        await self._ensure_row()
        reply = self.reply
        usage = reply.usage
        ended = trio.current_time()
        status = "complete"
        if reply.error is not None:
            status = "interrupted" if reply.error.kind == "timeout" else "error"
        elif reply.finish_reason == "cancelled":
            status = "interrupted"
        await store.finish_message(
            self.message_id,
            status=status,
            finish_reason=reply.finish_reason,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else None,
            ttft_s=(self._first_token_at - self._started) if self._first_token_at else None,
            duration_s=ended - self._started,
            error=reply.error.message if reply.error else None,
            tool_calls=(
                msgspec.json.encode(
                    [
                        {"id": c.id, "name": c.name, "arguments": c.arguments}
                        for c in reply.tool_calls
                    ]
                ).decode()
                if reply.tool_calls
                else None
            ),
            reasoning=reply.reasoning or None,
            reasoning_tokens=usage.reasoning_tokens if usage else None,
            reasoning_opaque=(
                msgspec.json.encode(reply.opaque_reasoning).decode()
                if reply.opaque_reasoning
                else None
            ),
        )
        await self._record_exchange(reply)

    async def _record_exchange(self, reply: Reply) -> None:
        """The server's status and kept headers; for a failure, the body as sent."""
        store = self.log.store
        if self.request_id is None:
            return  # the request itself could not be logged
        if self.response is not None:
            await store.record_response(
                self.request_id, http_status=self.response.status, headers=self.response.headers
            )
        if reply.error is not None and self.request is not None:
            sent = self.response.sent if self.response is not None else None
            endpoint, body = sent or request_bytes(self.request)
            await store.record_failure(self.request_id, endpoint=endpoint, body=body)

    async def _ensure_row(self) -> None:
        if self.message_id is None:
            self.message_id = await self.log.store.add_message(
                self.log.conversation_id,
                "assistant",
                request_id=self.request_id,
                model=self.model,
                provider=self.provider,
                status="streaming",
            )
            self.log.last_reply_id = self.message_id

    async def _flush(self) -> None:
        if not self._pending and self._first_token_at is None:
            return
        await self._ensure_row()
        if not self._pending:
            return
        text = "".join(self._pending)
        self._pending, self._pending_bytes = [], 0
        await self.log.store.append_chunk(self.message_id, self._seq, text)
        self._seq += 1


def _as_message(stored: StoredMessage) -> Message:
    calls = msgspec.json.decode(stored.tool_calls) if stored.tool_calls else []
    return Message(
        stored.role,
        stored.content,
        tool_calls=tuple(
            ToolCallRef(c["id"] or "", c["name"] or "", c["arguments"]) for c in calls
        ),
        tool_call_id=stored.tool_call_id,
    )


def logged_prompt(request: GenerationRequest) -> str:
    """A completion prompt as the log shows it: the text, or the token ids."""
    if request.prompt_ids:
        return "token ids: " + " ".join(map(str, request.prompt_ids))
    return request.prompt


def _given(value: object) -> bool:
    """An option worth logging: not left at its empty default (``0`` is a value)."""
    return value is not None and value is not False and value != () and value != {}
