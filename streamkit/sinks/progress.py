"""Batch progress on stderr, for people watching a terminal.

Shown only when stderr is a terminal, so logs and pipelines get nothing but
the summary line. Counts lines done, failed and in flight, the token rate, and
an ETA when the number of input lines is known (``--input FILE``).
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class BatchProgress:
    """A rich progress bar fed by the batch runner's counts."""

    def __init__(self, total: int | None, stream: TextIO | None = None) -> None:
        self.console = Console(file=stream or sys.stderr)
        self.progress = Progress(
            TextColumn("[bold]batch"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "{task.fields[failed]} failed, {task.fields[flight]} in flight,"
                " {task.fields[rate]} tok/s"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
            transient=True,
        )
        self.task = self.progress.add_task("batch", total=total, failed=0, flight=0, rate="-")
        self.failed = 0
        self.in_flight = 0
        self.tokens = 0
        self._started = time.monotonic()

    def __enter__(self) -> BatchProgress:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def started(self) -> None:
        self.in_flight += 1
        self._update(advance=0)

    def finished(self, record: dict[str, Any]) -> None:
        self.in_flight -= 1
        if "error" in record:
            self.failed += 1
        usage = record.get("usage") or {}
        self.tokens += usage.get("completion_tokens") or 0
        self._update(advance=1)

    def _update(self, advance: int) -> None:
        elapsed = time.monotonic() - self._started
        rate = f"{self.tokens / elapsed:.0f}" if self.tokens and elapsed > 0 else "-"
        self.progress.update(
            self.task, advance=advance, failed=self.failed, flight=self.in_flight, rate=rate
        )
