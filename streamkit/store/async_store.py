"""The log for the Trio side: ``Store`` calls in a worker thread, many at a time.

One wrapper per blocking method, with the method's own signature, so a type
checker sees every call the Trio side makes to the database.

Group commit: a batch of 256 lines in flight makes thousands of small writes
a second, and a thread hop plus a commit for each cost more CPU than the
rest of the line. So calls queue, and one worker-thread call runs every call
queued so far, in order, in one transaction (a write's own transaction is
then part of it, ``sqlite_helpers.Transaction``). A caller of a wrapper
waits until its own write is committed; what it saves is the hop and the
commit it would have paid alone. A write nobody needs to wait for (a new
conversation, a request's row, a reply's timed text and end) is ``post``-ed:
queued in order, so that what refers to it runs after it, with ``outcome``
to wait for it when that matters, or ``last_queued`` for everything so far.

This is the one boundary where SQLite's errors (locked past the busy timeout,
a full disk, a corrupt page, a row removed by another process) become
``LogError``. The first failure is kept: from then on every call raises it
without touching the database, so a failing log costs one error, not one per
write, and it is recorded on the command's ``LogHealth`` for its exit code.
The writes of the group before the failing one are committed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

import trio

from streamkit.errors import LogError, one_line
from streamkit.store.database import ROW_GONE, Store, new_conversation_id
from streamkit.store.health import current_health
from streamkit.store.records import StoredMessage
from streamkit.store.sqlite_helpers import Transaction

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(slots=True)
class Queued:
    """One queued call and, once its group has run, its outcome (``AsyncStore.outcome``)."""

    run: Callable[[], Any] | None  # dropped once run: see ``_run_group``
    writes: bool
    done: trio.Event = field(default_factory=trio.Event)
    result: Any = None
    error: sqlite3.Error | LogError | None = None


class AsyncStore:
    """A ``Store`` whose calls run in a worker thread, queued calls together."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.failure: LogError | None = None  # the first failure; no call reaches SQLite after it
        self._health = current_health()
        self._queue: list[Queued] = []
        self._draining = False  # a task is running the queue in the worker thread
        self._drained = trio.Event()  # set (and replaced) each time that task ends
        self._closed = False
        self._last: Queued | None = None  # the call queued last

    @classmethod
    async def open(cls, path: Path) -> AsyncStore:
        return cls(await trio.to_thread.run_sync(Store, path))

    async def _run(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A write: it has been committed when this returns."""
        return await self._call(partial(method, *args, **kwargs), writes=True)

    async def _read(self, method: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        """A read: a group of reads alone takes no write lock."""
        return await self._call(partial(method, *args, **kwargs), writes=False)

    async def _call(self, run: Callable[[], R], *, writes: bool) -> R:
        return await self.outcome(self._enqueue(run, writes))

    def post(self, run: Callable[[], object]) -> Queued:
        """The blocking ``Store`` calls ``run`` makes, as a write queued without
        waiting: it runs before every call queued after it, and its failure, like any,
        fails the calls after it and is reported at the end. ``outcome`` waits for it."""
        return self._enqueue(run, True)

    async def outcome(self, call: Queued) -> Any:
        """What a queued call returned, once its group has run (``LogError`` if it failed)."""
        await call.done.wait()
        if call.error is not None:
            raise self.failure or self._fail(call.error)
        return call.result

    def last_queued(self) -> Queued | None:
        """The call queued last: once it has run, so has every call queued before it
        (``await call.done.wait()``)."""
        return self._last

    def _enqueue(self, run: Callable[[], Any], writes: bool) -> Queued:
        if self.failure is not None:
            raise self.failure
        if self._closed:
            raise self._fail(sqlite3.ProgrammingError("the log was already closed"))
        call = Queued(run, writes)
        self._queue.append(call)
        self._last = call
        if not self._draining:
            self._draining = True
            # A system task, so that a caller cancelled meanwhile (Ctrl-C)
            # strands no one else's call: the queue is always run to its end.
            trio.lowlevel.spawn_system_task(self._drain)
        return call

    async def _drain(self) -> None:
        try:
            while self._queue:
                calls, self._queue = self._queue, []
                if self.failure is None:
                    failed = await trio.to_thread.run_sync(self._run_group, calls)
                    if failed is not None:
                        self._fail(failed)
                else:
                    for call in calls:
                        call.error = self.failure
                for call in calls:
                    call.done.set()
        finally:
            self._draining = False
            self._drained.set()
            self._drained = trio.Event()

    def _run_group(self, calls: list[Queued]) -> sqlite3.Error | LogError | None:
        """In the worker thread: every call, in order, in one transaction if any writes;
        the failure, if one.

        After a call fails, the rest are not run (they get its error). If
        the commit itself fails, no call of the group stands. A call's
        function is dropped as it runs: a reply's recorder keeps the call of
        its end, whose function refers back to the recorder, and that cycle
        would leave every line's objects to the garbage collector instead of
        freeing them as the line ends (``__main__`` counts on that).
        """
        failed: sqlite3.Error | LogError | None = None
        try:
            with _group_transaction(self.store.db, any(c.writes for c in calls)):
                for call in calls:
                    if failed is not None:
                        call.error = failed
                        continue
                    run, call.run = call.run, None
                    try:
                        call.result = run()  # type: ignore[misc]
                    except (sqlite3.Error, LogError) as exc:
                        call.error = failed = exc
        except sqlite3.Error as exc:  # BEGIN or COMMIT
            for call in calls:
                call.error = call.error or exc
            return failed or exc
        return failed

    def _fail(self, exc: sqlite3.Error | LogError) -> LogError:
        self.failure = LogError(
            f"the log failed: {_describe(exc)} ({self.store.path}); the reply was not fully saved"
        )
        self._health.record(self.failure)
        return self.failure

    async def aclose(self) -> None:
        """Close the connection, failed or not, once the queued calls have run (an
        open transaction is rolled back)."""
        while self._draining:
            await self._drained.wait()
        self._closed = True
        await trio.to_thread.run_sync(self.store.close)

    async def new_conversation(self, batch: str | None = None, record_id: str | None = None) -> str:
        """A new conversation's id, at once: its row is written ahead of every later
        call (the queue runs in order), so a batch line waits no commit to start."""
        conversation_id = new_conversation_id()
        self.post(partial(self.store.new_conversation, batch, record_id, conversation_id))
        return conversation_id

    async def last_conversation(self) -> str | None:
        return await self._read(self.store.last_conversation)

    async def has_conversation(self, conversation_id: str) -> bool:
        return await self._read(self.store.has_conversation, conversation_id)

    async def messages(self, conversation_id: str) -> list[StoredMessage]:
        return await self._read(self.store.messages, conversation_id)

    async def delete_conversation(self, conversation_id: str) -> bool:
        return await self._run(self.store.delete_conversation, conversation_id)

    async def mark_undone(self, conversation_id: str, text: str) -> int:
        return await self._run(self.store.mark_undone, conversation_id, text)

    async def completed_reply(self, idempotency_key: str) -> StoredMessage | None:
        return await self._read(self.store.completed_reply, idempotency_key)

    async def completed_batch_replies(self, batch: str) -> dict[str, StoredMessage]:
        return await self._read(self.store.completed_batch_replies, batch)

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


def _group_transaction(db: sqlite3.Connection, writes: bool) -> AbstractContextManager[None]:
    return Transaction(db) if writes else nullcontext()


def _describe(exc: sqlite3.Error | LogError) -> str:
    """What went wrong, in words: SQLite's own message, except for a row removed meanwhile."""
    if isinstance(exc, sqlite3.IntegrityError) and (
        getattr(exc, "sqlite_errorname", "") == "SQLITE_CONSTRAINT_FOREIGNKEY"
    ):
        return ROW_GONE  # its conversation was deleted (``logs rm``) while it was written
    return one_line(exc)
