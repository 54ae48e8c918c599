"""What the user reads: the summary table, the JSON report and the per-request CSV.

The JSON report's shape is documented in README.md ("Benchmarking"). Nothing
here ever sees the API key; a base URL's user name and password are removed.
"""

from __future__ import annotations

import csv
import datetime
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

import msgspec

from streamkit import __version__
from streamkit.errors import UsageError
from streamkit.loadtest.metrics import STAT_KEYS, run_figures
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
        "workers": result.workers,
        "partial": result.partial,
        "stopped": result.stopped,
    }
    if result.nodes:
        record["nodes"] = result.nodes
    record.update(run_figures(result.samples, result.duration, slo))
    lag = record["schedule_lag_ms"]
    record["client_fell_behind"] = bool(lag and lag["p99"] > LAG_WARNING_S * 1000)
    return record


def build_report(info: ReportInfo, results: Sequence[RunResult]) -> dict[str, Any]:
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
        "partial": any(r.partial for r in results),
        "runs": [run_record(r, slo) for r in results],
    }


def write_json(path: Path, report: dict[str, Any]) -> None:
    try:
        path.write_bytes(msgspec.json.format(msgspec.json.encode(report), indent=2) + b"\n")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None


CSV_FIELDS = (
    "run", "mode", "concurrency", "rate", "index", "worker", "scheduled_s", "sent_s",
    "first_token_s", "end_s", "schedule_lag_ms", "ttft_ms", "e2e_ms", "tpot_ms",
    "itl_mean_ms", "itl_max_ms", "content_chunks", "prompt_tokens", "output_tokens",
    "output_tokens_source", "error", "message", "first_answer_s", "ttfa_ms",
    "reasoning_tokens",
)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.3f}"


def _s(value: float | None) -> str:
    return "" if value is None else f"{value:.6f}"


def write_csv(path: Path, results: Sequence[RunResult]) -> None:
    """One row per request of every run."""
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(CSV_FIELDS)
        for number, result in enumerate(results, 1):
            spec = result.spec
            for s in result.samples:
                writer.writerow([
                    number, spec.mode, spec.concurrency or "", spec.rate or "", s.index,
                    s.worker, _s(s.scheduled_at), _s(s.sent_at), _s(s.first_at), _s(s.end_at),
                    _ms(s.lag), _ms(s.ttft), _ms(s.e2e), _ms(s.tpot),
                    _ms(sum(s.itl) / len(s.itl)) if s.itl else "", _ms(max(s.itl, default=None)),
                    len(s.itl) + (s.first_at is not None), s.prompt_tokens or "",
                    s.output_tokens if s.output_tokens is not None else "",
                    s.tokens_source or "", s.error or "", s.message or "",
                    _s(s.first_answer_at), _ms(s.ttfa),
                    s.reasoning_tokens if s.reasoning_tokens is not None else "",
                ])


def _stat(stats: dict[str, float] | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.1f}"


def _load(run: dict[str, Any]) -> str:
    if run["rate"] is not None:
        return f"{run['rate']:.4g}/s"
    return f"c={run['concurrency']}"


def print_summary(report: dict[str, Any], out: TextIO | None = None) -> None:
    """The table on stdout: one line per run, then errors and warnings."""
    out = out or sys.stdout
    header = (f"{'mode':<17}{'load':>9}{'ok':>7}{'fail':>6}{'req/s':>9}{'out tok/s':>11}"
              f"{'TTFT p50':>10}{'p99':>8}{'ITL p50':>9}{'p99':>8}{'TPOT p50':>10}"
              f"{'E2E p50':>10}{'lag p99':>9}")
    if report["slo_ms"]:
        header += f"{'goodput':>9}"
    lines = [f"{report['base_url'] or 'local model'} · {report['model'] or 'default model'} · "
             f"{report['endpoint']} · {report['workload']} · {report['workers']} worker(s)",
             header, "-" * len(header)]
    notes = []
    for number, run in enumerate(report["runs"], 1):
        line = (f"{run['mode'] + (' *' if run['partial'] else ''):<17}{_load(run):>9}"
                f"{run['requests_completed']:>7}{run['requests_failed']:>6}"
                f"{run['request_throughput']:>9.2f}{run['output_token_throughput']:>11.1f}"
                f"{_stat(run['ttft_ms'], 'p50'):>10}{_stat(run['ttft_ms'], 'p99'):>8}"
                f"{_stat(run['itl_ms'], 'p50'):>9}{_stat(run['itl_ms'], 'p99'):>8}"
                f"{_stat(run['tpot_ms'], 'p50'):>10}{_stat(run['e2e_ms'], 'p50'):>10}"
                f"{_stat(run['schedule_lag_ms'], 'p99'):>9}")
        if report["slo_ms"]:
            line += f"{run['goodput']:>9.2f}"
        lines.append(line)
        if run["errors"]:
            errors = ", ".join(f"{kind} ×{count}" for kind, count in run["errors"].items())
            notes.append(f"run {number}: failed requests: {errors}")
        if run["stopped"]:
            notes.append(f"run {number}: stopped early: {run['stopped']}")
        if run.get("nodes"):
            shares = ", ".join(f"{node} {count}" for node, count in run["nodes"].items())
            notes.append(f"run {number}: requests by node: {shares}")
        if run.get("reasoning_tokens"):
            notes.append(f"run {number}: the model thinks first ({run['reasoning_tokens']} "
                         f"reasoning tokens): time to first answer token p50 "
                         f"{_stat(run['ttfa_ms'], 'p50')} p99 {_stat(run['ttfa_ms'], 'p99')}")
        if run["client_fell_behind"]:
            notes.append(f"run {number}: the client fell behind its schedule (p99 lag "
                         f"{run['schedule_lag_ms']['p99']:.1f} ms): latencies from the "
                         "scheduled time are in the JSON report; try --workers")
    lines.append("times in ms; " + ("* partial run (interrupted); " if report["partial"] else "")
                 + _token_note(report))
    out.write("\n".join(lines + notes) + "\n")
    out.flush()


def _token_note(report: dict[str, Any]) -> str:
    sources = {run["output_tokens_source"] for run in report["runs"]} - {None}
    parts = []
    if sources - {"usage"}:
        parts.append("output tokens counted from " + "/".join(sorted(sources)))
    if report["prompt_tokens_approximate"]:
        parts.append("prompt lengths approximate (no tokenizer: --tokenizer PATH.gguf)")
    return "; ".join(parts) or "token counts from the server's usage"


__all__ = ["STAT_KEYS", "ReportInfo", "build_report", "print_summary", "write_csv",
           "write_json"]
