"""What a batch line's output record says: its result, its replay, or its error.

Kept apart from ``streamkit.pipeline.batch`` (the reader, workers and writer)
so each has one job; a cluster's rows (``streamkit.cluster.rows``) are built
from the same records.
"""

from __future__ import annotations

from typing import Any

from streamkit.events import Usage
from streamkit.protocol.ndjson import BatchRecord
from streamkit.protocol.reply import Reply
from streamkit.protocol.structured import check_reply
from streamkit.store.records import StoredMessage


def usage_fields(usage: Usage) -> dict[str, Any]:
    """The OpenAI usage object: reasoning tokens are a field of the record itself."""
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "total_tokens": usage.total_tokens,
    }


def reasoning_fields(reply: Reply) -> dict[str, Any]:
    """``reasoning`` and ``reasoning_tokens``, for a reply from a model that thinks."""
    tokens = reply.usage.reasoning_tokens if reply.usage else None
    if not reply.reasoning and tokens is None:
        return {}
    return {"reasoning": reply.reasoning, "reasoning_tokens": tokens}


def replayed_record(job: BatchRecord, stored: StoredMessage) -> dict[str, Any]:
    """The result of an idempotent line that already completed in an earlier run."""
    usage = None
    if stored.completion_tokens is not None:
        usage = {
            "prompt_tokens": stored.prompt_tokens,
            "completion_tokens": stored.completion_tokens,
            "total_tokens": (stored.prompt_tokens or 0) + stored.completion_tokens,
        }
    record = content(job.id, stored.content, stored.finish_reason, job.request.options.schema)
    if "error" in record:
        return record
    if stored.reasoning or stored.reasoning_tokens is not None:
        record.update(
            {"reasoning": stored.reasoning or "", "reasoning_tokens": stored.reasoning_tokens}
        )
    record.update(
        {
            "finish_reason": stored.finish_reason,
            "usage": usage,
            "model": stored.model,
            "latency": {"ttft_s": stored.ttft_s, "total_s": stored.duration_s},
            "replayed": True,
        }
    )
    return record


def content(
    record_id: Any, text: str, finish_reason: str | None, schema: dict[str, Any] | None
) -> dict[str, Any]:
    """A result's content: ``text``; with a schema, ``json`` (the parsed value, and
    ``truncated`` when it was closed early to stay valid), or, when the reply does not
    validate, the error record, with the raw ``text`` kept."""
    if schema is None:
        return {"id": record_id, "text": text}
    value, mismatch = check_reply(text, schema)
    if mismatch is not None:
        return {**error_record(record_id, "schema", mismatch, None), "text": text}
    record: dict[str, Any] = {"id": record_id, "json": value}
    if finish_reason == "length":
        record["truncated"] = True
    return record


def error_record(record_id: Any, kind: str, message: str, status: int | None) -> dict[str, Any]:
    return {"id": record_id, "error": {"type": kind, "message": message, "status": status}}
