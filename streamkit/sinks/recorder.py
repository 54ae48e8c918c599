"""The conversation log as the commands use it: the conversation, its messages, its
requests; each streamed reply is written by ``reply_recorder.ReplyRecorder``.

The log never takes a command down: a write that fails (``LogError``, kept
on the store and the command's ``LogHealth``) stops the writing, and the
reply goes on being printed. Only what a command cannot do without the log
-- the history ``-c`` continues, the lines ``--resume`` skips -- can fail it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, ParamSpec, TypeVar

import msgspec
import trio

from streamkit.errors import LogError, UsageError
from streamkit.events import ToolResult
from streamkit.request import GenerationRequest, Message, ToolCallRef
from streamkit.sinks.reply_recorder import ReplyRecorder
from streamkit.store.async_store import AsyncStore
from streamkit.store.records import StoredMessage

if TYPE_CHECKING:
    from streamkit.providers.backend import Backend

P = ParamSpec("P")
R = TypeVar("R")


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
        return await self._recorder(request, backend, ())

    async def record_request(self, request: GenerationRequest, backend: Backend) -> ReplyRecorder:
        """A whole request at once (batch lines, relayed requests): its messages, then
        the sink of its reply; written in one call to the log."""
        messages = request.messages or (Message("user", logged_prompt(request)),)
        return await self._recorder(request, backend, messages)

    async def _recorder(
        self, request: GenerationRequest, backend: Backend, messages: Sequence[Message]
    ) -> ReplyRecorder:
        options = msgspec.structs.asdict(request.options)
        model = request.model or backend.model_name
        blocking, conversation_id = self.store.store, self.conversation_id
        key = self.idempotency_key

        recorder = ReplyRecorder(
            self, request_id=None, provider=backend.provider, model=model, request=request
        )

        def write() -> None:
            for message in messages:
                blocking.add_message(conversation_id, message.role, message.content)
            recorder.request_id = blocking.add_request(
                conversation_id,
                kind=request.kind,
                provider=backend.provider,
                model=model,
                options={k: v for k, v in options.items() if _given(v)},
                idempotency_key=key,
            )

        # Queued, not waited for: the request goes out while its row is committed
        # (in the same group as other lines' usually), and the reply's writes,
        # queued after it, find its id. The reply's end is waited for, so a line's
        # result still follows all of its rows.
        with suppress(LogError):  # the log has failed: the reply is still asked for
            self.store.post(write)
        return recorder


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
