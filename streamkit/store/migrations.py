"""The log's schema history: ``MIGRATIONS[i]`` takes a database from version ``i`` to ``i + 1``.

Kept apart from the code that reads and writes rows, so a schema change is
one entry appended here and nothing else. ``PRAGMA user_version`` is the
version a database is at.

The tables, as the migrations leave them:

    ``conversations`` hold ``messages`` (role, content, model, provider,
    timestamps, finish reason, usage, TTFT, duration, status, and when an
    exchange was undone in the chat); each reply
    points at the ``requests`` row with the options it was made with (never
    an API key or a header), the server's HTTP status and kept response
    headers (request id, rate limits), and -- for a failed request only --
    the endpoint and body exactly as sent, for ``streamkit replay``.
    ``messages_fts`` is an FTS5 index over content, ``reasoning_fts`` one over
    the thinking; ``Store`` keeps both in step as it inserts and finishes a
    message, and triggers as messages are deleted.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 0 -> 1: conversations, requests, messages, streamed chunks.
    """
    CREATE TABLE conversations (
        id TEXT PRIMARY KEY,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        batch TEXT
    );
    CREATE TABLE requests (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        created_at REAL NOT NULL,
        kind TEXT NOT NULL,
        provider TEXT NOT NULL,
        model TEXT,
        options TEXT NOT NULL
    );
    CREATE TABLE messages (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        request_id INTEGER REFERENCES requests(id) ON DELETE SET NULL,
        role TEXT NOT NULL,
        content TEXT NOT NULL DEFAULT '',
        model TEXT,
        provider TEXT,
        created_at REAL NOT NULL,
        finished_at REAL,
        finish_reason TEXT,
        prompt_tokens INTEGER,
        completion_tokens INTEGER,
        ttft_s REAL,
        duration_s REAL,
        status TEXT NOT NULL DEFAULT 'complete'
            CHECK (status IN ('streaming', 'complete', 'interrupted', 'error')),
        error TEXT
    );
    CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
    CREATE INDEX messages_streaming ON messages(status) WHERE status = 'streaming';
    CREATE TABLE message_chunks (
        message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        seq INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (message_id, seq)
    );
    """,
    # 1 -> 2: full-text search over message content, kept in step by triggers.
    """
    CREATE VIRTUAL TABLE messages_fts USING fts5(
        content, content='messages', content_rowid='id'
    );
    INSERT INTO messages_fts(rowid, content) SELECT id, content FROM messages;
    CREATE TRIGGER messages_ai AFTER INSERT ON messages BEGIN
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    CREATE TRIGGER messages_ad AFTER DELETE ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.id, old.content);
    END;
    CREATE TRIGGER messages_au AFTER UPDATE OF content ON messages BEGIN
        INSERT INTO messages_fts(messages_fts, rowid, content)
            VALUES ('delete', old.id, old.content);
        INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
    END;
    """,
    # 2 -> 3: tool calls -- on the assistant message that made them, on the
    # tool message that answers one, and every run in order with its hop.
    """
    ALTER TABLE messages ADD COLUMN tool_calls TEXT;
    ALTER TABLE messages ADD COLUMN tool_call_id TEXT;
    CREATE TABLE tool_calls (
        id INTEGER PRIMARY KEY,
        conversation_id TEXT NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
        message_id INTEGER REFERENCES messages(id) ON DELETE CASCADE,
        hop INTEGER NOT NULL,
        call_id TEXT,
        name TEXT,
        arguments TEXT NOT NULL,
        result TEXT NOT NULL,
        status TEXT NOT NULL,
        duration_s REAL,
        created_at REAL NOT NULL
    );
    CREATE INDEX tool_calls_by_conversation ON tool_calls(conversation_id, id);
    """,
    # 3 -> 4: idempotency keys, so a repeated request can replay its result.
    """
    ALTER TABLE requests ADD COLUMN idempotency_key TEXT;
    CREATE INDEX requests_by_key ON requests(idempotency_key)
        WHERE idempotency_key IS NOT NULL;
    """,
    # 4 -> 5: which input line of a batch a conversation answers (for --resume).
    """
    ALTER TABLE conversations ADD COLUMN record_id TEXT;
    CREATE INDEX conversations_by_batch ON conversations(batch, record_id)
        WHERE batch IS NOT NULL;
    """,
    # 5 -> 6: what the server answered (status, request id, rate limits), and
    # failed requests kept whole -- endpoint and body as sent, never headers --
    # so that they can be listed and replayed.
    """
    ALTER TABLE requests ADD COLUMN http_status INTEGER;
    ALTER TABLE requests ADD COLUMN response_headers TEXT;
    ALTER TABLE requests ADD COLUMN endpoint TEXT;
    ALTER TABLE requests ADD COLUMN body BLOB;
    ALTER TABLE requests ADD COLUMN failed_at REAL;
    CREATE INDEX requests_failed ON requests(failed_at) WHERE failed_at IS NOT NULL;
    """,
    # 6 -> 7: a reasoning model's thinking, apart from the reply text (and so out
    # of the text's full-text index); sealed parts kept as the provider sent them.
    """
    ALTER TABLE messages ADD COLUMN reasoning TEXT;
    ALTER TABLE messages ADD COLUMN reasoning_tokens INTEGER;
    ALTER TABLE messages ADD COLUMN reasoning_opaque TEXT;
    """,
    # 7 -> 8: who is writing a streaming reply (pid, and when that process
    # started), so crash recovery leaves the rows of a live writer alone.
    """
    ALTER TABLE messages ADD COLUMN writer_pid INTEGER;
    ALTER TABLE messages ADD COLUMN writer_started TEXT;
    """,
    # 8 -> 9: full-text search over the thinking, apart from the answers'.
    """
    CREATE VIRTUAL TABLE reasoning_fts USING fts5(
        reasoning, content='messages', content_rowid='id'
    );
    INSERT INTO reasoning_fts(rowid, reasoning)
        SELECT id, reasoning FROM messages WHERE reasoning IS NOT NULL;
    CREATE TRIGGER reasoning_ad AFTER DELETE ON messages WHEN old.reasoning IS NOT NULL BEGIN
        INSERT INTO reasoning_fts(reasoning_fts, rowid, reasoning)
            VALUES ('delete', old.id, old.reasoning);
    END;
    CREATE TRIGGER reasoning_au_old AFTER UPDATE OF reasoning ON messages
        WHEN old.reasoning IS NOT NULL BEGIN
        INSERT INTO reasoning_fts(reasoning_fts, rowid, reasoning)
            VALUES ('delete', old.id, old.reasoning);
    END;
    CREATE TRIGGER reasoning_au_new AFTER UPDATE OF reasoning ON messages
        WHEN new.reasoning IS NOT NULL BEGIN
        INSERT INTO reasoning_fts(rowid, reasoning) VALUES (new.id, new.reasoning);
    END;
    """,
    # 9 -> 10: exchanges taken out of a conversation (/undo, /retry) stay in the
    # log, marked with when; continuing the conversation leaves them out.
    """
    ALTER TABLE messages ADD COLUMN undone_at REAL;
    """,
    # 10 -> 11: the full-text entries of a new or finished message are written by
    # ``Store`` itself, not by triggers. A statement that fires a trigger runs in a
    # statement transaction, and FTS5 writes its pending terms out as a new segment
    # at each one: a segment (and its merges) per message instead of one per commit,
    # so that an indexed insert cost twice what it costs written by hand. Deletes
    # keep their triggers (a conversation's messages go by ON DELETE CASCADE).
    """
    DROP TRIGGER messages_ai;
    DROP TRIGGER messages_au;
    DROP TRIGGER reasoning_au_old;
    DROP TRIGGER reasoning_au_new;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)
