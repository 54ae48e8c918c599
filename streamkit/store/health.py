"""Whether the log failed during a command: recorded where it fails, read where it ends.

A log failure must not end a command -- the reply the user asked for comes
first -- so it cannot travel up as an exception. The store that failed
records it on the command's ``LogHealth``; the command reports it as one
warning line (once, at the first quiet moment: after a reply, or at the end)
and exits 11 if nothing else failed. ``run_command`` opens one per command
(``command_health``); anywhere else (a test driving a store by hand) failures
land on a throwaway one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from streamkit.errors import LogError


class LogHealth:
    """The first log failure of one command, and whether it was reported yet."""

    def __init__(self) -> None:
        self.failure: LogError | None = None
        self._reported = False

    def record(self, error: LogError) -> None:
        if self.failure is None:
            self.failure = error

    def unreported(self) -> LogError | None:
        """The failure, the first time it is asked for; then ``None``."""
        if self.failure is None or self._reported:
            return None
        self._reported = True
        return self.failure


_current: ContextVar[LogHealth | None] = ContextVar("streamkit_log_health", default=None)


def current_health() -> LogHealth:
    """The running command's ``LogHealth`` (a fresh, unwatched one outside a command)."""
    return _current.get() or LogHealth()


@contextmanager
def command_health() -> Iterator[LogHealth]:
    """A ``LogHealth`` for the command run inside the ``with``."""
    health = LogHealth()
    token = _current.set(health)
    try:
        yield health
    finally:
        _current.reset(token)
