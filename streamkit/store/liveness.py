"""Whether the process that is writing a reply still runs: crash recovery asks before it acts.

A streaming reply row carries its writer's pid and start time. A pid alone is
not enough -- pids are reused, and a later process may have the dead writer's
-- but a pid and the moment that process started name one process for as long
as the machine is up. (A log is only ever written from one machine: SQLite's
WAL mode needs shared memory, so pids of another host never meet here.)

Linux: ``/proc/<pid>/stat`` (its 22nd field, the start in clock ticks since
boot). Elsewhere: psutil's create time if psutil is installed, or else only
whether the pid exists.
"""

from __future__ import annotations

import os
from pathlib import Path

_PROC = Path("/proc")


def process_start(pid: int) -> str | None:
    """When ``pid`` started, as an opaque token (``None``: not running, or unknown here)."""
    stat = _proc_stat(pid)
    if stat is not None:
        state, started = stat
        return None if state in ("Z", "X") else f"proc:{started}"
    try:
        import psutil
    except ImportError:
        return None
    try:
        return f"psutil:{psutil.Process(pid).create_time()!r}"
    except psutil.Error:
        return None


def writer_alive(pid: int, started: str | None) -> bool:
    """Whether the process ``pid`` that started at ``started`` still runs.

    ``started`` is what ``process_start`` said when the row was written; with
    ``None`` (it could not tell) a running ``pid`` counts as the writer.
    """
    now = process_start(pid)
    if now is not None:
        return started is None or now == started
    if started is not None or _proc_stat(os.getpid()) is not None or _has_psutil():
        return False  # what could tell its start time finds no such process now
    try:
        os.kill(pid, 0)  # no /proc, no psutil: whether the pid exists is all we know
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process, but a running one
    return True


def _has_psutil() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def _proc_stat(pid: int) -> tuple[str, str] | None:
    """(state, start time) from ``/proc/<pid>/stat``, or ``None`` if there is none."""
    try:
        data = (_PROC / str(pid) / "stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) is in parentheses and may hold spaces or
    # parentheses itself: count fields from the last ')'.
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), fields[19].decode()
