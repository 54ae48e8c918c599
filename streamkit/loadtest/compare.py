"""``bench compare``: runs of several JSON reports side by side.

Runs are matched by position (run 1 of each report, run 2, ...), and each
figure of a later report is shown with its change relative to the first.
Lower is better for latencies, higher for throughputs: the sign of the
change is printed, the reader judges -- or, with ``--fail-on``, the bounds
do (verdict.py), and the command exits 1 when one is broken.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, TextIO

import msgspec

from streamkit.errors import UsageError
from streamkit.loadtest.verdict import Bound, RegressionFound, broken_message, judge

FIGURES = (
    ("requests_completed", None, "completed"),
    ("requests_failed", None, "failed"),
    ("request_throughput", None, "req/s"),
    ("output_token_throughput", None, "output tok/s"),
    ("total_token_throughput", None, "total tok/s"),
    ("goodput", None, "goodput req/s"),
    ("ttft_ms", "p50", "TTFT p50 ms"),
    ("ttft_ms", "p99", "TTFT p99 ms"),
    ("itl_ms", "p50", "ITL p50 ms"),
    ("itl_ms", "p99", "ITL p99 ms"),
    ("tpot_ms", "p50", "TPOT p50 ms"),
    ("e2e_ms", "p50", "E2E p50 ms"),
    ("e2e_ms", "p99", "E2E p99 ms"),
    ("schedule_lag_ms", "p99", "lag p99 ms"),
)


def load_report(path: Path) -> dict[str, Any]:
    try:
        report = msgspec.json.decode(path.read_bytes())
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None
    except msgspec.DecodeError as exc:
        raise UsageError(f"{path} is not JSON: {exc}") from None
    if not isinstance(report, dict) or not isinstance(report.get("runs"), list):
        raise UsageError(f"{path} is not a `streamkit bench --json` report (no runs)")
    return report


def figure(run: dict[str, Any], name: str, stat: str | None) -> float | None:
    value = run.get(name)
    if stat is not None:
        value = value.get(stat) if isinstance(value, dict) else None
    return value if isinstance(value, int | float) else None


def change(base: float | None, value: float | None) -> str:
    """``+12.3%`` relative to ``base`` (blank when either is missing or base is 0)."""
    if base is None or value is None or base == 0:
        return ""
    return f"{(value - base) / abs(base) * 100:+.1f}%"


def _label(run: dict[str, Any]) -> str:
    rate = run.get("rate")
    load = f"{rate:.4g}/s" if isinstance(rate, int | float) else f"c={run.get('concurrency')}"
    return f"{run.get('mode')} {load}"


def compare_reports(
    paths: list[Path], out: TextIO | None = None, fail_on: list[Bound] | None = None
) -> int:
    """Print the comparison table (and the bounds' verdict); 0, or ``RegressionFound``."""
    if len(paths) < 2:
        raise UsageError("compare needs at least two reports")
    if fail_on and len(paths) != 2:
        raise UsageError("--fail-on compares exactly two reports: BASE.json NEW.json")
    out = out or sys.stdout
    reports = [load_report(p) for p in paths]
    width = max(14, *(len(p.name) for p in paths)) + 2
    count = max(len(r["runs"]) for r in reports)
    lines = []
    for number in range(count):
        runs = [r["runs"][number] if number < len(r["runs"]) else None for r in reports]
        labels = " | ".join(_label(run) if run else "(none)" for run in runs)
        lines.append(f"run {number + 1}: {labels}")
        lines.append(f"{'':<16}" + "".join(f"{p.name:>{width}}{'':>9}" for p in paths))
        base = runs[0]
        for name, stat, title in FIGURES:
            values = [figure(run, name, stat) if run else None for run in runs]
            if all(v is None for v in values):
                continue
            cells = []
            for index, value in enumerate(values):
                shown = "-" if value is None else f"{value:.2f}".rstrip("0").rstrip(".")
                half = _half(runs[index], name, stat) if runs[index] else None
                if value is not None and half:
                    shown += f"±{half:.2g}"
                delta = change(figure(base, name, stat) if base else None, value) if index else ""
                cells.append(f"{shown:>{width}}{delta:>9}")
            lines.append(f"{title:<16}" + "".join(cells))
        lines.append("")
    findings = judge(fail_on, reports[0]["runs"], reports[1]["runs"]) if fail_on else []
    if findings:
        lines.append("--fail-on:")
        lines.extend("  " + finding.describe() for finding in findings)
        lines.append("")
    out.write("\n".join(lines))
    out.flush()
    message = broken_message(findings)
    if message is not None:
        raise RegressionFound(message)
    return 0


def _half(run: dict[str, Any], name: str, stat: str | None) -> float | None:
    """Half the width of the figure's 95 % interval (a ``--repeat`` report), for ``±``."""
    pair = ((run.get("repeat") or {}).get("ci95") or {}).get(f"{name}.{stat}" if stat else name)
    return (pair[1] - pair[0]) / 2 if isinstance(pair, list) and len(pair) == 2 else None
