"""The driver's journal: every finished row, appended the moment it arrives.

In input order, a finished row may wait in the reorder buffer for an
earlier one; if the driver dies then, the output lacks it although a node
did the work. The journal (``OUTPUT.journal``, beside ``--output``) holds
every row as it is received, so ``--resume`` writes those rows from the
journal instead of asking the server again. A run that writes every row
removes its journal.
"""

from __future__ import annotations

from pathlib import Path

import msgspec

from streamkit.errors import OutputError
from streamkit.protocol.ndjson import id_key


class Journal:
    """Append-only, one whole output line at a time, flushed as it is written."""

    def __init__(self, output: Path, *, resume: bool) -> None:
        self.path = output.with_name(output.name + ".journal")
        self.answered = answered_rows(self.path) if resume else {}
        try:
            self._file = self.path.open("ab" if resume else "wb")
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None

    def append(self, line: bytes) -> None:
        try:
            self._file.write(line)
            self._file.flush()
        except OSError as exc:
            raise OutputError(f"cannot write {self.path}: {exc.strerror or exc}") from None

    def close(self, *, complete: bool) -> None:
        """Close it; a ``complete`` run's output holds every row, so it is removed."""
        self._file.close()
        if complete:
            self.path.unlink(missing_ok=True)


def answered_rows(path: Path) -> dict[bytes, bytes]:
    """Id key -> output line of each successful row in a journal (a torn last line
    is cut off, so appending keeps one whole record a line)."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return {}
    whole = data[: data.rfind(b"\n") + 1]
    if len(whole) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(whole))
    rows: dict[bytes, bytes] = {}
    for line in whole.splitlines(keepends=True):
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            continue
        if isinstance(record, dict) and "id" in record and "error" not in record:
            rows[id_key(record["id"])] = line
    return rows
