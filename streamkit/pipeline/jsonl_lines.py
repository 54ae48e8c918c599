"""A JSONL input read line by line in bounded memory: the one reader of every batch.

``chat --jsonl``, ``complete --jsonl`` and ``score --jsonl`` read their input
through this, so a line too long to hold (or an endless one, ``-i /dev/zero``)
is one ``TooLong`` line for the caller to answer with an error record, and
the lines after it are read as usual. At most the line limit plus one read
is held, however large the input.
"""

from __future__ import annotations

import os
import stat
from collections import deque
from pathlib import Path

import trio

from streamkit.protocol.ndjson import DEFAULT_MAX_LINE_BYTES, LineSplitter, TooLong

READ_SIZE = 64 * 1024


class LineReader:
    """The non-blank lines of ``source``, numbered from 1 (blank lines count too)."""

    def __init__(
        self, source: trio.abc.ReceiveStream, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    ) -> None:
        self.source = source
        self._splitter = LineSplitter(max_line_bytes, skip_overlong=True)
        self._ready: deque[tuple[int, bytes | TooLong]] = deque()
        self._ended = False

    async def next_line(self) -> tuple[int, bytes | TooLong] | None:
        """The next line, or None at the end of the input."""
        while not self._ready:
            if self._ended:
                return None
            data = await self.source.receive_some(READ_SIZE)
            if data:
                lines = self._splitter.feed(data)
            else:
                lines = self._splitter.close()
                self._ended = True
            self._ready.extend((number, line) for number, line in lines if _is_record(line))
        return self._ready.popleft()


def count_lines(path: Path) -> int | None:
    """The records a regular file holds (its non-blank lines), for a progress bar's
    total; None for anything else (a pipe, a device: ``/dev/zero`` never ends)."""
    splitter = LineSplitter(skip_overlong=True)
    count = 0
    try:
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                return None
            while data := handle.read(READ_SIZE):
                count += _records(splitter.feed(data))
    except OSError:
        return None
    return count + _records(splitter.close())


def _records(lines: list[tuple[int, bytes | TooLong]]) -> int:
    return sum(1 for _, line in lines if _is_record(line))


def _is_record(line: bytes | TooLong) -> bool:
    """Every line but a blank one asks for a record (an overlong one: its error)."""
    return isinstance(line, TooLong) or bool(line.strip())
