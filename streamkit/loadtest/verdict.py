"""``bench compare --fail-on``: bounds on how much a figure may move, and their verdict.

Sans-IO: the bounds are parsed from text and judged on two JSON reports'
run records (dicts), so a CI gate is tested without running anything.

A bound reads ``NAME[.STAT] OP CHANGE``: ``ttft.p99>+10%`` is broken when the
new report's p99 TTFT is more than 10 % above the base's, ``throughput<-5%``
when the new request throughput is more than 5 % below it. A change without
``%`` is absolute, in the figure's own unit (ms, or per second).

With ``--repeat`` reports each figure has a 95 % confidence interval
(``ci95``): a change whose intervals overlap the other report's (a single run
is a point) is within run-to-run noise, and is not counted as a regression.
Overlap of two 95 % intervals is a deliberately cautious test: a gate that
fails a pull request for noise teaches people to ignore it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec

from streamkit.errors import StreamkitError, UsageError

LATENCIES = {
    "ttft": "ttft_ms",
    "ttfa": "ttfa_ms",
    "itl": "itl_ms",
    "tpot": "tpot_ms",
    "e2e": "e2e_ms",
    "lag": "schedule_lag_ms",
    "ttft_from_schedule": "ttft_from_schedule_ms",
    "e2e_from_schedule": "e2e_from_schedule_ms",
}
COUNTS = {
    "throughput": "request_throughput",
    "output_throughput": "output_token_throughput",
    "total_throughput": "total_token_throughput",
    "goodput": "goodput",
    "completed": "requests_completed",
    "failed": "requests_failed",
}
STATS = ("mean", "stdev", "p50", "p90", "p95", "p99", "max")

_BOUND = re.compile(r"^\s*([a-z][a-z0-9_]*)(?:\.([a-z0-9]+))?\s*([<>])\s*([+-]?[0-9.]+)\s*(%?)\s*$")


class RegressionFound(StreamkitError):
    """A ``--fail-on`` bound was broken: the exit code a CI acts on (1, documented)."""

    kind = "regression"
    exit_code = 1


class Bound(msgspec.Struct, frozen=True):
    """One ``--fail-on`` item: the figure (JSON field, statistic) and the change allowed."""

    text: str
    field: str
    stat: str | None
    above: bool  # ``>``: broken when the change is larger; ``<``: when it is smaller
    limit: float
    relative: bool

    @property
    def key(self) -> str:
        """The figure as ``ci95`` names it: ``ttft_ms.p99``, ``request_throughput``."""
        return f"{self.field}.{self.stat}" if self.stat else self.field


def parse_fail_on(text: str) -> list[Bound]:
    """``ttft.p99>+10%,throughput<-5%`` as bounds; a usage error names what is wrong."""
    bounds = []
    for item in text.split(","):
        match = _BOUND.match(item)
        if not match:
            raise UsageError(
                f"--fail-on: cannot read {item.strip()!r}; expected e.g. "
                "'ttft.p99>+10%,throughput<-5%'"
            )
        name, stat, op, number, percent = match.groups()
        field, stat = _field(name, stat, item.strip())
        try:
            limit = float(number)
        except ValueError:
            raise UsageError(f"--fail-on: {number!r} is not a number") from None
        bounds.append(Bound(item.strip(), field, stat, op == ">", limit, percent == "%"))
    return bounds


def _field(name: str, stat: str | None, item: str) -> tuple[str, str | None]:
    latency = LATENCIES.get(name) or (name if name in LATENCIES.values() else None)
    if latency is not None:
        if stat not in STATS:
            raise UsageError(
                f"--fail-on: {item!r} needs a statistic of {name}: "
                f"{', '.join(STATS)} (e.g. {name}.p99)"
            )
        return latency, stat
    count = COUNTS.get(name) or (name if name in COUNTS.values() else None)
    if count is None:
        names = ", ".join([*LATENCIES, *COUNTS])
        raise UsageError(f"--fail-on: unknown figure {name!r} (figures: {names})")
    if stat is not None:
        raise UsageError(f"--fail-on: {name} is one number; drop .{stat}")
    return count, None


def value(run: dict[str, Any], bound: Bound) -> float | None:
    """The run's figure for ``bound`` (its mean across repeats for a ``--repeat`` run)."""
    found = run.get(bound.field)
    if bound.stat is not None:
        found = found.get(bound.stat) if isinstance(found, dict) else None
    return float(found) if isinstance(found, int | float) else None


def interval(run: dict[str, Any], bound: Bound) -> tuple[float, float] | None:
    """The 95 % confidence interval of the figure, when the run was repeated."""
    ci = (run.get("repeat") or {}).get("ci95") or {}
    pair = ci.get(bound.key)
    return (float(pair[0]), float(pair[1])) if isinstance(pair, list) and len(pair) == 2 else None


class Finding(msgspec.Struct, frozen=True):
    """A bound judged on one pair of runs."""

    bound: str
    run: int  # 1-based position in the reports
    base: float
    new: float
    change: float  # percent when the bound is relative, else in the figure's unit
    relative: bool
    broken: bool
    within_noise: bool  # beyond the bound, but inside the confidence intervals

    def describe(self) -> str:
        unit = "%" if self.relative else ""
        verdict = (
            "BROKEN"
            if self.broken
            else "within the confidence interval: not a regression"
            if self.within_noise
            else "ok"
        )
        return (
            f"run {self.run}: {self.bound}: {self.base:.4g} -> {self.new:.4g} "
            f"({self.change:+.1f}{unit}) {verdict}"
        )


def judge(
    bounds: Sequence[Bound], base_runs: Sequence[dict[str, Any]], new_runs: Sequence[dict[str, Any]]
) -> list[Finding]:
    """Every bound on every pair of runs (matched by position) that has the figure.

    A bound that no pair of runs can be judged on is a usage error: a gate
    that silently passes because it names a figure the reports lack is worse
    than none.
    """
    findings = []
    for bound in bounds:
        judged = False
        for number, (base, new) in enumerate(zip(base_runs, new_runs, strict=False), 1):
            finding = _judge_one(bound, number, base, new)
            if finding is not None:
                findings.append(finding)
                judged = True
        if not judged:
            raise UsageError(f"--fail-on: {bound.text!r}: no run of both reports has {bound.key}")
    return findings


def _judge_one(
    bound: Bound, number: int, base: dict[str, Any], new: dict[str, Any]
) -> Finding | None:
    before, after = value(base, bound), value(new, bound)
    if before is None or after is None or (bound.relative and before == 0):
        return None
    delta = after - before
    change = delta / abs(before) * 100 if bound.relative else delta
    beyond = change > bound.limit if bound.above else change < bound.limit
    noise = False
    if beyond:
        low_base, high_base = interval(base, bound) or (before, before)
        low_new, high_new = interval(new, bound) or (after, after)
        repeated = interval(base, bound) is not None or interval(new, bound) is not None
        noise = repeated and low_new <= high_base and low_base <= high_new
    return Finding(
        bound.text, number, before, after, change, bound.relative, beyond and not noise, noise
    )


def broken_message(findings: Sequence[Finding]) -> str | None:
    """The one line a CI log shows when the gate fails, naming each broken bound."""
    broken = [f for f in findings if f.broken]
    if not broken:
        return None
    named = "; ".join(
        f"{f.bound} in run {f.run} ({f.change:+.1f}{'%' if f.relative else ''})" for f in broken
    )
    return f"bench compare: {len(broken)} bound(s) broken: {named}"
