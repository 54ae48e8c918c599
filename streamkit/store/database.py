"""The conversation log: every prompt and reply in a SQLite file.

Streaming writes
    A reply is written while it streams: its text goes into
    ``message_chunks`` one batch at a time (an INSERT per batch, so a long
    reply costs O(n), where ``content = content || ?`` would rewrite the row
    every time), and when the reply ends the chunks are compacted into
    ``messages.content`` in one short transaction. A streaming reply carries
    its writer's pid and start time; one still marked ``streaming`` when a
    process opens the database is compacted and marked ``interrupted`` only if
    that writer is gone (``kill -9``) -- another streamkit streaming right
    now keeps writing its reply and finishes it (``streamkit.store.liveness``).

Concurrency
    WAL mode, a busy timeout and short transactions, so several streamkit
    processes can log to one file at once. All calls here are blocking; the
    async side runs them in a worker thread (``streamkit.store.async_store``).
"""

from __future__ import annotations

import os
import random
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import platformdirs

from streamkit.errors import LogError, UsageError
from streamkit.store.liveness import process_start, writer_alive
from streamkit.store.migrations import MIGRATIONS, SCHEMA_VERSION
from streamkit.store.reads import LogReads
from streamkit.store.records import UNDO_QUERY
from streamkit.store.sqlite_helpers import Transaction, statements

BUSY_TIMEOUT_MS = 10_000  # how long a write waits for another process's lock


def new_conversation_id() -> str:
    """A conversation's id: 12 random hex digits (48 bits, as a uuid4's first 12),
    from ``random``, seeded from the OS at start: a batch makes one a line, and
    ``uuid4`` asks the kernel each time."""
    return f"{random.getrandbits(48):012x}"


MESSAGE_INSERT_COLUMNS = (
    "conversation_id",
    "request_id",
    "role",
    "content",
    "model",
    "provider",
    "created_at",
    "status",
    "tool_call_id",
    "writer_pid",
    "writer_started",
    "finished_at",
    "finish_reason",
    "prompt_tokens",
    "completion_tokens",
    "ttft_s",
    "duration_s",
    "error",
    "tool_calls",
    "reasoning",
    "reasoning_tokens",
    "reasoning_opaque",
)
MESSAGE_INSERT = (
    f"INSERT INTO messages ({', '.join(MESSAGE_INSERT_COLUMNS)})"
    f" VALUES ({', '.join('?' * len(MESSAGE_INSERT_COLUMNS))})"
)
# The full-text entries, kept by hand rather than by triggers (migration 10 -> 11
# says why). A delete names the text as it was indexed: FTS5's external-content
# tables cannot look it up themselves.
FTS_INSERT = "INSERT INTO messages_fts(rowid, content) VALUES (?, ?)"
FTS_DELETE = "INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', ?, ?)"
REASONING_FTS_INSERT = "INSERT INTO reasoning_fts(rowid, reasoning) VALUES (?, ?)"
REASONING_FTS_DELETE = (
    "INSERT INTO reasoning_fts(reasoning_fts, rowid, reasoning) VALUES ('delete', ?, ?)"
)

ROW_GONE = "the conversation was removed from the log while it was being written"


def default_db_path() -> Path:
    return Path(platformdirs.user_data_dir("streamkit")) / "logs.db"


