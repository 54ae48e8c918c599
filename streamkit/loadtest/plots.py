"""``--plots DIR``: PNG figures of a benchmark, drawn with matplotlib.

matplotlib is an optional extra (``pip install 'streamkit[plots]'``),
imported only here, and only when ``--plots`` is given (it costs about half
a second of start-up), with the non-interactive Agg backend so that no
display is needed. Files:

* ``ttft_hist.png``, ``itl_hist.png``: distributions, one series per run
  (with a reasoning model, TTFA -- time to the first answer token -- beside
  TTFT);
* ``latency_vs_throughput.png``: p50 and p99 TTFT (and TTFA), ITL and E2E
  against the request throughput of each run (a sweep, or several runs);
* ``tokens_per_second.png``: output tokens per second over each run's time,
  from the arrival times of content chunks (a request's tokens spread evenly
  over its chunks);
* ``server_metrics.png`` (with ``--server-metrics``): the server's queue,
  running requests and KV-cache use over each run, as scraped.

A ``--repeat`` run is drawn from the samples of all its repeats.
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
SERVER_FILE = "server_metrics.png"


def _label(run: dict[str, Any]) -> str:
    load = f"{run['rate']:.4g}/s" if run["rate"] is not None else f"c={run['concurrency']}"
    return f"{run['mode']} {load}"


def require_matplotlib() -> None:
    """A usage error, with the install line, when ``--plots`` cannot be drawn."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError("--plots needs matplotlib: pip install 'streamkit[plots]'") from None


def merged(group: Sequence[RunResult]) -> RunResult:
    """A run and its repeats as one, their samples together (times stay per repeat)."""
    if len(group) == 1:
        return group[0]
    return RunResult(
        group[0].spec,
        samples=[s for r in group for s in r.samples],
        duration=max(r.duration for r in group),
    )


def write_plots(
    folder: Path, report: dict[str, Any], groups: Sequence[Sequence[RunResult]]
) -> list[Path]:
    """Draw every figure into ``folder`` (created if needed); the files written."""
    results = [merged(group) for group in groups]
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {folder}: {exc.strerror}") from None
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = [_label(run) for run in report["runs"]]
    written = []
    drawings = [
        ("ttft_hist.png", _ttft),
        ("itl_hist.png", _itl),
        ("latency_vs_throughput.png", _latency),
        ("tokens_per_second.png", _tokens),
    ]
    if any(run.get("server_metrics") for run in report["runs"]):
        drawings.append((SERVER_FILE, _server))
    for name, draw in drawings:
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
    series = [
        (label, [s.ttft * 1000 for s in r.samples if s.ok and s.ttft is not None])
        for label, r in zip(labels, results, strict=True)
    ]
    answers = [
        (
            f"{label} TTFA",
            [
                s.ttfa * 1000
                for s in r.samples
                if s.ok and s.ttfa is not None and s.reasoning_tokens
            ],
        )
        for label, r in zip(labels, results, strict=True)
    ]
    answers = [(label, data) for label, data in answers if data]
    title = "Time to first token" + (" and to first answer token (TTFA)" if answers else "")
    _hist(axes, series + answers, title)


def _itl(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    _hist(
        axes,
        [
            (label, [g * 1000 for s in r.samples if s.ok for g in s.itl])
            for label, r in zip(labels, results, strict=True)
        ],
        "Inter-token latency",
    )


def _latency(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    runs = sorted(report["runs"], key=lambda run: run["request_throughput"])
    x = [run["request_throughput"] for run in runs]
    metrics = [("ttft_ms", "o-"), ("itl_ms", "s-"), ("e2e_ms", "^-")]
    if any(run.get("reasoning_tokens") for run in runs):
        metrics.insert(1, ("ttfa_ms", "d-"))
    for metric, style in metrics:
        for stat, alpha in (("p50", 1.0), ("p99", 0.5)):
            y = [run[metric][stat] if run.get(metric) else math.nan for run in runs]
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
                arrivals.extend(
                    (at, per_chunk)
                    for at in itertools.accumulate(sample.itl, initial=sample.first_at)
                )
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


def _server(axes: Any, report: dict, results: Sequence[RunResult], labels: list[str]) -> None:
    for label, run in zip(labels, report["runs"], strict=True):
        series = (run.get("server_metrics") or {}).get("series") or {}
        for name, style in (("queue", "-"), ("running", "--"), ("kv_cache", ":")):
            points = series.get(name) or []
            if points:
                axes.plot(
                    [t for t, _ in points], [v for _, v in points], style, label=f"{label} {name}"
                )
    axes.set_title("The server's own metrics (Prometheus), over each run")
    axes.set_xlabel("seconds from the run's start")
    axes.set_ylabel("requests (queue, running) / share (KV cache)")
