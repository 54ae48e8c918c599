"""``--repeat N``: one run's figures as the mean and 95 % confidence interval of N runs.

Sans-IO, over the run records of the JSON report. Why repeat at all: two
runs of the same load on the same server differ (caches, the scheduler, a
neighbour's job), and a single run cannot tell a regression from that noise.
The interval is Student's t on the N run values of each figure (sample
standard deviation, N - 1 degrees of freedom); percentiles are averaged as
figures of a run, never pooled across runs, because a run is the unit that
is repeated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

# two-sided 95 % quantiles of Student's t, by degrees of freedom
_T975 = (
    12.706,
    4.303,
    3.182,
    2.776,
    2.571,
    2.447,
    2.365,
    2.306,
    2.262,
    2.228,
    2.201,
    2.179,
    2.160,
    2.145,
    2.131,
    2.120,
    2.110,
    2.101,
    2.093,
    2.086,
    2.080,
    2.074,
    2.069,
    2.064,
    2.060,
    2.056,
    2.052,
    2.048,
    2.045,
    2.042,
)
_Z975 = 1.959964

# figures that are settings or identities of the run, the same in every repeat
_SETTINGS = frozenset(
    {
        "mode",
        "concurrency",
        "rate",
        "burstiness",
        "requests",
        "duration_limit_s",
        "warmup",
        "seed",
        "workers",
        "trace_speed",
        "ramp_up_s",
        "sessions",
    }
)


def t_quantile(df: int) -> float:
    """The 97.5 % quantile of Student's t with ``df`` degrees of freedom."""
    if df < 1:
        raise ValueError("a confidence interval needs at least two runs")
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher: within 0.001 of the exact value past 30
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def mean_interval(values: Sequence[float]) -> tuple[float, float, float]:
    """The mean of ``values`` and its 95 % confidence interval (low, high)."""
    n = len(values)
    mean = math.fsum(values) / n
    if n < 2:
        return mean, mean, mean
    sd = math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1))
    half = t_quantile(n - 1) * sd / math.sqrt(n)
    return mean, mean - half, mean + half


def combine(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run record for ``records`` (the repeats of one run), the repeats kept in it.

    Every number becomes the repeats' mean (so the summary, ``compare`` and the
    plots read it as one run's), every statistic dict likewise key by key;
    ``repeat.ci95`` holds each figure's interval under ``field`` or
    ``field.stat``, ``repeat.runs`` the records themselves. Breakdowns that
    are lists or nested tables (``by_turn``, ``prefix_groups``,
    ``server_metrics``) are the first repeat's; each repeat's own are in
    ``repeat.runs``.
    """
    first = records[0]
    combined: dict[str, Any] = {}
    ci95: dict[str, list[float]] = {}
    for key, sample in first.items():
        if key in _SETTINGS or key == "repeat":
            combined[key] = sample
        elif key == "errors":  # counts of failures: all the repeats'
            combined[key] = _summed(r.get(key) or {} for r in records)
        elif isinstance(sample, bool):
            combined[key] = any(r.get(key) for r in records)
        elif isinstance(sample, int | float):
            combined[key] = _numbers(records, key, None, ci95)
        elif isinstance(sample, dict) and all(isinstance(v, int | float) for v in sample.values()):
            stats = {stat: _numbers(records, key, stat, ci95) for stat in sample}
            combined[key] = None if any(v is None for v in stats.values()) else stats
        else:
            combined[key] = sample
    combined["repeat"] = {"count": len(records), "ci95": ci95, "runs": list(records)}
    return combined


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for kind, number in count.items():
            total[kind] = total.get(kind, 0) + number
    return dict(sorted(total.items()))


def _numbers(
    records: Sequence[dict[str, Any]], key: str, stat: str | None, ci95: dict[str, list[float]]
) -> float | None:
    values = []
    for record in records:
        found = record.get(key)
        if stat is not None:
            found = found.get(stat) if isinstance(found, dict) else None
        if not isinstance(found, int | float) or isinstance(found, bool):
            return None  # a figure missing from one repeat has no honest mean
        values.append(float(found))
    mean, low, high = mean_interval(values)
    ci95[f"{key}.{stat}" if stat else key] = [round(low, 4), round(high, 4)]
    return round(mean, 4)
