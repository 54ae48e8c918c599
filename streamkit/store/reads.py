"""The log's read side: the queries behind ``logs``, resume and replay.

Kept apart from ``streamkit.store.database`` (connection, schema and the
streaming writes) so that each file has one job; ``Store`` inherits these
queries and its connection serves both.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import msgspec

from streamkit.errors import UsageError
from streamkit.store.records import (
    FAILED_QUERY,
    MESSAGE_COLUMNS,
    ConversationSummary,
    FailedRequest,
    StoredMessage,
    StoredToolCall,
)
from streamkit.store.sqlite_helpers import plain_words


class LogReads:
    """Read queries over the log; the class using it provides ``db``."""

    db: sqlite3.Connection

    def completed_batch_replies(self, batch: str) -> dict[str, StoredMessage]:
        """record id (JSON) -> the completed reply, for the lines of ``batch`` that finished."""
        columns = ", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))
        rows = self.db.execute(
            f"SELECT c.record_id, {columns} FROM conversations c"
            " JOIN messages m ON m.conversation_id = c.id"
            " WHERE c.batch = ? AND c.record_id IS NOT NULL AND m.role = 'assistant'"
            " AND m.status = 'complete' ORDER BY m.id",
            (batch,),
        ).fetchall()
        return {row[0]: StoredMessage(*row[1:]) for row in rows}

    def failed_requests(self, limit: int = 20) -> list[FailedRequest]:
        """The latest failed requests, newest first."""
        rows = self.db.execute(
            f"{FAILED_QUERY} WHERE r.failed_at IS NOT NULL ORDER BY r.failed_at DESC, r.id DESC"
            " LIMIT ?",
            (limit,),
        ).fetchall()
        return [FailedRequest(*row) for row in rows]

    def failed_request(self, request_id: int) -> FailedRequest | None:
        row = self.db.execute(
            f"{FAILED_QUERY} WHERE r.id = ? AND r.failed_at IS NOT NULL", (request_id,)
        ).fetchone()
        return FailedRequest(*row) if row else None

    def responses(self, conversation_id: str) -> dict[int, tuple[int, dict[str, str]]]:
        """request id -> (HTTP status, kept headers), for a conversation's requests."""
        rows = self.db.execute(
            "SELECT id, http_status, response_headers FROM requests"
            " WHERE conversation_id = ? AND http_status IS NOT NULL",
            (conversation_id,),
        ).fetchall()
        return {row[0]: (row[1], msgspec.json.decode(row[2] or "{}")) for row in rows}

    def completed_reply(self, idempotency_key: str) -> StoredMessage | None:
        """The reply of the latest *completed* request made with this key."""
        columns = ", ".join("m." + c for c in MESSAGE_COLUMNS.split(", "))
        row = self.db.execute(
            f"SELECT {columns} FROM requests r JOIN messages m ON m.request_id = r.id"
            " WHERE r.idempotency_key = ? AND m.role = 'assistant' AND m.status = 'complete'"
            " ORDER BY m.id DESC LIMIT 1",
            (idempotency_key,),
        ).fetchone()
        return StoredMessage(*row) if row else None

    def tool_calls(self, conversation_id: str) -> list[StoredToolCall]:
        rows = self.db.execute(
            "SELECT hop, call_id, name, arguments, result, status, duration_s FROM tool_calls"
            " WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        return [StoredToolCall(*row) for row in rows]

    def last_conversation(self) -> str | None:
        row = self.db.execute(
            "SELECT id FROM conversations WHERE batch IS NULL"
            " ORDER BY updated_at DESC, rowid DESC LIMIT 1"
        ).fetchone()
        return row[0] if row else None

    def has_conversation(self, conversation_id: str) -> bool:
        return (
            self.db.execute(
                "SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)
            ).fetchone()
            is not None
        )

    def messages(self, conversation_id: str) -> list[StoredMessage]:
        """A conversation's messages; a reply still streaming shows its chunks so far."""
        rows = self.db.execute(
            f"SELECT {MESSAGE_COLUMNS} FROM messages WHERE conversation_id = ? ORDER BY id",
            (conversation_id,),
        ).fetchall()
        out = []
        for row in rows:
            message = StoredMessage(*row)
            if message.status == "streaming":
                (streamed,) = self.db.execute(
                    "SELECT group_concat(text, '') FROM (SELECT text FROM message_chunks"
                    " WHERE message_id = ? ORDER BY seq)",
                    (message.id,),
                ).fetchone()
                message = msgspec.structs.replace(
                    message, content=message.content + (streamed or "")
                )
            out.append(message)
        return out

    def conversations(self, limit: int = 20) -> list[ConversationSummary]:
        rows = self.db.execute(
            """
            SELECT c.id, c.updated_at, count(m.id),
                   (SELECT model FROM messages WHERE conversation_id = c.id
                        AND role = 'assistant' ORDER BY id DESC LIMIT 1),
                   coalesce((SELECT content FROM messages WHERE conversation_id = c.id
                        AND role = 'user' ORDER BY id LIMIT 1), '')
            FROM conversations c LEFT JOIN messages m ON m.conversation_id = c.id
            GROUP BY c.id ORDER BY c.updated_at DESC, c.rowid DESC LIMIT ?
            """,
            (limit,),
        ).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def search(
        self, query: str, limit: int = 20, *, fts: bool = False, reasoning: bool = False
    ) -> list[tuple[StoredMessage, str]]:
        """Messages with every word of ``query``, best first, with a highlighted snippet.

        With ``fts``, ``query`` is FTS5 query syntax (``AND``, ``"phrases"``,
        ``prefix*``) as it stands. With ``reasoning``, the thinking of reasoning
        models is searched instead of the messages' text.
        """
        if not fts:
            query = plain_words(query)
        index = "reasoning_fts" if reasoning else "messages_fts"
        try:
            rows = self.db.execute(
                f"SELECT {', '.join('m.' + c for c in MESSAGE_COLUMNS.split(', '))},"
                f" snippet({index}, 0, '[', ']', '…', 12)"
                f" FROM {index} JOIN messages m ON m.id = {index}.rowid"
                f" WHERE {index} MATCH ? ORDER BY rank LIMIT ?",
                (query, limit),
            ).fetchall()
        except sqlite3.OperationalError as exc:
            raise UsageError(f"bad search query {query!r}: {exc}") from None
        return [(StoredMessage(*row[:-1]), row[-1]) for row in rows]

    def all_messages(self) -> Iterator[StoredMessage]:
        for row in self.db.execute(f"SELECT {MESSAGE_COLUMNS} FROM messages ORDER BY id"):
            yield StoredMessage(*row)
