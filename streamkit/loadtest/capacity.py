"""``--find-capacity``: the highest request rate whose run meets the SLO, sans-IO.

A run meets the SLO when the ``--slo-percentile`` (default 99) of each
bounded figure is within its bound and, with ``--goodput F``, at least that
share of its requests met every bound. Each run is summed up in one number,
its *score*: the largest of (figure at the percentile / bound) and
(F / share of good requests); a score of at most 1 passes.

The search brackets, then narrows: from the first rate it doubles while
runs pass (halves while they fail) until one passing and one failing rate
are known, then tries the rate where the scores of the two ends, joined by
a straight line, reach 1 -- what each run measured says where the edge is
-- held within the middle 60 % of the bracket so that the bracket always
shrinks. It stops when the bracket is narrower than ``--capacity-precision``
of the passing rate (the answer is that rate: the true capacity lies
between it and the failing one), or after ``MAX_RUNS`` runs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import msgspec

from streamkit.loadtest.metrics import Sample, meets, percentile

MAX_RUNS = 16
MIN_RATE_FACTOR = 1 / 64  # below the first rate by this much, no rate meets the SLO
INNER = 0.2  # the next rate keeps this share of the bracket's width from each end


class Probe(msgspec.Struct, frozen=True):
    """One run of the search."""

    rate: float
    score: float
    passed: bool
    at_percentile_ms: dict[str, float | None]  # each bounded figure at the percentile
    good_share: float | None  # share of requests within every bound


def _values(samples: Sequence[Sample], metric: str) -> list[float]:
    done = [s for s in samples if s.ok]
    if metric == "itl":
        return [gap for s in done for gap in s.itl]
    if metric == "tpot":
        return [s.tpot or 0.0 for s in done]
    if metric == "ttft":
        return [s.ttft for s in done if s.ttft is not None]
    return [s.e2e for s in done]


def probe(
    rate: float,
    samples: Sequence[Sample],
    slo: dict[str, float],
    *,
    at: float = 99.0,
    goodput: float | None = None,
) -> Probe:
    """Judge one run at ``rate``: its score against ``slo`` (seconds) at percentile ``at``.

    A failed request counts against the SLO: it is left out of the latency
    figures, so a run with failures never passes.
    """
    ratios = []
    figures: dict[str, float | None] = {}
    for metric, bound in slo.items():
        values = sorted(_values(samples, metric))
        value = percentile(values, at) if values else None
        figures[metric] = None if value is None else round(value * 1000, 4)
        ratios.append(
            math.inf
            if value is None
            else value / bound
            if bound > 0
            else (0.0 if value <= 0 else math.inf)
        )
    share = None
    if samples:
        share = sum(1 for s in samples if meets(s, slo)) / len(samples)
    if goodput is not None:
        ratios.append(goodput / share if share else math.inf)
    if any(not s.ok for s in samples) or not samples:
        ratios.append(math.inf)
    score = max(ratios, default=math.inf)
    return Probe(rate, score, score <= 1.0, figures, share)


class CapacitySearch:
    """The bracketing search's state: feed it each run's ``Probe``, ask for the next rate."""

    def __init__(self, start: float, precision: float = 0.1) -> None:
        if not start > 0 or not precision > 0:
            raise ValueError("the start rate and the precision must be positive")
        self.start = start
        self.precision = precision
        self.probes: list[Probe] = []

    @property
    def passing(self) -> Probe | None:
        """The highest rate that met the SLO so far."""
        return max((p for p in self.probes if p.passed), key=lambda p: p.rate, default=None)

    @property
    def failing(self) -> Probe | None:
        """The lowest rate that missed it above every passing one."""
        low = self.passing.rate if self.passing else 0.0
        return min(
            (p for p in self.probes if not p.passed and p.rate > low),
            key=lambda p: p.rate,
            default=None,
        )

    def record(self, result: Probe) -> None:
        self.probes.append(result)

    def next_rate(self) -> float | None:
        """The next rate to run, or None when the search is done."""
        if not self.probes:
            return self.start
        if len(self.probes) >= MAX_RUNS:
            return None
        low, high = self.passing, self.failing
        if low is None:
            assert high is not None
            rate = high.rate / 2
            return rate if rate >= self.start * MIN_RATE_FACTOR else None
        if high is None:
            return low.rate * 2
        if high.rate - low.rate <= self.precision * low.rate:
            return None
        width = high.rate - low.rate
        if math.isfinite(high.score) and high.score > low.score:
            guess = low.rate + (1 - low.score) / (high.score - low.score) * width
        else:
            guess = low.rate + width / 2
        return min(max(guess, low.rate + INNER * width), high.rate - INNER * width)

    def summary(self) -> dict[str, object]:
        """The ``capacity`` object of the JSON report."""
        low, high = self.passing, self.failing
        return {
            "rate": round(low.rate, 4) if low else None,
            "failing_rate": round(high.rate, 4) if high else None,
            "precision": self.precision,
            "converged": bool(low and high and high.rate - low.rate <= self.precision * low.rate),
            "runs": [
                {
                    "rate": round(p.rate, 4),
                    "passed": p.passed,
                    "score": round(p.score, 4) if math.isfinite(p.score) else None,
                    "at_percentile_ms": p.at_percentile_ms,
                    "good_share": None if p.good_share is None else round(p.good_share, 4),
                }
                for p in self.probes
            ],
        }
