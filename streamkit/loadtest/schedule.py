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


def share(total: int, part: tuple[int, int]) -> int:
    """Part ``k`` of ``n`` of ``total`` (the first ``total % n`` parts get one more)."""
    k, n = part
    return total // n + (1 if k < total % n else 0)


def spaced_rates(low: float, high: float, steps: int) -> list[float]:
    """``steps`` rates evenly spaced strictly between ``low`` and ``high`` (a sweep)."""
    if steps <= 0:
        return []
    width = (high - low) / (steps + 1)
    return [low + width * (i + 1) for i in range(steps)]


def ramped(times: list[float], ramp_up: float) -> list[float]:
    """``times`` (a schedule at a steady rate) with the rate rising linearly over the
    first ``ramp_up`` seconds, from 0 to the steady rate (``--ramp-up``).

    The same arrivals, spread by the inverse of the ramp's cumulative rate: at
    rate ``R`` ramping over ``S`` seconds, ``R t**2 / (2 S)`` arrivals are due by
    time ``t < S``, so the arrival due ``u`` seconds into a steady schedule is
    sent at ``sqrt(2 S u)``, and after the ramp (``u >= S / 2``) at ``u + S / 2``.
    Gaps keep their randomness; only the clock under them is bent.
    """
    if ramp_up <= 0:
        return list(times)
    half = ramp_up / 2
    return [math.sqrt(2 * ramp_up * u) if u < half else u + half for u in times]


class ThinkTime:
    """``--think-time``: seconds a user takes between a reply and the next turn.

    ``2s`` / ``500ms`` / ``1.5`` (seconds) fixed; ``exp:2s`` exponential with
    that mean; ``uniform:1s:3s``; ``normal:2s:0.5s`` (mean, standard deviation,
    never below 0). Drawn from the caller's seeded generator, so a run repeats.
    """

    def __init__(self, kind: str, a: float, b: float = 0.0) -> None:
        self.kind, self.a, self.b = kind, a, b

    def draw(self, rng: random.Random) -> float:
        if self.kind == "exp":
            return rng.expovariate(1 / self.a) if self.a > 0 else 0.0
        if self.kind == "uniform":
            return rng.uniform(self.a, self.b)
        if self.kind == "normal":
            return max(0.0, rng.gauss(self.a, self.b))
        return self.a


def parse_seconds(text: str) -> float:
    """``500ms``, ``2s`` or a bare number of seconds; ValueError otherwise."""
    text = text.strip()
    scale, number = (1000, text[:-2]) if text.endswith("ms") else (1, text.removesuffix("s"))
    value = float(number) / scale
    if not value >= 0 or math.isinf(value):
        raise ValueError(text)
    return value


_THINK_PARTS = {"exp": 1, "uniform": 2, "normal": 2}


def parse_think_time(text: str) -> ThinkTime:
    """``--think-time`` as a ``ThinkTime``; ValueError says what was expected."""
    kind, _, rest = text.strip().partition(":")
    if not rest:
        return ThinkTime("fixed", parse_seconds(kind))
    parts = rest.split(":")
    if kind not in _THINK_PARTS or len(parts) != _THINK_PARTS[kind]:
        raise ValueError(
            f"cannot read {text!r}; expected 2s, exp:2s, uniform:1s:3s or normal:2s:0.5s"
        )
    values = [parse_seconds(part) for part in parts]
    if kind == "uniform" and values[1] < values[0]:
        raise ValueError(f"{text!r}: the upper end is below the lower")
    return ThinkTime(kind, *values)
