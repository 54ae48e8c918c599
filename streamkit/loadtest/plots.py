"""``--plots DIR``: PNG figures of a benchmark, drawn with matplotlib.

matplotlib is an optional extra (``pip install 'streamkit[plots]'``),
imported only here, and only when ``--plots`` is given (it costs about half
a second of start-up), with the non-interactive Agg backend so that no
display is needed. Files:

* ``ttft_hist.png``, ``itl_hist.png``: distributions, one series per run;
* ``latency_vs_throughput.png``: p50 and p99 TTFT, ITL and E2E against the
  request throughput of each run (a sweep, or several runs);
* ``tokens_per_second.png``: output tokens per second over each run's time,
  from the arrival times of content chunks (a request's tokens spread evenly
  over its chunks).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamkit.errors import UsageError
from streamkit.loadtest.runner import RunResult

FILES = ("ttft_hist.png", "itl_hist.png", "latency_vs_throughput.png", "tokens_per_second.png")


def _label(run: dict[str, Any]) -> str:
    load = f"{run['rate']:.4g}/s" if run["rate"] is not None else f"c={run['concurrency']}"
    return f"{run['mode']} {load}"


def require_matplotlib() -> None:
    """A usage error, with the install line, when ``--plots`` cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plots needs matplotlib: pip install 'streamkit[plots]'") from None


def write_plots(folder: Path, report: dict[str, Any], results: Sequence[RunResult]) -> list[Path]:
    """Draw every figure into ``folder`` (created if needed); the files written."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror}") from None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = [_label(run) for run in report["runs"]]
    written = []
    for name, draw in (("ttft_hist.png", _ttft), ("itl_hist.png", _itl),
                       ("latency_vs_throughput.png", _latency),
                       ("tokens_per_second.png", _tokens)):
        figure, axes = pyplot.subplots(figsize=(8, 5))
        try:
            draw(axes, report, results, labels)
            axes.grid(alpha=0.3)
            if axes.get_legend_handles_labels()[0]:
                axes.legend(fontsize="small")
            figure.tight_layout()
            figure.savefig(folder / name, dpi=100)
        finally:
            pyplot.close(figure)
        written.append(folder / name)
    return written


def _hist(axes: Any, series: list[tuple[str, list[float]]], title: str) -> None:
    values = [v for _, data in series for v in data]
    if values:
        low, high = min(values), max(values)
        bins = [low + (high - low) * i / 40 for i in range(41)] if high > low else 10
        for label, data in series:
            if data:
                axes.hist(data, bins=bins, alpha=0.5, label=label)
    axes.set_title(title)
    axes.set_xlabel("ms")
    axes.set_ylabel("count")


def _ttft(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    _hist(axes, [(label, [s.ttft * 1000 for s in r.samples if s.ok and s.ttft is not None])
                 for label, r in zip(labels, results, strict=True)], "Time to first token")


def _itl(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    _hist(axes, [(label, [g * 1000 for s in r.samples if s.ok for g in s.itl])
                 for label, r in zip(labels, results, strict=True)], "Inter-token latency")


def _latency(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    runs = sorted(report["runs"], key=lambda run: run["request_throughput"])
    x = [run["request_throughput"] for run in runs]
    for metric, style in (("ttft_ms", "o-"), ("itl_ms", "s-"), ("e2e_ms", "^-")):
        for stat, alpha in (("p50", 1.0), ("p99", 0.5)):
            y = [run[metric][stat] if run[metric] else math.nan for run in runs]
            axes.plot(x, y, style, alpha=alpha, label=f"{metric[:-3].upper()} {stat}")
    axes.set_yscale("log")
    axes.set_title("Latency against throughput")
    axes.set_xlabel("requests per second")
    axes.set_ylabel("ms")


def _tokens(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    for label, result in zip(labels, results, strict=True):
        arrivals: list[tuple[float, float]] = []  # (time, tokens) of each content chunk
        for sample in result.samples:
            if sample.ok and sample.first_at is not None:
                per_chunk = (sample.output_tokens or 0) / (len(sample.itl) + 1)
                arrivals.extend((at, per_chunk) for at in
                                itertools.accumulate(sample.itl, initial=sample.first_at))
        if not arrivals:
            continue
        seconds = math.ceil(max(at for at, _ in arrivals)) or 1
        counts = [0.0] * seconds
        for at, tokens in arrivals:
            counts[min(int(at), seconds - 1)] += tokens
        axes.plot(range(seconds), counts, drawstyle="steps-post", label=label)
    axes.set_title("Output tokens per second over each run")
    axes.set_xlabel("seconds from the run's start")
    axes.set_ylabel("tokens/s")
