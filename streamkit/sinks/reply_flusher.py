"""One task per log that writes the new text of every reply still streaming, when due.

Why: each reply used to have a task of its own for its timed writes, and so
a nursery around its stream. At 256 batch lines in flight that was two task
starts, a nursery, a cancel scope and a few events a line, for replies that
mostly end in their first network read and never need a timed write: about
a tenth of a line's CPU. Here a reply asks to be written (``watch``) when
its first text arrives, and stops asking when it ends (``forget``); one task
per log, started when a reply first asks and kept until the run ends (not
restarted for every line), sleeps until the earliest reply is due, and
queues its write (``due`` / ``write`` are the recorder's). A reply that ends
in the read that brought its first text is forgotten before the task wakes,
and written whole at its end. With nothing due it waits without a
deadline, so a test's ``MockClock`` has no timer of its own to jump to.

Deadlines sit in a heap; an entry whose recorder was rescheduled or forgotten
since is dropped when it comes up, so no reply is ever looked at more than
once a deadline.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol
from weakref import WeakKeyDictionary

import trio


class Timed(Protocol):
    """What the flusher asks of a reply's recorder."""

    def due(self) -> float:
        """When its next write is due (Trio time; ``math.inf``: none now)."""
        ...

    def write(self) -> None:
        """Queue the write that is due (never waits)."""
        ...


class ReplyFlusher:
    """The timed writes of every reply streaming into one log."""

    def __init__(self) -> None:
        self._due: dict[Timed, float] = {}  # the replies asking, and when each is due
        self._heap: list[tuple[float, int, Timed]] = []
        self._order = itertools.count()  # ties: first asked, first written
        self._wake = trio.Event()
        self._running = False

    def watch(self, recorder: Timed) -> None:
        """``recorder`` has text to write: write it when it is due."""
        self._schedule(recorder)
        if not self._running:
            self._running = True
            # A system task: the writes it queues outlive any one reply's task.
            trio.lowlevel.spawn_system_task(self._run)

    def reschedule(self, recorder: Timed) -> None:
        """``recorder``'s next write became due sooner (its buffer filled)."""
        if recorder in self._due:
            self._schedule(recorder)

    def forget(self, recorder: Timed) -> None:
        """``recorder``'s reply ended: it writes its own end."""
        if self._due.pop(recorder, None) is not None and not self._due:
            self._heap.clear()  # only entries of replies forgotten: no deadline to wait for
            self._wake.set()  # and the task waits without one from now

    def _schedule(self, recorder: Timed) -> None:
        at = recorder.due()
        if self._due.get(recorder) == at:
            return
        self._due[recorder] = at
        if at < math.inf:
            first = self._heap[0][0] if self._heap else math.inf
            heapq.heappush(self._heap, (at, next(self._order), recorder))
            if at < first:
                self._wake.set()

    async def _run(self) -> None:
        try:
            while True:
                with trio.move_on_at(self._heap[0][0] if self._heap else math.inf):
                    await self._wake.wait()
                self._wake = trio.Event()
                now = trio.current_time()
                while self._heap and self._heap[0][0] <= now:
                    at, _, recorder = heapq.heappop(self._heap)
                    if self._due.get(recorder) != at:
                        continue  # rescheduled or forgotten since
                    del self._due[recorder]
                    recorder.write()
                    self._schedule(recorder)
        finally:
            self._running = False


_flushers: WeakKeyDictionary[object, ReplyFlusher] = WeakKeyDictionary()


def flusher_for(log_store: object) -> ReplyFlusher:
    """The flusher of the log ``log_store`` (one per ``AsyncStore``)."""
    flusher = _flushers.get(log_store)
    if flusher is None:
        flusher = _flushers[log_store] = ReplyFlusher()
    return flusher
