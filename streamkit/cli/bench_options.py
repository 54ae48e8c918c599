"""The options of ``streamkit bench``, declared once each: the command's signature
stays readable, and the help panels group them (load, workload, reports, capacity)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

LOAD = "Load"
WORKLOAD = "Workload"
REPORTS = "Reports"
CAPACITY = "Capacity search"

Concurrency = Annotated[
    list[int] | None,
    typer.Option(
        "--concurrency",
        "-c",
        min=1,
        max=4096,
        show_default=False,
        rich_help_panel=LOAD,
        help="Closed loop: keep N requests in flight (repeatable: one run each) [default: 1]",
    ),
]

Rate = Annotated[
    list[float] | None,
    typer.Option(
        "--rate",
        "-r",
        min=0.001,
        show_default=False,
        rich_help_panel=LOAD,
        help="Open loop: send R requests per second, Poisson arrivals (repeatable)",
    ),
]

Burstiness = Annotated[
    float,
    typer.Option(
        min=0.001,
        rich_help_panel=LOAD,
        help="Gamma shape of the gaps between arrivals: 1 Poisson, <1 burstier, >1 more regular",
    ),
]

Sweep = Annotated[
    bool,
    typer.Option(
        "--sweep",
        rich_help_panel=LOAD,
        help="A synchronous run, a max-throughput run (--concurrency, default 64), then "
        "--sweep-steps rates between their throughputs",
    ),
]

SweepSteps = Annotated[
    int,
    typer.Option(
        min=0, max=100, rich_help_panel=LOAD, help="Rates between the two ends of a sweep"
    ),
]

Requests = Annotated[
    int | None,
    typer.Option(
        "--requests",
        min=1,
        show_default=False,
        rich_help_panel=LOAD,
        help="Requests per run [default: 50 unless --duration]",
    ),
]

Duration = Annotated[
    float | None,
    typer.Option(
        "--duration",
        min=0.001,
        show_default=False,
        rich_help_panel=LOAD,
        help="Seconds per run (requests still in flight then are waited for)",
    ),
]

Warmup = Annotated[
    int,
    typer.Option(min=0, rich_help_panel=LOAD, help="Requests sent before each run, not counted"),
]

Seed = Annotated[
    int, typer.Option(rich_help_panel=LOAD, help="Seed of the prompts and the arrival times")
]

Workers = Annotated[
    int,
    typer.Option(
        min=1,
        max=256,
        rich_help_panel=LOAD,
        help="Processes to spread the load over (samples are merged exactly)",
    ),
]

Ray = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        rich_help_panel=LOAD,
        show_default=False,
        help="Spread the load over a Ray cluster: its address, `auto` or `local`; "
        "needs streamkit[ray]",
    ),
]

RayWorkers = Annotated[
    int | None,
    typer.Option(
        "--ray-workers",
        min=1,
        max=1024,
        rich_help_panel=LOAD,
        show_default=False,
        help="Ray actors to spread the load over [default: one a node]",
    ),
]

Repeat = Annotated[
    int,
    typer.Option(
        min=1,
        max=1000,
        rich_help_panel=LOAD,
        help="Run each run N times: figures as the mean and 95% interval, runs kept",
    ),
]

RampUp = Annotated[
    float,
    typer.Option(
        "--ramp-up",
        min=0.0,
        rich_help_panel=LOAD,
        help="Seconds over which the rate rises to --rate (or the -c loops start)",
    ),
]

Sessions = Annotated[
    int | None,
    typer.Option(
        "--sessions",
        min=1,
        max=4096,
        show_default=False,
        rich_help_panel=LOAD,
        help="N users playing the --dataset conversations turn by turn, each turn carrying "
        "the history and the server's replies (--requests: conversations)",
    ),
]

ThinkTime = Annotated[
    str | None,
    typer.Option(
        "--think-time",
        show_default=False,
        rich_help_panel=LOAD,
        help="Pause between a reply and the next turn: 2s, 500ms, exp:2s, uniform:1s:3s, "
        "normal:2s:0.5s",
    ),
]

Trace = Annotated[
    Path | None,
    typer.Option(
        "--trace",
        dir_okay=False,
        show_default=False,
        rich_help_panel=LOAD,
        help="Replay a trace's arrivals and lengths: JSONL (timestamp s, input_tokens, "
        "output_tokens, session_id), Mooncake JSONL or the Azure LLM inference CSV",
    ),
]

TraceSpeed = Annotated[
    float,
    typer.Option(
        "--trace-speed",
        min=0.001,
        rich_help_panel=LOAD,
        help="Replay the trace this many times faster",
    ),
]

Endpoint = Annotated[
    str,
    typer.Option(
        help="chat (/chat/completions) or completions (/completions)", rich_help_panel=WORKLOAD
    ),
]

Dataset = Annotated[
    str,
    typer.Option(
        help="random, or a FILE: JSONL batch records or ShareGPT-style JSON",
        rich_help_panel=WORKLOAD,
    ),
]

PromptTokens = Annotated[
    int, typer.Option(min=1, rich_help_panel=WORKLOAD, help="Prompt length (random dataset)")
]

PromptTokensStdev = Annotated[
    float, typer.Option(min=0.0, rich_help_panel=WORKLOAD, help="Spread of the prompt lengths")
]

OutputTokens = Annotated[
    int | None,
    typer.Option(
        min=1,
        show_default=False,
        rich_help_panel=WORKLOAD,
        help="Tokens to generate per request, forced where the server allows "
        "[default: 128; a ShareGPT file: its replies' lengths]",
    ),
]

OutputTokensStdev = Annotated[
    float, typer.Option(min=0.0, rich_help_panel=WORKLOAD, help="Spread of the output lengths")
]

PrefixTokens = Annotated[
    int,
    typer.Option(
        "--prefix-tokens",
        min=0,
        rich_help_panel=WORKLOAD,
        help="Begin each prompt with a shared prefix of N tokens (prefix caching)",
    ),
]

PrefixGroups = Annotated[
    int,
    typer.Option(
        "--prefix-groups",
        min=1,
        max=100000,
        rich_help_panel=WORKLOAD,
        help="Distinct shared prefixes; request i uses prefix i mod K",
    ),
]

Tokenizer = Annotated[
    Path | None,
    typer.Option(
        "--tokenizer",
        dir_okay=False,
        show_default=False,
        rich_help_panel=WORKLOAD,
        help="GGUF file whose tokenizer counts tokens [default: the local model's; none "
        "for a server, so lengths are approximate]",
    ),
]

Slo = Annotated[
    str | None,
    typer.Option(
        "--slo",
        show_default=False,
        rich_help_panel=REPORTS,
        help="Goodput bounds, e.g. ttft=500ms,tpot=50ms,e2e=10s (also itl)",
    ),
]

FindCapacity = Annotated[
    bool,
    typer.Option(
        "--find-capacity",
        rich_help_panel=CAPACITY,
        help="Search the highest request rate whose run meets --slo (start: --rate, else "
        "one user's throughput)",
    ),
]

SloPercentile = Annotated[
    float,
    typer.Option(
        "--slo-percentile",
        min=1.0,
        max=100.0,
        rich_help_panel=CAPACITY,
        help="The percentile of each figure that must be within its --slo bound",
    ),
]

Goodput = Annotated[
    float | None,
    typer.Option(
        "--goodput",
        min=0.0,
        max=1.0,
        show_default=False,
        rich_help_panel=CAPACITY,
        help="Also require this share of requests within every --slo bound",
    ),
]

CapacityPrecision = Annotated[
    float,
    typer.Option(
        "--capacity-precision",
        min=0.001,
        max=1.0,
        rich_help_panel=CAPACITY,
        help="Stop when the failing rate is within this share above the passing one",
    ),
]

ServerMetrics = Annotated[
    bool,
    typer.Option(
        "--server-metrics",
        rich_help_panel=REPORTS,
        help="Scrape the server's Prometheus /metrics (at the base URL's root) before, "
        "during and after each run",
    ),
]

ServerMetricsUrl = Annotated[
    str | None,
    typer.Option(
        "--server-metrics-url",
        show_default=False,
        rich_help_panel=REPORTS,
        help="Scrape this Prometheus URL instead (implies --server-metrics)",
    ),
]

ServerMetricsInterval = Annotated[
    float,
    typer.Option(
        "--server-metrics-interval",
        min=0.05,
        rich_help_panel=REPORTS,
        help="Seconds between scrapes during a run",
    ),
]

HtmlPath = Annotated[
    Path | None,
    typer.Option(
        "--html",
        dir_okay=False,
        show_default=False,
        rich_help_panel=REPORTS,
        help="Write one self-contained HTML page: tables, plots, metadata, command line",
    ),
]

JsonPath = Annotated[
    Path | None,
    typer.Option(
        "--json",
        dir_okay=False,
        show_default=False,
        rich_help_panel=REPORTS,
        help="Write the full report as JSON to FILE",
    ),
]

CsvPath = Annotated[
    Path | None,
    typer.Option(
        "--csv",
        dir_okay=False,
        show_default=False,
        rich_help_panel=REPORTS,
        help="Write one row per request to FILE",
    ),
]

PlotsDir = Annotated[
    Path | None,
    typer.Option(
        "--plots",
        file_okay=False,
        show_default=False,
        rich_help_panel=REPORTS,
        help="Write PNG plots to DIR (histograms, latency against throughput, tokens/s)",
    ),
]
