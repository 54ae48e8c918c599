"""The summary on stdout: one line per run, then what a reader should know about them.

Beside the table: failures by type, runs that stopped, tokens read together
(their ITL gaps are 0 as measured), a reasoning model's
time to first answer, a client that fell behind its schedule, figures per
turn of multi-turn sessions, first-of-group TTFT for shared prefixes, the
confidence intervals of repeated runs, the server's own metrics, and a
capacity search's verdict with every run it tried.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO


def _stat(stats: dict[str, float] | None, key: str) -> str:
    return "-" if not stats else f"{stats[key]:.1f}"


def _load(run: dict[str, Any]) -> str:
    if run["rate"] is not None:
        return f"{run['rate']:.4g}/s"
    if run.get("trace_speed") is not None:
        return f"x{run['trace_speed']:g}"
    if run["mode"] == "sessions":
        return f"u={run['concurrency']}"
    return f"c={run['concurrency']}"


def print_summary(report: dict[str, Any], out: TextIO | None = None) -> None:
    """The table on stdout: one line per run, then errors and warnings."""
    out = out or sys.stdout
    header = (
        f"{'mode':<17}{'load':>9}{'ok':>7}{'fail':>6}{'req/s':>9}{'out tok/s':>11}"
        f"{'TTFT p50':>10}{'p99':>8}{'ITL p50':>9}{'p99':>8}{'TPOT p50':>10}"
        f"{'E2E p50':>10}{'lag p99':>9}"
    )
    if report["slo_ms"]:
        header += f"{'goodput':>9}"
    lines = [
        f"{report['base_url'] or 'local model'} · {report['model'] or 'default model'} · "
        f"{report['endpoint']} · {report['workload']} · {report['workers']} worker(s)",
        header,
        "-" * len(header),
    ]
    notes = []
    for number, run in enumerate(report["runs"], 1):
        line = (
            f"{run['mode'] + (' *' if run['partial'] else ''):<17}{_load(run):>9}"
            f"{run['requests_completed']:>7}{run['requests_failed']:>6}"
            f"{run['request_throughput']:>9.2f}{run['output_token_throughput']:>11.1f}"
            f"{_stat(run['ttft_ms'], 'p50'):>10}{_stat(run['ttft_ms'], 'p99'):>8}"
            f"{_stat(run['itl_ms'], 'p50'):>9}{_stat(run['itl_ms'], 'p99'):>8}"
            f"{_stat(run['tpot_ms'], 'p50'):>10}{_stat(run['e2e_ms'], 'p50'):>10}"
            f"{_stat(run['schedule_lag_ms'], 'p99'):>9}"
        )
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
            notes.append(
                f"run {number}: the model thinks first ({run['reasoning_tokens']} "
                f"reasoning tokens): time to first answer token p50 "
                f"{_stat(run['ttfa_ms'], 'p50')} p99 {_stat(run['ttfa_ms'], 'p99')}"
            )
        if run.get("itl_same_read"):
            notes.append(f"run {number}: {_same_read_note(run)}")
        notes.extend(f"run {number}: {note}" for note in _workload_notes(run))
        if run["client_fell_behind"]:
            notes.append(
                f"run {number}: the client fell behind its schedule (p99 lag "
                f"{run['schedule_lag_ms']['p99']:.1f} ms): latencies from the "
                "scheduled time are in the JSON report; try --workers"
            )
    notes.extend(_capacity_notes(report.get("capacity")))
    lines.append(
        "times in ms; "
        + ("* partial run (interrupted); " if report["partial"] else "")
        + _token_note(report)
    )
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


def _same_read_note(run: dict[str, Any]) -> str:
    same, gaps = run["itl_same_read"], run["itl_gaps"]
    return (
        f"{same:g} of {gaps:g} ITL gaps ({same / gaps:.1%}) are tokens that came in one "
        "network read, 0 ms apart as measured: the server sent them together, or "
        "the client read them late"
    )


def _workload_notes(run: dict[str, Any]) -> list[str]:
    notes = []
    for row in run.get("by_turn") or []:
        notes.append(
            f"turn {row['turn']}: {row['requests']} requests, prompt "
            f"{row['prompt_tokens_mean'] or '-'} tokens, TTFT p50 "
            f"{_stat(row['ttft_ms'], 'p50')} p99 {_stat(row['ttft_ms'], 'p99')}"
        )
    groups = run.get("prefix_groups")
    if groups:
        notes.append(
            f"shared prefixes ({groups['groups']} groups): TTFT p50 of each group's "
            f"first request {_stat(groups['first_ttft_ms'], 'p50')}, of the rest "
            f"{_stat(groups['rest_ttft_ms'], 'p50')}"
        )
    repeat = run.get("repeat")
    if repeat:
        ci = repeat["ci95"]
        parts = [
            f"{name} [{ci[key][0]:.4g}, {ci[key][1]:.4g}]"
            for name, key in (
                ("req/s", "request_throughput"),
                ("TTFT p50", "ttft_ms.p50"),
                ("TTFT p99", "ttft_ms.p99"),
                ("ITL p50", "itl_ms.p50"),
            )
            if key in ci
        ]
        notes.append(f"mean of {repeat['count']} runs; 95% intervals: " + ", ".join(parts))
    server = run.get("server_metrics")
    if server:
        notes.append("server: " + _server_note(server))
    return notes


def _server_note(server: dict[str, Any]) -> str:
    parts = []
    for name in ("queue", "running", "kv_cache"):
        gauge = server.get(name)
        if gauge and gauge.get("max") is not None:
            parts.append(f"{name} max {gauge['max']:.3g} mean {gauge['mean']:.3g}")
    ttft = server.get("server_ttft_ms")
    if ttft:
        parts.append(f"its own TTFT p50 {ttft['p50']:.1f} p99 {ttft['p99']:.1f} ms")
    if server.get("failed_scrapes"):
        parts.append(f"{server['failed_scrapes']} scrapes failed")
    return ", ".join(parts) or f"no known metric at {server.get('url')}"


def _capacity_notes(capacity: dict[str, Any] | None) -> list[str]:
    if capacity is None:
        return []
    bounds = ", ".join(f"{k} <= {v:g} ms" for k, v in (capacity["slo_ms"] or {}).items())
    goal = f"p{capacity['percentile']:g} {bounds}"
    if capacity["goodput"] is not None:
        goal += f", at least {capacity['goodput']:.0%} of requests within every bound"
    if capacity["rate"] is None:
        verdict = "no rate tried met the SLO"
    else:
        upper = (
            f", {capacity['failing_rate']:.4g}/s did not"
            if capacity["failing_rate"] is not None
            else ", no rate tried failed"
        )
        precision = (
            "" if capacity["converged"] else " (not converged: the search stopped at its run limit)"
        )
        verdict = (
            f"{capacity['rate']:.4g} requests/s meets it{upper}; precision "
            f"{capacity['precision']:.0%}{precision}"
        )
    notes = [f"capacity ({goal}): {verdict}", "runs tried:"]
    for number, run in enumerate(capacity["runs"], 1):
        figures = ", ".join(
            f"{k} {v:.1f}" if v is not None else f"{k} -"
            for k, v in run["at_percentile_ms"].items()
        )
        score = "-" if run["score"] is None else f"{run['score']:.2f}"
        notes.append(
            f"  {number}. {run['rate']:.4g}/s {'pass' if run['passed'] else 'FAIL'} "
            f"score {score} ({figures} ms)"
        )
    return notes
