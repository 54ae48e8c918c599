"""``--trace FILE``: request arrivals recorded from a real service, read sans-IO.

Three layouts, told apart by their fields, each accepted as published:

* streamkit's JSONL: ``{"timestamp": 0.25, "input_tokens": 512,
  "output_tokens": 64, "session_id": "u1"}`` (seconds; ``session_id``
  optional);
* Mooncake's JSONL (``{"timestamp": 27482, "input_length": 6955,
  "output_length": 52, "hash_ids": [46, 47]}``): milliseconds, and
  ``hash_ids`` naming the 512-token blocks a prompt is made of, so that
  requests sharing blocks share a prefix;
* the Azure LLM inference trace CSV (``TIMESTAMP,ContextTokens,GeneratedTokens``,
  the timestamp a date and time with up to 7 decimals, and in the 2024 trace
  a UTC offset).

Times are made relative to the first record, which is sent at 0. Records
sharing a session id are one conversation's turns (tracesessions.py).
"""

from __future__ import annotations

import csv
import datetime
import io
import re

import msgspec

from streamkit.errors import UsageError
from streamkit.protocol.ndjson import LineSplitter

MOONCAKE_BLOCK_TOKENS = 512
_AZURE_TIME = re.compile(r"(\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d)(?:\.(\d+))?\s*(Z|[+-]\d\d:?\d\d)?")


class TraceRecord(msgspec.Struct, frozen=True):
    at: float  # seconds from the first record
    input_tokens: int
    output_tokens: int
    session: str | None = None
    blocks: tuple[int, ...] = ()  # Mooncake's hash_ids


class _Line(msgspec.Struct):
    timestamp: float
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_length: int | None = None  # Mooncake
    output_length: int | None = None
    hash_ids: list[int] = []
    session_id: str | int | None = None


def parse_trace(raw: bytes, name: str) -> list[TraceRecord]:
    """The trace's records in time order, relative to the first; usage errors name the line."""
    head = raw.lstrip()[:1]
    records = _jsonl(raw, name) if head == b"{" else _azure(raw, name)
    if not records:
        raise UsageError(f"trace {name} has no records")
    records.sort(key=lambda r: r.at)
    start = records[0].at
    return [msgspec.structs.replace(r, at=r.at - start) for r in records]


def _jsonl(raw: bytes, name: str) -> list[TraceRecord]:
    records = []
    splitter = LineSplitter()
    for number, line in splitter.feed(raw) + splitter.close():
        if not line.strip():
            continue
        try:
            item = msgspec.json.decode(line, type=_Line)
        except msgspec.DecodeError as exc:
            raise UsageError(f"trace {name} line {number}: {exc}") from None
        if item.input_length is not None:  # Mooncake: milliseconds
            at, prompt, output = item.timestamp / 1000, item.input_length, item.output_length
        else:
            at, prompt, output = item.timestamp, item.input_tokens, item.output_tokens
        if prompt is None or output is None or prompt < 1 or output < 1:
            raise UsageError(
                f"trace {name} line {number}: needs input_tokens and "
                "output_tokens (or Mooncake's input_length and output_length), "
                "each at least 1"
            )
        session = None if item.session_id is None else str(item.session_id)
        records.append(TraceRecord(at, prompt, output, session, tuple(item.hash_ids)))
    return records


def _azure(raw: bytes, name: str) -> list[TraceRecord]:
    try:
        rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise UsageError(f"trace {name}: neither JSONL nor a CSV: {exc}") from None
    records = []
    for number, row in enumerate(rows, 2):
        try:
            at = azure_time(row["TIMESTAMP"])
            prompt, output = int(row["ContextTokens"]), int(row["GeneratedTokens"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(
                f"trace {name} line {number}: expected the Azure columns "
                "TIMESTAMP,ContextTokens,GeneratedTokens"
            ) from None
        records.append(TraceRecord(at, max(1, prompt), max(1, output)))
    return records


def azure_time(text: str) -> float:
    """``2023-11-16 18:15:46.6805900`` as POSIX seconds (UTC unless the text gives an
    offset, as the 2024 trace does: ``2024-05-10 00:00:00.009930+00:00``; decimals
    past 6 kept)."""
    match = _AZURE_TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(text)
    whole, fraction, offset = match.groups()
    moment = datetime.datetime.fromisoformat(whole + (offset or ""))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp() + (float(f"0.{fraction}") if fraction else 0.0)
