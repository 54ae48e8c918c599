"""When requests are sent: arrival times for the open loop, sans-IO.

Gaps between arrivals are gamma-distributed with shape ``burstiness`` and
mean ``1 / rate``, as in ``vllm bench serve``: burstiness 1 is a Poisson
process (exponential gaps), below 1 burstier, above 1 more regular, and
infinity a constant rate. The times are offsets in seconds from the start of
the run and depend only on the seed, so a run can be repeated, and a schedule
split between worker processes stays the same schedule.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator


def arrival_gaps(rate: float, burstiness: float = 1.0, seed: int | None = 0) -> Iterator[float]:
    """Endless gaps (seconds) between successive arrivals at ``rate`` per second."""
    if not rate > 0:
        raise ValueError("the rate must be positive")
    if not burstiness > 0:
        raise ValueError("the burstiness must be positive")
    if math.isinf(burstiness):
        while True:
            yield 1.0 / rate
    rng = random.Random(seed)
    scale = 1.0 / (rate * burstiness)
    while True:
        yield rng.gammavariate(burstiness, scale)


def arrival_times(
    rate: float,
    *,
    burstiness: float = 1.0,
    seed: int | None = 0,
    count: int | None = None,
    until: float | None = None,
) -> list[float]:
    """Send times from 0: the first ``count`` of them, or all before ``until`` seconds.

    The first request goes at 0 (the run starts with it); each later one a
    gap after the previous one.
    """
    if count is None and until is None:
        raise ValueError("a schedule needs a count or an end time")
    times: list[float] = []
    at = 0.0
    gaps = arrival_gaps(rate, burstiness, seed)
    while (count is None or len(times) < count) and (until is None or at < until):
        times.append(at)
        at += next(gaps)
    return times


def split(times: list[float], parts: int) -> list[list[tuple[int, float]]]:
    """Deal ``(index, time)`` pairs round-robin to ``parts`` workers.

    Each worker gets every ``parts``-th arrival, so each one's load is the
    same shape and the union is exactly the original schedule.
    """
    return [list(enumerate(times))[part::parts] for part in range(parts)]


def spaced_rates(low: float, high: float, steps: int) -> list[float]:
    """``steps`` rates evenly spaced strictly between ``low`` and ``high`` (a sweep)."""
    if steps <= 0:
        return []
    width = (high - low) / (steps + 1)
    return [low + width * (i + 1) for i in range(steps)]
