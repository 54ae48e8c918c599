"""A relay connection's outbox: frames waiting for the client, merged, never blocking.

The backpressure decision of the relay (``relay``) lives here: the producer
never waits for a client; consecutive ``delta`` frames of one request merge
while the client is behind, and a client too far behind is dropped.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import trio

MERGE_LIMIT = 64 * 1024  # characters of one merged delta frame, well under message limits
HIGH_WATER = 256 * 1024  # unsent characters at which a connection's requests pause


class Outbox:
    """A connection's frames waiting to be sent; ``put`` never blocks.

    ``wait_for_room`` lets the requests of *this* connection pause while it
    holds more than ``HIGH_WATER`` characters of unsent text, so a client that
    stops reading also stops its own upstream streams (flow control reaches
    the server) instead of the relay reading them at full speed into memory.
    No other connection waits on it.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.frames: deque[dict[str, Any]] = deque()
        self.overflowed = False
        self.sent = trio.Event()  # set while every frame put so far has been sent
        self.sent.set()
        self._ready = trio.Event()
        self._queued_chars = 0
        self._room = trio.Event()
        self._room.set()

    async def wait_for_room(self) -> None:
        await self._room.wait()

    def put(self, frame: dict[str, Any]) -> None:
        last = self.frames[-1] if self.frames else None
        if (
            last is not None
            and frame["type"] in ("delta", "reasoning")
            and last["type"] == frame["type"]
            and last["id"] == frame["id"]
            and len(last["text"]) < MERGE_LIMIT
        ):
            last["text"] += frame["text"]  # merged: the client is behind
        else:
            self.frames.append(frame)
            if len(self.frames) > self.limit:
                self.overflowed = True
        self._queued_chars += len(frame.get("text", "")) + 1
        if self._queued_chars > HIGH_WATER and self._room.is_set():
            self._room = trio.Event()
        if self.sent.is_set():
            self.sent = trio.Event()
        self._ready.set()

    async def next_batch(self) -> list[dict[str, Any]]:
        while not self.frames:
            self._ready = trio.Event()
            await self._ready.wait()
        batch = list(self.frames)
        self.frames.clear()
        self._queued_chars = 0
        self._room.set()
        return batch
