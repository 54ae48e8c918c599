"""The hand-off of events from the model thread to Trio, bounded and batched.

The thread appends events and wakes the Trio side only when it waits, so a
slow consumer receives tokens in batches (one wake-up, one channel send for
many tokens); past ``MAILBOX_LIMIT`` events the thread waits, which is the
local producer's share of the pipeline's backpressure.
"""

from __future__ import annotations

import threading

import trio

from streamkit.events import BatchSend, Event
from streamkit.protocol.reply_limit import ReplyLimit

MAILBOX_LIMIT = 1024  # events the thread may run ahead of a slow consumer


class Mailbox:
    """A bounded, thread-safe hand-off of events from the model thread to Trio."""

    def __init__(self) -> None:
        self._token = trio.lowlevel.current_trio_token()
        self._cond = threading.Condition()
        self._items: list[Event] = []
        self._closed = False
        self.aborted = False
        self._wakeup: trio.Event | None = None

    # -- model thread side --
    def put(self, event: Event) -> None:
        with self._cond:
            while len(self._items) >= MAILBOX_LIMIT and not self.aborted:
                self._cond.wait()
            self._items.append(event)
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            self._token.run_sync_soon(wakeup.set)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            wakeup, self._wakeup = self._wakeup, None
        if wakeup is not None:
            self._token.run_sync_soon(wakeup.set)

    # -- Trio side --
    def take(self) -> list[Event]:
        with self._cond:
            items, self._items = self._items, []
            self._cond.notify_all()
        return items

    def abort(self) -> None:
        with self._cond:
            self.aborted = True
            self._cond.notify_all()

    async def drain(self, send: BatchSend, limit: ReplyLimit) -> None:
        """Send batches until the thread closes the mailbox or the reply reaches its
        cap; abort it on any failure."""
        try:
            while True:
                with self._cond:
                    items, self._items = self._items, []
                    self._cond.notify_all()
                    closed = self._closed
                    if not items and not closed:
                        wakeup = self._wakeup = trio.Event()
                if items:
                    items = limit.admit(items)
                    if items:
                        await send.send(items)
                    if limit.exceeded:
                        self.abort()  # stop generating: the reply is long enough
                        return
                elif closed:
                    return
                else:
                    await wakeup.wait()
        except trio.BrokenResourceError:
            self.abort()  # the consumer went away: stop generating
        except BaseException:
            self.abort()
            raise
