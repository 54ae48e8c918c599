"""JSON lines in, sans-IO: splitting bytes into lines, and checking batch records.

``LineSplitter`` turns arbitrary byte chunks into complete lines (``\\n`` ends
a line, a ``\\r`` before it is dropped), numbering them from 1, so a record
without an ``id`` can be named by its line. ``parse_record`` turns one line
into a ``BatchRecord`` or an ``InputProblem`` with a one-line reason: a bad
line (an overlong one too) becomes an error result, never the end of the batch.
"""

from __future__ import annotations

import bisect
from typing import Any

import msgspec

from streamkit.protocol.records import GenerationFields, RecordProblem, build_request
from streamkit.request import GenerationOptions, GenerationRequest

DEFAULT_MAX_LINE_BYTES = 16 << 20


class LineTooLong(ValueError):
    pass


class TooLong(msgspec.Struct, frozen=True):
    """Stands for a line longer than ``limit`` bytes: read past, never held whole."""

    limit: int


class LineSplitter:
    """Bytes in, ``(line_number, line)`` out; the same however input is chunked.

    A line (without its ``\\n``) may be at most ``max_line_bytes`` long. A
    longer one raises ``LineTooLong``; with ``skip_overlong`` it comes out as
    ``TooLong`` as soon as it passes the limit instead, and its remaining bytes
    are dropped up to the next ``\\n`` as they arrive, so no more than the limit
    is ever held and the lines after it are read as usual (``/dev/zero`` makes
    one ``TooLong`` and nothing more, however long it is read).
    """

    def __init__(
        self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES, *, skip_overlong: bool = False
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.skip_overlong = skip_overlong
        self._held: list[bytes] = []  # the start of the current line
        self._held_size = 0
        self._skipping = False  # inside an overlong line, up to its \n
        self._count = 0

    @property
    def held_bytes(self) -> int:
        """Bytes of an unfinished line kept for the next ``feed``."""
        return self._held_size

    def feed(self, data: bytes) -> list[tuple[int, bytes | TooLong]]:
        out: list[tuple[int, bytes | TooLong]] = []
        start = 0
        if self._skipping:
            start = data.find(b"\n") + 1
            if not start:
                return out
            self._skipping = False
        end = data.find(b"\n", start)
        if end < 0:
            self._hold(data[start:], out)
            return out
        first = data[start:end]
        if self._held:
            first = b"".join(self._held) + first
            self._held, self._held_size = [], 0
        self._emit(first, out)
        lines = data[end + 1 :].split(b"\n")
        tail = lines.pop()
        for line in lines:
            self._emit(line, out)
        self._hold(tail, out)
        return out

    def close(self) -> list[tuple[int, bytes | TooLong]]:
        """End of input: a last line without ``\\n`` still counts."""
        tail = b"".join(self._held)
        self._held, self._held_size, self._skipping = [], 0, False
        if not tail.strip():
            return []
        self._count += 1
        return [(self._count, tail[:-1] if tail.endswith(b"\r") else tail)]

    def _emit(self, line: bytes, out: list[tuple[int, bytes | TooLong]]) -> None:
        self._count += 1
        if len(line) > self.max_line_bytes:
            out.append((self._count, self._too_long()))
        else:
            out.append((self._count, line[:-1] if line.endswith(b"\r") else line))

    def _hold(self, piece: bytes, out: list[tuple[int, bytes | TooLong]]) -> None:
        if self._held_size + len(piece) > self.max_line_bytes:
            self._held, self._held_size = [], 0
            self._count += 1
            out.append((self._count, self._too_long()))
            self._skipping = True
        elif piece:
            self._held.append(piece)
            self._held_size += len(piece)

    def _too_long(self) -> TooLong:
        if not self.skip_overlong:
            raise LineTooLong(f"line {self._count} is longer than {self.max_line_bytes} bytes")
        return TooLong(self.max_line_bytes)


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
_encode_json = msgspec.json.Encoder().encode


def id_key(value: Any) -> bytes:
    """A record id as a comparable key (``1`` and ``"1"`` stay different)."""
    return _encode_json(value)


class BatchIds:
    """The ids of a batch's lines so far: each names one line.

    A line's id is its ``id`` field, else its line number. A later line whose
    id is taken -- given twice, or given as the number of a line that has no
    ``id`` -- is an input problem of that later line, so every output record,
    every ``--resume`` skip and every log key stands for one line only
    (``1`` and ``"1"`` stay different ids).

    Every id is kept, but integer ids that count up with their lines (no
    ``id`` field at all, or ``"id": 0, 1, 2, ...``, the usual case) are kept
    as runs -- first id, last id, first line -- so a batch of millions of
    lines holds a few runs, not a key per line (100 bytes a line, most of a
    long batch's memory). Other ids are kept one key each.
    """

    def __init__(self) -> None:
        self._lines: dict[bytes, int] = {}  # the ids not in a run
        self._firsts: list[int] = []  # the runs, in id order: first id,
        self._lasts: list[int] = []  # last id,
        self._lines_of_firsts: list[int] = []  # and the line of the first

    def duplicate(self, line: int, record_id: Any) -> str | None:
        """Why ``record_id`` cannot name ``line`` (another line has it), else None."""
        if type(record_id) is int:  # not bool: ``true`` is not the id 1
            first = self._in_run(record_id)
            if first is None:
                first = self._lines.get(id_key(record_id))
            if first is None:
                self._add_int(record_id, line)
                return None
        else:
            first = self._lines.setdefault(id_key(record_id), line)
        if first == line:
            return None
        return (
            f"line {line}: the id {id_key(record_id).decode()} is already line {first}'s (ids "
            "must be unique in a batch; a line without one is named by its number)"
        )

    def _in_run(self, value: int) -> int | None:
        """The line of integer id ``value`` if a run holds it."""
        at = bisect.bisect_right(self._firsts, value) - 1
        if at < 0 or value > self._lasts[at]:
            return None
        return self._lines_of_firsts[at] + value - self._firsts[at]

    def _add_int(self, value: int, line: int) -> None:
        """Extend the last run, start one after it, or keep ``value`` as a key."""
        if self._firsts:
            last = self._lasts[-1]
            if value == last + 1 and line == self._lines_of_firsts[-1] + value - self._firsts[-1]:
                self._lasts[-1] = value
                return
            if value <= last:  # below the last run: runs stay in id order
                self._lines[id_key(value)] = line
                return
        self._firsts.append(value)
        self._lasts.append(value)
        self._lines_of_firsts.append(line)


def too_long_message(line_number: int, line: TooLong) -> str:
    """Why an overlong line was not read."""
    return (
        f"line {line_number}: longer than {line.limit} bytes, the most a line may be "
        "(skipped unread)"
    )


def parse_record(
    line_number: int,
    line: bytes | TooLong,
    *,
    kind: str,
    model: str | None,
    defaults: GenerationOptions,
) -> BatchRecord | InputProblem:
    """Check one input line and build its request (record fields beat ``defaults``)."""
    if isinstance(line, TooLong):
        return InputProblem(line_number, line_number, too_long_message(line_number, line))
    try:
        raw = _decode_json(line)
    except msgspec.DecodeError as exc:
        return InputProblem(line_number, line_number, f"line {line_number}: not valid JSON: {exc}")
    if not isinstance(raw, dict):
        return InputProblem(
            line_number,
            line_number,
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
    if record.idempotency_key is not None:
        request = msgspec.structs.replace(request, idempotency_key=record.idempotency_key)
    return BatchRecord(line_number, record_id, request, record.idempotency_key)
