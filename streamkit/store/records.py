"""The log's rows as values: what a query returns, independent of SQLite."""

from __future__ import annotations

import msgspec


class StoredMessage(msgspec.Struct, frozen=True):
    id: int
    conversation_id: str
    role: str
    content: str
    model: str | None
    provider: str | None
    created_at: float
    finish_reason: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_s: float | None
    duration_s: float | None
    status: str
    error: str | None
    tool_calls: str | None = None  # JSON list of {id, name, arguments}
    tool_call_id: str | None = None
    request_id: int | None = None  # the ``requests`` row a reply answers
    reasoning: str | None = None  # a reasoning model's thinking, never part of content
    reasoning_tokens: int | None = None
    reasoning_opaque: str | None = None  # JSON list of sealed parts, as sent
    undone_at: float | None = None  # taken out of the conversation (/undo, /retry), kept here


class StoredToolCall(msgspec.Struct, frozen=True):
    hop: int
    call_id: str | None
    name: str | None
    arguments: str
    result: str
    status: str
    duration_s: float | None


class FailedRequest(msgspec.Struct, frozen=True):
    """A failed request as kept for listing and replay (never with any header sent)."""

    id: int
    conversation_id: str
    failed_at: float
    provider: str
    model: str | None
    endpoint: str
    body: bytes
    http_status: int | None
    response_headers: str | None  # JSON
    error: str | None
    ttft_s: float | None
    duration_s: float | None


class ConversationSummary(msgspec.Struct, frozen=True):
    id: str
    updated_at: float
    messages: int
    model: str | None
    first_prompt: str


# The columns a query reads, in the order of the fields above.
FAILED_QUERY = (
    "SELECT r.id, r.conversation_id, r.failed_at, r.provider, r.model, r.endpoint, r.body,"
    " r.http_status, r.response_headers, m.error, m.ttft_s, m.duration_s FROM requests r"
    " LEFT JOIN messages m ON m.request_id = r.id AND m.role = 'assistant'"
)


MESSAGE_COLUMNS = (
    "id, conversation_id, role, content, model, provider, created_at, finish_reason, "
    "prompt_tokens, completion_tokens, ttft_s, duration_s, status, error, tool_calls, "
    "tool_call_id, request_id, reasoning, reasoning_tokens, reasoning_opaque, undone_at"
)

# Marks undone the newest user message still in the conversation with this text
# (?3), and every row after it: the replies, tool results and failed attempts.
UNDO_QUERY = """
    UPDATE messages SET undone_at = ?1 WHERE conversation_id = ?2 AND undone_at IS NULL
    AND id >= (SELECT max(id) FROM messages WHERE conversation_id = ?2 AND role = 'user'
               AND content = ?3 AND undone_at IS NULL)
"""
