"""What the user keeps: the JSON report and the per-request CSV (summary.py: the table).

The JSON report's shape is documented in README.md ("Benchmarking"). Nothing
here ever sees the API key; a base URL's user name and password are removed.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import msgspec

from streamkit import __version__
from streamkit.errors import UsageError
from streamkit.loadtest.metrics import STAT_KEYS, run_figures
from streamkit.loadtest.repeats import combine
from streamkit.loadtest.runner import LAG_WARNING_S, RunResult


class ReportInfo(msgspec.Struct):
    """What the report says about the benchmark as a whole."""

    base_url: str | None
    model: str | None
    endpoint: str
    started_at: str
    workload: str
    prompt_tokens_approximate: bool
    slo_ms: dict[str, float] | None = None
    workers: int = 1
    command_line: list[str] = []  # the API key masked
    repeat: int = 1
    server_metrics_url: str | None = None
    timing_source: str = "clock"  # "kernel": reads stamped by the kernel (rawhttp.py)


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")


def public_url(url: str | None) -> str | None:
    """``url`` without any user name or password in it."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit(parts._replace(netloc=netloc))


def run_record(result: RunResult, slo: dict[str, float] | None) -> dict[str, Any]:
    """One entry of ``runs[]``: the run's settings, then its figures."""
    spec = result.spec
    record: dict[str, Any] = {
        "mode": spec.mode,
        "concurrency": spec.concurrency,
        "rate": round(spec.rate, 4) if spec.rate is not None else None,
        "burstiness": spec.burstiness if spec.rate is not None else None,
        "requests": spec.requests,
        "duration_limit_s": spec.duration,
        "warmup": spec.warmup,
        "seed": spec.seed,
        "ramp_up_s": spec.ramp_up,
        "trace_speed": spec.trace_speed,
        "think_time": spec.think_time,
        "workers": result.workers,
        "partial": result.partial,
        "stopped": result.stopped,
    }
    if result.nodes:
        record["nodes"] = result.nodes
    record.update(run_figures(result.samples, result.duration, slo))
    lag = record["schedule_lag_ms"]
    record["client_fell_behind"] = bool(lag and lag["p99"] > LAG_WARNING_S * 1000)
    if result.server_metrics is not None:
        record["server_metrics"] = result.server_metrics
    return record


def group_record(group: Sequence[RunResult], slo: dict[str, float] | None) -> dict[str, Any]:
    """One entry of ``runs[]`` for a run and its ``--repeat`` repeats."""
    records = [run_record(result, slo) for result in group]
    return records[0] if len(records) == 1 else combine(records)


def build_report(info: ReportInfo, groups: Sequence[Sequence[RunResult]]) -> dict[str, Any]:
    slo = {k: v / 1000 for k, v in info.slo_ms.items()} if info.slo_ms else None
    return {
        "streamkit_version": __version__,
        "base_url": public_url(info.base_url),
        "model": info.model,
        "endpoint": info.endpoint,
        "started_at": info.started_at,
        "workload": info.workload,
        "prompt_tokens_approximate": info.prompt_tokens_approximate,
        "slo_ms": info.slo_ms,
        "workers": info.workers,
        "repeat": info.repeat,
        "command_line": info.command_line,
        "server_metrics_url": public_url(info.server_metrics_url),
        "timing_source": info.timing_source,
        "connections_opened": connections_opened(groups),
        "partial": any(r.partial for group in groups for r in group),
        "runs": [group_record(group, slo) for group in groups],
    }


def connections_opened(groups: Sequence[Sequence[RunResult]]) -> int | None:
    """The TCP connects in every run's measured phase (after warm-up), or None if not counted.

    Why: a connect there lands inside that request's TTFT (a few hundred µs
    on loopback, more under load or across a network), time the server never
    sees; a count above 0 says some TTFTs hold one (a pool smaller than the
    concurrency, keep-alive connections the server closed).
    """
    counts = [r.connections_opened for group in groups for r in group]
    if not counts or any(count is None for count in counts):
        return None
    return sum(count for count in counts if count is not None)


def write_json(path: Path, report: dict[str, Any]) -> None:
    try:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


CSV_FIELDS = (
    "run",
    "mode",
    "concurrency",
    "rate",
    "index",
    "worker",
    "scheduled_s",
    "sent_s",
    "first_token_s",
    "end_s",
    "schedule_lag_ms",
    "ttft_ms",
    "e2e_ms",
    "tpot_ms",
    "itl_mean_ms",
    "itl_max_ms",
    "content_chunks",
    "prompt_tokens",
    "output_tokens",
    "output_tokens_source",
    "error",
    "message",
    "first_answer_s",
    "ttfa_ms",
    "reasoning_tokens",
    "repeat",
    "session",
    "turn",
    "prefix_group",
)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.3f}"


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def write_csv(path: Path, results: Sequence[RunResult]) -> None:
    """One row per request of every run, in order; a run's repeats follow it, and
    share its number (``run``), told apart by ``repeat``."""
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        number = 0
        for result in results:
            number += result.repeat == 1
            _csv_rows(writer, number, result.repeat, result)


def _csv_rows(writer: Any, number: int, repeat: int, result: RunResult) -> None:
    spec = result.spec
    for s in result.samples:
        writer.writerow(
            [
                number,
                spec.mode,
                spec.concurrency or "",
                spec.rate or "",
                s.index,
                s.worker,
                _s(s.scheduled_at),
                _s(s.sent_at),
                _s(s.first_at),
                _s(s.end_at),
                _ms(s.lag),
                _ms(s.ttft),
                _ms(s.e2e),
                _ms(s.tpot),
                _ms(sum(s.itl) / len(s.itl)) if s.itl else "",
                _ms(max(s.itl, default=None)),
                len(s.itl) + (s.first_at is not None),
                s.prompt_tokens or "",
                s.output_tokens if s.output_tokens is not None else "",
                s.tokens_source or "",
                s.error or "",
                s.message or "",
                _s(s.first_answer_at),
                _ms(s.ttfa),
                s.reasoning_tokens if s.reasoning_tokens is not None else "",
                repeat,
                _blank(s.session),
                _blank(s.turn),
                _blank(s.group),
            ]
        )


def _blank(value: int | None) -> object:
    return "" if value is None else value


__all__ = ["STAT_KEYS", "ReportInfo", "build_report", "write_csv", "write_json"]
