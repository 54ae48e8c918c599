"""One pause for the whole cluster after a 429, on one clock.

A server that answers 429 with ``Retry-After`` to one node wants every node
to wait. The pause is held by one ``Backoff`` actor on the driver's node and
measured on that actor's clock only: nodes' clocks differ, so what travels is
"seconds from now", never a time of day. Each node's producer consults it
(``ClusterGate``) before each request.
"""

from __future__ import annotations

import time
from typing import Any

import trio


class Backoff:
    """The actor: the end of the current pause, on its own monotonic clock."""

    def __init__(self) -> None:
        self.until = 0.0

    def hold(self, seconds: float) -> None:
        self.until = max(self.until, time.monotonic() + seconds)

    def remaining(self) -> float:
        return max(0.0, self.until - time.monotonic())


class ClusterGate:
    """A producer's ``PauseGate`` that is the cluster's ``Backoff`` actor.

    Calls from one process to an actor run in the order they were made, so a
    ``hold`` is in place before this node's next ``remaining`` is answered.
    """

    def __init__(self, backoff: Any) -> None:
        self.backoff = backoff

    def hold(self, seconds: float) -> None:
        self.backoff.hold.remote(seconds)

    async def wait(self) -> None:
        import ray

        # A loop, not one sleep: another node's 429 may extend the pause meanwhile.
        while (  # noqa: ASYNC110
            left := await trio.to_thread.run_sync(
                ray.get, self.backoff.remaining.remote(), abandon_on_cancel=True
            )
        ) > 0:
            await trio.sleep(left)
