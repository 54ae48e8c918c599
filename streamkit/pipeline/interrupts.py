"""Ctrl-C and SIGTERM as cancellation, not as exceptions.

While a command runs, SIGINT and SIGTERM are received by a task
(``trio.open_signal_receiver``) instead of raising ``KeyboardInterrupt``
somewhere unpredictable. A signal cancels the scopes handed out by
``guard()`` -- the producer of the reply in progress, or a prompt waiting for
input -- so the pipeline drains and flushes what was received, and the command
then exits 130 (SIGINT) or 143 (SIGTERM). A second signal while that cleanup
runs cancels the whole command.
"""

from __future__ import annotations

import math
import signal
from collections.abc import Iterator
from contextlib import contextmanager

import trio

from streamkit.errors import EXIT_INTERRUPTED, EXIT_TERMINATED


class Interrupts:
    """Routes SIGINT/SIGTERM to the cancel scopes of the work in progress."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self._scopes: set[trio.CancelScope] = set()

    @property
    def exit_code(self) -> int | None:
        """130 / 143 once a signal arrived, else ``None``."""
        if self.signum is None:
            return None
        return EXIT_TERMINATED if self.signum == signal.SIGTERM else EXIT_INTERRUPTED

    @contextmanager
    def guard(self, timeout: float | None = None) -> Iterator[trio.CancelScope]:
        """A cancel scope that the next signal cancels (at once if one came).

        With ``timeout``, the scope also expires that many seconds after it is
        entered (the caller enters it where the timed work starts).
        """
        scope = trio.CancelScope(relative_deadline=timeout or math.inf)
        if self.signum is not None:
            scope.cancel()
        self._scopes.add(scope)
        try:
            yield scope
        finally:
            self._scopes.discard(scope)

    def forget(self) -> None:
        """Clear a handled SIGINT (interactive chat goes on after a cancelled reply)."""
        if self.signum == signal.SIGINT:
            self.signum = None

    async def watch(
        self,
        command_scope: trio.CancelScope,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Receive signals until cancelled; a repeated signal cancels ``command_scope``."""
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            async for signum in signals:
                if self.signum is not None or not self._scopes:
                    command_scope.cancel()
                if self.signum != signal.SIGTERM:
                    self.signum = signum
                for scope in self._scopes:
                    scope.cancel()
