"""One pause shared by every request of a producer, for the server's Retry-After."""

from __future__ import annotations

import math

import trio


class RateLimitGate:
    """A shared pause: after a 429, no request of this producer starts until it ends.

    In a batch, one worker's 429 (and the server's ``Retry-After``) slows every
    worker, instead of the others hammering a server that asked us to wait.
    """

    def __init__(self) -> None:
        self._until = -math.inf

    def hold(self, seconds: float) -> None:
        self._until = max(self._until, trio.current_time() + seconds)

    async def wait(self) -> None:
        # A loop, not one sleep: another 429 may extend the pause meanwhile.
        while trio.current_time() < self._until:  # noqa: ASYNC110
            await trio.sleep_until(self._until)
