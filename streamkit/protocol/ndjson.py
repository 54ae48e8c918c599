"""JSON lines in, sans-IO: splitting bytes into lines, and checking batch records.

``LineSplitter`` turns arbitrary byte chunks into complete lines (``\\n`` ends
a line, a ``\\r`` before it is dropped), numbering them from 1, so a record
without an ``id`` can be named by its line. ``parse_record`` turns one line
into a ``BatchRecord`` or an ``InputProblem`` with a one-line reason: a bad
line becomes an error result, never the end of the batch.
"""

from __future__ import annotations

from typing import Any

import msgspec

from streamkit.protocol.records import GenerationFields, RecordProblem, build_request
from streamkit.request import GenerationOptions, GenerationRequest

DEFAULT_MAX_LINE_BYTES = 16 << 20


class LineTooLong(ValueError):
    pass


class LineSplitter:
    """Bytes in, ``(line_number, line)`` out; the same however input is chunked."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self._tail = b""
        self._count = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        if self._tail:
            data = self._tail + data
        lines = data.split(b"\n")
        self._tail = lines.pop()
        if len(self._tail) > self.max_line_bytes:
            raise LineTooLong(f"line {self._count + len(lines) + 1} is longer than "
                              f"{self.max_line_bytes} bytes")
        out = []
        for line in lines:
            self._count += 1
            out.append((self._count, line[:-1] if line.endswith(b"\r") else line))
        return out

    def close(self) -> list[tuple[int, bytes]]:
        """End of input: a last line without ``\\n`` still counts."""
        tail, self._tail = self._tail, b""
        if not tail.strip():
            return []
        self._count += 1
        return [(self._count, tail[:-1] if tail.endswith(b"\r") else tail)]


class _RecordIn(GenerationFields):
    """One input line; unknown keys are allowed (they ride along unused)."""

    id: str | int | None = None
    idempotency_key: str | None = None


class BatchRecord(msgspec.Struct, frozen=True):
    """A valid input line: its id and the request it asks for."""

    line: int
    id: Any
    request: GenerationRequest
    idempotency_key: str | None = None


class InputProblem(msgspec.Struct, frozen=True):
    """A line that cannot be run, and why."""

    line: int
    id: Any
    message: str


_decode_json = msgspec.json.Decoder().decode


def parse_record(
    line_number: int,
    line: bytes,
    *,
    kind: str,
    model: str | None,
    defaults: GenerationOptions,
) -> BatchRecord | InputProblem:
    """Check one input line and build its request (record fields beat ``defaults``)."""
    try:
        raw = _decode_json(line)
    except msgspec.DecodeError as exc:
        return InputProblem(line_number, line_number, f"line {line_number}: not valid JSON: {exc}")
    if not isinstance(raw, dict):
        return InputProblem(
            line_number, line_number,
            f"line {line_number}: expected a JSON object, got {type(raw).__name__}",
        )
    record_id = raw.get("id")
    if not isinstance(record_id, str | int) or isinstance(record_id, bool):
        record_id = line_number
    try:
        record = msgspec.convert(raw, _RecordIn)
    except msgspec.ValidationError as exc:
        return InputProblem(line_number, record_id, f"line {line_number}: {exc}")
    request = build_request(kind, record, model=model, defaults=defaults)
    if isinstance(request, RecordProblem):
        return InputProblem(line_number, record_id, f"line {line_number}: {request.reason}")
    return BatchRecord(line_number, record_id, request, record.idempotency_key)
