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


# figures inside a breakdown that name its row or restate a setting: never averaged
_IDENTITIES = frozenset({"turn", "interval_s"})


def combine(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """One run record for ``records`` (the repeats of one run), the repeats kept in it.

    Every number becomes the repeats' mean (so the summary, ``compare`` and the
    plots read it as one run's), every statistic dict likewise key by key;
    ``repeat.ci95`` holds each figure's interval under ``field`` or
    ``field.stat``, ``repeat.runs`` the records themselves. The breakdowns
    are combined the same way, because a breakdown of one repeat is as noisy
    as its top-level figures: ``prefix_groups`` and ``server_metrics`` figure
    by figure (intervals under their path, ``prefix_groups.rest_ttft_ms.p50``,
    ``server_metrics.queue.max``), ``by_turn`` row by turn (under
    ``by_turn.TURN.ttft_ms.p50``), keeping only the turns every repeat
    reached. The server's time series (``server_metrics.series``) cannot be
    averaged point by point: the combined record has the first repeat's.
    Each repeat's own breakdowns are in ``repeat.runs``.
    """
    first = records[0]
    combined: dict[str, Any] = {}
    ci95: dict[str, list[float]] = {}
    for key, sample in first.items():
        if key in _SETTINGS or key == "repeat":
            combined[key] = sample
        elif key == "errors":  # counts of failures: all the repeats'
            combined[key] = _summed(r.get(key) or {} for r in records)
        else:
            combined[key] = _combined([r.get(key) for r in records], key, ci95)
    combined["repeat"] = {"count": len(records), "ci95": ci95, "runs": list(records)}
    return combined


def _summed(counts: Any) -> dict[str, int]:
    total: dict[str, int] = {}
    for count in counts:
        for kind, number in count.items():
            total[kind] = total.get(kind, 0) + number
    return dict(sorted(total.items()))


def _combined(values: Sequence[Any], path: str, ci95: dict[str, list[float]]) -> Any:
    """The repeats' ``values`` of the figure at ``path`` as one; the first repeat's
    decides its shape."""
    sample = values[0]
    if isinstance(sample, bool):
        return any(values)
    if isinstance(sample, int | float):
        return _mean(values, path, ci95)
    if isinstance(sample, dict):
        tables = [v if isinstance(v, dict) else {} for v in values]
        if all(isinstance(v, int | float) for v in sample.values()):  # a statistic dict
            stats = {k: _mean([t.get(k) for t in tables], f"{path}.{k}", ci95) for k in sample}
            return None if any(v is None for v in stats.values()) else stats
        return {
            k: v if k in _IDENTITIES else _combined([t.get(k) for t in tables], f"{path}.{k}", ci95)
            for k, v in sample.items()
        }
    if path == "by_turn":
        return _turns(values, ci95)
    return sample  # text, and the server's time series


def _turns(tables: Sequence[Any], ci95: dict[str, list[float]]) -> list[dict[str, Any]]:
    """``by_turn``: each turn every repeat reached, its row combined figure by figure."""
    rows = [{row["turn"]: row for row in table or ()} for table in tables]
    shared = set(rows[0]).intersection(*rows[1:])
    return [_combined([r[turn] for r in rows], f"by_turn.{turn}", ci95) for turn in sorted(shared)]


def _mean(values: Sequence[Any], path: str, ci95: dict[str, list[float]]) -> float | None:
    if any(not isinstance(v, int | float) or isinstance(v, bool) for v in values):
        return None  # a figure missing from one repeat has no honest mean
    mean, low, high = mean_interval([float(v) for v in values])
    ci95[path] = [round(low, 4), round(high, 4)]
    return round(mean, 4)
