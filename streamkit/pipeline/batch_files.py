"""A batch's input and output, opened so that what a user gives is never destroyed.

The output file is opened without truncating it and compared with every file
the run reads -- the input (named with ``--input`` or given on stdin) and the
conversation log -- by device and inode, so a hard link or a symlink to one
of them counts as the same file. Such an output is refused before a byte of
it changes; only then is it truncated (or, with ``--resume``, appended to).
Without ``--output``, a stdout that is the input is refused the same way
(``>> in.jsonl`` would feed the run its own results).

Results go out as whole lines, each flushed as it is written. A write that
fails (a full disk, an I/O error) is an ``OutputError`` naming the output;
what was written before it stays, and ``--resume`` starts after it.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import BinaryIO

import msgspec
import trio

from streamkit.errors import OutputError, UsageError
from streamkit.protocol.ndjson import id_key


class LineOutput:
    """Whole-line writes to a batch's output, flushed one by one."""

    def __init__(self, out: BinaryIO, name: str, *, owned: bool) -> None:
        self.out = out
        self.name = name  # for messages: ``stdout`` or the file's path
        self.owned = owned  # closed here (a file we opened), or left open (stdout)
        self.failed = False  # a write failed: nothing more is written

    def write(self, data: bytes) -> None:
        """Write ``data`` (whole lines) and flush it; a closed pipe stays a
        ``BrokenPipeError``, any other failure is an ``OutputError``."""
        try:
            self.out.write(data)
            self.out.flush()
        except BrokenPipeError:
            raise
        except OSError as exc:
            self.failed = True
            raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None

    def close(self) -> None:
        """Close a file we opened (a failure already reported is not reported again)."""
        if not self.owned:
            return
        try:
            self.out.close()
        except OSError as exc:
            if not self.failed:
                raise OutputError(f"cannot write {self.name}: {exc.strerror or exc}") from None


class BatchFiles(msgspec.Struct, frozen=True):
    """What a batch reads and writes, and the ids ``--resume`` skips."""

    source: trio.abc.ReceiveStream
    output: LineOutput
    skip_ids: frozenset[bytes]


@asynccontextmanager
async def open_batch_files(
    input_path: Path | None,
    output_path: Path | None,
    *,
    resume: bool,
    log: Path | None = None,
) -> AsyncIterator[BatchFiles]:
    """The input (``input_path`` or stdin), the checked output (``output_path`` or
    stdout) and, with ``resume``, the ids already answered in ``output_path``.

    ``log`` is the conversation log's file, which the output must not be either.
    """
    try:
        fd = os.open(input_path, os.O_RDONLY) if input_path else os.dup(sys.stdin.fileno())
        read = os.fstat(fd)
    except OSError as exc:
        raise UsageError(f"cannot read {input_path or 'stdin'}: {exc.strerror}") from None
    try:
        output = _open_output(
            output_path,
            resume=resume,
            read=read,
            input_name=str(input_path) if input_path else "stdin",
            log=log,
        )
    except BaseException:
        os.close(fd)
        raise
    try:
        skip = finished_ids(output_path) if resume and output_path else frozenset()
        async with trio.lowlevel.FdStream(fd) as source:
            yield BatchFiles(source, output, skip)
    finally:
        output.close()


def _open_output(
    path: Path | None,
    *,
    resume: bool,
    read: os.stat_result,
    input_name: str,
    log: Path | None,
) -> LineOutput:
    if path is None:
        try:
            written = os.fstat(sys.stdout.fileno())
        except OSError:
            written = None
        if written is not None:
            _refuse_if_read("stdout", written, read, input_name, log)
        return LineOutput(sys.stdout.buffer, "stdout", owned=False)
    existed = os.path.lexists(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_APPEND if resume else 0)
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    try:
        written = os.fstat(fd)
        _refuse_if_read(f"--output {path}", written, read, input_name, log)
        if not resume and stat.S_ISREG(written.st_mode):
            os.ftruncate(fd, 0)  # only now that it is known to be no file we read
    except BaseException:
        os.close(fd)
        if not existed:
            path.unlink(missing_ok=True)
        raise
    return LineOutput(open(fd, "wb"), str(path), owned=True)


def _refuse_if_read(
    what: str,
    written: os.stat_result,
    read: os.stat_result,
    input_name: str,
    log: Path | None,
) -> None:
    """A usage error when the output is a file this run reads."""
    if _same_file(written, read):
        raise UsageError(
            f"{what} is the input ({input_name}): writing results there would "
            "destroy it; choose another output"
        )
    if log is not None:
        try:
            logged = os.stat(log)
        except OSError:
            return
        if _same_file(written, logged):
            raise UsageError(
                f"{what} is the log database ({log}): writing results there "
                "would destroy it; choose another output"
            )


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    """One regular file (a device such as /dev/null may be read and written at once)."""
    return stat.S_ISREG(a.st_mode) and (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def finished_ids(path: Path) -> frozenset[bytes]:
    """Ids with a successful result in an earlier run's output, for ``--resume``.

    A torn last line (a run killed mid-write) is cut off, so the output stays
    one whole JSON record a line when the resumed run appends to it.
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return frozenset()
    complete = data[: data.rfind(b"\n") + 1]
    if len(complete) != len(data):
        with path.open("r+b") as handle:
            handle.truncate(len(complete))
    done = set()
    for line in complete.splitlines():
        try:
            record = msgspec.json.decode(line)
        except msgspec.DecodeError:
            continue
        if not isinstance(record, dict) or "error" in record or "id" not in record:
            continue
        if record.get("type", "result") == "result":
            done.add(id_key(record["id"]))
    return frozenset(done)