class Store(LogReads):
    """A connection to the log database (blocking calls; one thread at a time)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer = (os.getpid(), process_start(os.getpid()))  # on streaming rows
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(
                path,
                timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
                check_same_thread=False,
            )
            self.db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self.db.execute("PRAGMA journal_mode = WAL")
            self.db.execute("PRAGMA foreign_keys = ON")
            self.db.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
            self.recover()
        except sqlite3.DatabaseError as exc:
            raise UsageError(f"cannot use the log database {path}: {exc}") from None

    def close(self) -> None:
        self.db.close()

    # -- schema --------------------------------------------------------------

    def _migrate(self) -> None:
        """Bring the schema up to ``SCHEMA_VERSION`` in one transaction, not one per
        migration: a fresh file pays one commit, and a crash leaves no half schema."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise UsageError(
                f"the log database {self.path} has schema version {version}; this "
                f"streamkit knows up to {SCHEMA_VERSION} (upgrade streamkit or use --db)"
            )
        if version == SCHEMA_VERSION:
            return
        with self._transaction():
            # Re-read inside the write lock: another process may have migrated.
            version = self.db.execute("PRAGMA user_version").fetchone()[0]
            for target in range(version + 1, SCHEMA_VERSION + 1):
                for statement in statements(MIGRATIONS[target - 1]):
                    self.db.execute(statement)
            if version < SCHEMA_VERSION:
                self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _transaction(self) -> Transaction:
        return Transaction(self.db)

    def recover(self) -> int:
        """Mark replies left ``streaming`` by a process that is gone as ``interrupted``.

        A reply whose writer still runs is left to it. Rows written before
        writers were recorded (no pid) are taken as orphans. If another
        process holds the write lock past the busy timeout, recovery waits for
        the next open rather than failing this one.
        """
        rows = self.db.execute(
            "SELECT id, writer_pid, writer_started FROM messages WHERE status = 'streaming'"
        ).fetchall()
        recovered = 0
        for message_id, pid, started in rows:
            if pid is not None and writer_alive(pid, started):
                continue
            try:
                recovered += self._finish(
                    message_id,
                    only_streaming=True,
                    status="interrupted",
                    error="the process ended before the reply did",
                )
            except sqlite3.OperationalError as exc:
                if not (exc.sqlite_errorname or "").startswith("SQLITE_BUSY"):
                    raise
                break
        return recovered

    # -- writes --------------------------------------------------------------

    def new_conversation(
        self,
        batch: str | None = None,
        record_id: str | None = None,
        conversation_id: str | None = None,
    ) -> str:
        """A conversation row; its id is ``conversation_id`` if given, else a new one."""
        conversation_id = conversation_id or new_conversation_id()
        now = time.time()
        self.db.execute(
            "INSERT INTO conversations (id, created_at, updated_at, batch, record_id)"
            " VALUES (?, ?, ?, ?, ?)",
            (conversation_id, now, now, batch, record_id),
        )
        return conversation_id

    def add_request(
        self,
        conversation_id: str,
        *,
        kind: str,
        provider: str,
        model: str | None,
        options: dict[str, Any],
        idempotency_key: str | None = None,
    ) -> int:
        cursor = self.db.execute(
            "INSERT INTO requests (conversation_id, created_at, kind, provider, model, options,"
            " idempotency_key) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (
                conversation_id,
                time.time(),
                kind,
                provider,
                model,
                msgspec.json.encode(options).decode(),
                idempotency_key,
            ),
        )
        return int(cursor.lastrowid)

    def record_response(
        self, request_id: int, *, http_status: int, headers: dict[str, str]
    ) -> None:
        """What the server answered: status, request id and rate-limit headers."""
        _updated(
            self.db.execute(
                "UPDATE requests SET http_status = ?, response_headers = ? WHERE id = ?",
                (http_status, msgspec.json.encode(headers).decode(), request_id),
            )
        )

    def record_failure(self, request_id: int, *, endpoint: str, body: bytes) -> None:
        """Keep a failed request's endpoint and body (as sent) for ``replay``."""
        _updated(
            self.db.execute(
                "UPDATE requests SET endpoint = ?, body = ?, failed_at = ? WHERE id = ?",
                (endpoint, body, time.time(), request_id),
            )
        )

    def add_message(
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
        with self._transaction():
            return self._insert_message(
                conversation_id,
                role,
                content,
                request_id=request_id,
                model=model,
                provider=provider,
                status=status,
                tool_call_id=tool_call_id,
                writer=self._writer if status == "streaming" else (None, None),
            )

    def _insert_message(
        self,
        conversation_id: str,
        role: str,
        content: str,
        *,
        status: str,
        writer: tuple[int | None, str | None],
        finished_at: float | None = None,
        **columns: Any,
    ) -> int:
        """A message row (``columns``: any other of ``MESSAGE_INSERT_COLUMNS``), its
        full-text entries, and its conversation's ``updated_at``; in the caller's
        transaction."""
        now = time.time()
        values = {
            "conversation_id": conversation_id,
            "role": role,
            "content": content,
            "created_at": now,
            "status": status,
            "writer_pid": writer[0],
            "writer_started": writer[1],
            "finished_at": finished_at,
            **columns,
        }
        row = tuple(values.pop(column, None) for column in MESSAGE_INSERT_COLUMNS)
        if values:
            raise TypeError(f"not a column of messages: {', '.join(values)}")
        cursor = self.db.execute(MESSAGE_INSERT, row)
        message_id = int(cursor.lastrowid)
        self.db.execute(FTS_INSERT, (message_id, content))
        reasoning = columns.get("reasoning")
        if reasoning is not None:
            self.db.execute(REASONING_FTS_INSERT, (message_id, reasoning))
        self.db.execute(
            "UPDATE conversations SET updated_at = ? WHERE id = ?", (now, conversation_id)
        )
        return message_id

    def append_chunk(self, message_id: int, seq: int, text: str) -> None:
        """Append one batch of streamed text to a reply (one row, one short transaction)."""
        with self._transaction():
            self.db.execute(
                "INSERT INTO message_chunks (message_id, seq, text) VALUES (?, ?, ?)",
                (message_id, seq, text),
            )

    def finish_message(
        self,
        message_id: int,
        *,
        tail: str = "",
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
        """Compact the streamed chunks, then ``tail`` (the text not yet written), into the
        content, and record how it ended."""
        if not self._finish(
            message_id,
            tail=tail,
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
        ):
            raise LogError(ROW_GONE)

    def _finish(
        self,
        message_id: int,
        *,
        only_streaming: bool = False,
        tail: str | None = "",
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
    ) -> bool:
        """``finish_message``; False if there was no such row (``only_streaming``:
        no such row still streaming). ``tail`` None: nothing was streamed into the
        row, so its content, chunks and full-text entry are left as they are."""
        with self._transaction():
            found = self.db.execute(
                "SELECT content, reasoning FROM messages WHERE id = ?"
                + (" AND status = 'streaming'" if only_streaming else ""),
                (message_id,),
            ).fetchone()
            if found is None:
                return False
            old_content, old_reasoning = found
            content = old_content
            streamed = None
            if tail is not None:
                (streamed,) = self.db.execute(
                    "SELECT group_concat(text, '') FROM"
                    " (SELECT text FROM message_chunks WHERE message_id = ? ORDER BY seq)",
                    (message_id,),
                ).fetchone()
                content = old_content + (streamed or "") + tail
            self.db.execute(
                "UPDATE messages SET content = ?, status = ?, finish_reason = ?,"
                " prompt_tokens = ?, completion_tokens = ?, ttft_s = ?, duration_s = ?,"
                " error = ?, finished_at = ?, tool_calls = ?, reasoning = ?,"
                " reasoning_tokens = ?, reasoning_opaque = ? WHERE id = ?",
                (
                    content,
                    status,
                    finish_reason,
                    prompt_tokens,
                    completion_tokens,
                    ttft_s,
                    duration_s,
                    error,
                    time.time(),
                    tool_calls,
                    reasoning,
                    reasoning_tokens,
                    reasoning_opaque,
                    message_id,
                ),
            )
            # An entry is rewritten only if its text changed: a reply whose row was
            # written with all its text (read in one piece) is common in a batch.
            if content != old_content:
                self.db.execute(FTS_DELETE, (message_id, old_content))
                self.db.execute(FTS_INSERT, (message_id, content))
            if streamed is not None:
                self.db.execute("DELETE FROM message_chunks WHERE message_id = ?", (message_id,))
            if reasoning != old_reasoning:
                if old_reasoning is not None:
                    self.db.execute(REASONING_FTS_DELETE, (message_id, old_reasoning))
                if reasoning is not None:
                    self.db.execute(REASONING_FTS_INSERT, (message_id, reasoning))
        return True

    def add_ended_reply(
        self,
        conversation_id: str,
        content: str,
        *,
        request_id: int | None,
        model: str | None,
        provider: str | None,
        **ending: Any,
    ) -> int:
        """A reply that ended before its row was written: the row ``add_message``
        (streaming) then ``finish_message(**ending)`` leave, as one INSERT.

        Why: a short reply, often one network read for a batch line, would
        otherwise be inserted, then read back, updated, and its (absent) chunks
        deleted, with its full-text entry written twice.
        """
        with self._transaction():
            return self._insert_message(
                conversation_id,
                "assistant",
                content,
                request_id=request_id,
                model=model,
                provider=provider,
                writer=self._writer,  # as the streamed row keeps it
                finished_at=time.time(),
                **ending,
            )

    def add_tool_call(
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
        with self._transaction():
            self.db.execute(
                "INSERT INTO tool_calls (conversation_id, message_id, hop, call_id, name,"
                " arguments, result, status, duration_s, created_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    conversation_id,
                    message_id,
                    hop,
                    call_id,
                    name,
                    arguments,
                    result,
                    status,
                    duration_s,
                    time.time(),
                ),
            )

    def mark_undone(self, conversation_id: str, text: str) -> int:
        """Take the exchange that user message ``text`` opened, and everything after it,
        out of the conversation (/undo, /retry): the rows stay, marked; how many."""
        with self._transaction():
            cursor = self.db.execute(UNDO_QUERY, (time.time(), conversation_id, text))
        return cursor.rowcount

    def delete_conversation(self, conversation_id: str) -> bool:
        with self._transaction():
            cursor = self.db.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
        return cursor.rowcount > 0


def _updated(cursor: sqlite3.Cursor) -> None:
    """An UPDATE of a row the command made must find it: else it was removed meanwhile."""
    if cursor.rowcount == 0:
        raise LogError(ROW_GONE)
