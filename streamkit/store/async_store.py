"""The log for the Trio side: every ``Store`` call in a worker thread, one at a time.

One wrapper per blocking method, with the method's own signature, so a type
checker sees every call the Trio side makes to the database.

This is the one boundary where SQLite's errors (locked past the busy timeout,
a full disk, a corrupt page, a row removed by another process) become
``LogError``. The first failure is kept: from then on every call raises it
without touching the database, so a failing log costs one error, not one per
write, and it is recorded on the command's ``LogHealth`` for its exit code.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import trio

from streamkit.errors import LogError, one_line
from streamkit.store.database import ROW_GONE, Store
from streamkit.store.health import current_health
from streamkit.store.records import StoredMessage

P = ParamSpec("P")
R = TypeVar("R")


class AsyncStore:
    """A ``Store`` whose calls run in a worker thread, one at a time."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._limiter = trio.CapacityLimiter(1)
        self.failure: LogError | None = None  # the first failure; no call reaches SQLite after it
        self._health = current_health()

    @classmethod
    async def open(cls, path: Path) -> AsyncStore:
        return cls(await trio.to_thread.run_sync(Store, path))

    async def _run(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        if self.failure is not None:
            raise self.failure
        try:
            return await trio.to_thread.run_sync(
                partial(method, *args, **kwargs), limiter=self._limiter
            )
        except (sqlite3.Error, LogError) as exc:
            self.failure = LogError(
                f"the log failed: {_describe(exc)} ({self.store.path}); "
                "the reply was not fully saved"
            )
            self._health.record(self.failure)
            raise self.failure from None

    async def aclose(self) -> None:
        """Close the connection, failed or not (an open transaction is rolled back)."""
        await trio.to_thread.run_sync(self.store.close, limiter=self._limiter)

    async def new_conversation(self, batch: str | None = None, record_id: str | None = None) -> str:
        return await self._run(self.store.new_conversation, batch, record_id)

    async def last_conversation(self) -> str | None:
        return await self._run(self.store.last_conversation)

    async def has_conversation(self, conversation_id: str) -> bool:
        return await self._run(self.store.has_conversation, conversation_id)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        return await self._run(self.store.messages, conversation_id)

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._run(self.store.delete_conversation, conversation_id)

    async def mark_undone(self, conversation_id: str, text: str) -> int:
        return await self._run(self.store.mark_undone, conversation_id, text)

    async def completed_reply(self, idempotency_key: str) -> StoredMessage | None:
        return await self._run(self.store.completed_reply, idempotency_key)

    async def completed_batch_replies(self, batch: str) -> dict[str, StoredMessage]:
        return await self._run(self.store.completed_batch_replies, batch)

    async def add_request(
        self,
        conversation_id: str,
        *,
        kind: str,
        provider: str,
        model: str | None,
        options: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> int:
        return await self._run(
            self.store.add_request,
            conversation_id,
            kind=kind,
            provider=provider,
            model=model,
            options=options,
            idempotency_key=idempotency_key,
        )

    async def record_response(
        self, request_id: int, *, http_status: int, headers: dict[str, str]
    ) -> None:
        await self._run(
            self.store.record_response, request_id, http_status=http_status, headers=headers
        )

    async def record_failure(self, request_id: int, *, endpoint: str, body: bytes) -> None:
        await self._run(self.store.record_failure, request_id, endpoint=endpoint, body=body)

    async def add_message(
        self,
        conversation_id: str,
        role: str,
        content: str = "",
        *,
        request_id: int | None = None,
        model: str | None = None,
        provider: str | None = None,
        status: str = "complete",
        tool_call_id: str | None = None,
    ) -> int:
        return await self._run(
            self.store.add_message,
            conversation_id,
            role,
            content,
            request_id=request_id,
            model=model,
            provider=provider,
            status=status,
            tool_call_id=tool_call_id,
        )

    async def append_chunk(self, message_id: int, seq: int, text: str) -> None:
        await self._run(self.store.append_chunk, message_id, seq, text)

    async def finish_message(
        self,
        message_id: int,
        *,
        status: str,
        finish_reason: str | None = None,
        prompt_tokens: int | None = None,
        completion_tokens: int | None = None,
        ttft_s: float | None = None,
        duration_s: float | None = None,
        error: str | None = None,
        tool_calls: str | None = None,
        reasoning: str | None = None,
        reasoning_tokens: int | None = None,
        reasoning_opaque: str | None = None,
    ) -> None:
        await self._run(
            self.store.finish_message,
            message_id,
            status=status,
            finish_reason=finish_reason,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            ttft_s=ttft_s,
            duration_s=duration_s,
            error=error,
            tool_calls=tool_calls,
            reasoning=reasoning,
            reasoning_tokens=reasoning_tokens,
            reasoning_opaque=reasoning_opaque,
        )

    async def add_tool_call(
        self,
        conversation_id: str,
        message_id: int | None,
        *,
        hop: int,
        call_id: str | None,
        name: str | None,
        arguments: str,
        result: str,
        status: str,
        duration_s: float,
    ) -> None:
        await self._run(
            self.store.add_tool_call,
            conversation_id,
            message_id,
            hop=hop,
            call_id=call_id,
            name=name,
            arguments=arguments,
            result=result,
            status=status,
            duration_s=duration_s,
        )


def _describe(exc: sqlite3.Error | LogError) -> str:
    """What went wrong, in words: SQLite's own message, except for a row removed meanwhile."""
    if isinstance(exc, sqlite3.IntegrityError) and (
        getattr(exc, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_FOREIGNKEY"
    ):
        return ROW_GONE  # its conversation was deleted (``logs rm``) while it was written
    return one_line(exc)
