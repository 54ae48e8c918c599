"""One pause shared by every request of a producer, for the server's Retry-After."""

from __future__ import annotations

import math
from typing import Protocol

import trio


class PauseGate(Protocol):
    """Where a producer's requests wait out a server's pause; a cluster shares one."""

    def hold(self, seconds: float) -> None:
        """No request starts for ``seconds`` from now (a longer pause already held stays)."""
        ...

    async def wait(self) -> None:
        """Return once no pause is held."""
        ...


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
