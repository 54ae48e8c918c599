"""``--html FILE``: the whole benchmark as one self-contained page to attach to a review.

One file, nothing fetched when it is opened: the tables are HTML, the plots
(plots.py, so matplotlib is needed, and checked before any run) are PNGs
embedded as ``data:`` URIs, and the run's metadata and command line (the API
key masked) say how to run it again. Every text from outside (model names,
URLs, error messages) is escaped.
"""

from __future__ import annotations

import base64
import html
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streamkit.errors import UsageError
from streamkit.loadtest.runner import RunResult

STYLE = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:.25em .6em;
text-align:right}th{background:#f3f3f3}td.l,th.l{text-align:left}img{max-width:100%}
code{background:#f3f3f3;padding:.1em .3em}"""

COLUMNS = (
    ("ok", "requests_completed", None),
    ("failed", "requests_failed", None),
    ("req/s", "request_throughput", None),
    ("out tok/s", "output_token_throughput", None),
    ("TTFT p50", "ttft_ms", "p50"),
    ("TTFT p99", "ttft_ms", "p99"),
    ("TTFA p50", "ttfa_ms", "p50"),
    ("ITL p50", "itl_ms", "p50"),
    ("ITL p99", "itl_ms", "p99"),
    ("TPOT p50", "tpot_ms", "p50"),
    ("E2E p50", "e2e_ms", "p50"),
    ("E2E p99", "e2e_ms", "p99"),
    ("lag p99", "schedule_lag_ms", "p99"),
    ("goodput", "goodput", None),
)


def _cell(value: Any) -> str:
    if value is None:
        return "<td>-</td>"
    if isinstance(value, float):
        return f"<td>{value:.4g}</td>"
    return f"<td>{html.escape(str(value))}</td>"


def _table(head: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    top = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(_cell(v) for v in row) + "</tr>" for row in rows)
    return f"<table><tr>{top}</tr>{body}</table>"


def _figure(run: dict[str, Any], field: str, stat: str | None) -> Any:
    value = run.get(field)
    return value.get(stat) if stat and isinstance(value, dict) else value


def _runs(report: dict[str, Any]) -> str:
    rows = []
    for number, run in enumerate(report["runs"], 1):
        load = (
            f"{run['rate']:.4g}/s"
            if run.get("rate") is not None
            else f"x{run['trace_speed']:g}"
            if run.get("trace_speed") is not None
            else f"c={run.get('concurrency')}"
        )
        rows.append(
            [number, run["mode"], load, *(_figure(run, field, stat) for _, field, stat in COLUMNS)]
        )
    return _table(["run", "mode", "load", *(title for title, _, _ in COLUMNS)], rows)


def _details(report: dict[str, Any]) -> str:
    parts = []
    for number, run in enumerate(report["runs"], 1):
        if run.get("by_turn"):
            parts.append(
                f"<h3>Run {number}: by turn</h3>"
                + _table(
                    ["turn", "requests", "prompt tokens", "TTFT p50", "TTFT p99", "E2E p50"],
                    [
                        [
                            r["turn"],
                            r["requests"],
                            r["prompt_tokens_mean"],
                            _figure(r, "ttft_ms", "p50"),
                            _figure(r, "ttft_ms", "p99"),
                            _figure(r, "e2e_ms", "p50"),
                        ]
                        for r in run["by_turn"]
                    ],
                )
            )
        if run.get("prefix_groups"):
            groups = run["prefix_groups"]
            parts.append(
                f"<h3>Run {number}: shared prefixes</h3>"
                + _table(
                    [
                        "groups",
                        "first TTFT p50",
                        "first TTFT p99",
                        "rest TTFT p50",
                        "rest TTFT p99",
                    ],
                    [
                        [
                            groups["groups"],
                            _figure(groups, "first_ttft_ms", "p50"),
                            _figure(groups, "first_ttft_ms", "p99"),
                            _figure(groups, "rest_ttft_ms", "p50"),
                            _figure(groups, "rest_ttft_ms", "p99"),
                        ]
                    ],
                )
            )
        server = run.get("server_metrics")
        if server:
            parts.append(
                f"<h3>Run {number}: the server's metrics</h3>"
                + _table(
                    ["", "before", "max", "mean", "after"],
                    [
                        [name, *(server[name][k] for k in ("before", "max", "mean", "after"))]
                        for name in ("queue", "running", "kv_cache")
                    ],
                )
            )
    capacity = report.get("capacity")
    if capacity:
        parts.append(
            f"<h2>Capacity</h2><p>{html.escape(str(capacity['rate']))} requests/s "
            f"meets the SLO (precision {capacity['precision']:.0%})</p>"
            + _table(
                ["rate", "passed", "score"],
                [[r["rate"], r["passed"], r["score"]] for r in capacity["runs"]],
            )
        )
    return "".join(parts)


def _metadata(report: dict[str, Any]) -> str:
    keys = (
        "streamkit_version",
        "base_url",
        "model",
        "endpoint",
        "started_at",
        "workload",
        "prompt_tokens_approximate",
        "slo_ms",
        "workers",
        "repeat",
        "server_metrics_url",
        "partial",
    )
    rows = "".join(
        f"<tr><th class=l>{key}</th><td class=l>{html.escape(str(report.get(key)))}</td></tr>"
        for key in keys
    )
    command = html.escape(" ".join(report.get("command_line") or []))
    return f"<table>{rows}</table><p>Command line: <code>{command}</code></p>"


def render(report: dict[str, Any], images: Sequence[tuple[str, bytes]]) -> str:
    """The page for ``report``, with ``images`` (name, PNG bytes) embedded."""
    pictures = "".join(
        f'<h3>{html.escape(name)}</h3><img alt="{html.escape(name)}" '
        f'src="data:image/png;base64,{base64.b64encode(data).decode("ascii")}">'
        for name, data in images
    )
    title = f"streamkit bench: {report.get('model') or 'default model'}"
    return (
        f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}"
        f"</title><style>{STYLE}</style></head><body><h1>{html.escape(title)}</h1>"
        f"{_metadata(report)}<h2>Runs</h2><p>times in ms</p>{_runs(report)}"
        f"{_details(report)}<h2>Plots</h2>{pictures}</body></html>\n"
    )


def write_html(path: Path, report: dict[str, Any], groups: Sequence[Sequence[RunResult]]) -> None:
    """Draw the plots in a scratch folder, embed them, write the page."""
    from streamkit.loadtest.plots import write_plots  # matplotlib: only when asked

    with tempfile.TemporaryDirectory(prefix="streamkit-html-") as scratch:
        files = write_plots(Path(scratch), report, groups)
        images = [(file.name, file.read_bytes()) for file in files]
    try:
        path.write_text(render(report, images), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
