"""``streamkit bench``: load-test a server (or the local model); ``bench compare``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from streamkit.cli import options as opt
from streamkit.config import resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import run_blocking_command, run_command
from streamkit.pipeline.interrupts import Interrupts

LOAD = "Load"
WORKLOAD = "Workload"
REPORTS = "Reports"
CAPACITY = "Capacity search"

bench_app = typer.Typer(
    name="bench",
    invoke_without_command=True,
    no_args_is_help=False,
)


@bench_app.callback()
def bench(
    ctx: typer.Context,
    concurrency: Annotated[list[int] | None, typer.Option(
        "--concurrency", "-c", min=1, max=4096, show_default=False, rich_help_panel=LOAD,
        help="Closed loop: keep N requests in flight (repeatable: one run each) [default: 1]",
    )] = None,
    rate: Annotated[list[float] | None, typer.Option(
        "--rate", "-r", min=0.001, show_default=False, rich_help_panel=LOAD,
        help="Open loop: send R requests per second, Poisson arrivals (repeatable)",
    )] = None,
    burstiness: Annotated[float, typer.Option(
        min=0.001, rich_help_panel=LOAD,
        help="Gamma shape of the gaps between arrivals: 1 Poisson, <1 burstier, "
        ">1 more regular",
    )] = 1.0,
    sweep: Annotated[bool, typer.Option(
        "--sweep", rich_help_panel=LOAD,
        help="A synchronous run, a max-throughput run (--concurrency, default 64), then "
        "--sweep-steps rates between their throughputs",
    )] = False,
    sweep_steps: Annotated[int, typer.Option(min=0, max=100, rich_help_panel=LOAD,
                                             help="Rates between the two ends of a sweep")] = 5,
    requests: Annotated[int | None, typer.Option(
        "--requests", min=1, show_default=False, rich_help_panel=LOAD,
        help="Requests per run [default: 50 unless --duration]")] = None,
    duration: Annotated[float | None, typer.Option(
        "--duration", min=0.001, show_default=False, rich_help_panel=LOAD,
        help="Seconds per run (requests still in flight then are waited for)")] = None,
    warmup: Annotated[int, typer.Option(min=0, rich_help_panel=LOAD,
                                        help="Requests sent before each run, not counted")] = 0,
    seed: Annotated[int, typer.Option(rich_help_panel=LOAD,
                                      help="Seed of the prompts and the arrival times")] = 0,
    workers: Annotated[int, typer.Option(
        min=1, max=256, rich_help_panel=LOAD,
        help="Processes to spread the load over (samples are merged exactly)")] = 1,
    ray: Annotated[str | None, typer.Option(
        "--ray", metavar="ADDRESS", rich_help_panel=LOAD, show_default=False,
        help="Spread the load over a Ray cluster: its address, `auto` or `local`; "
        "needs streamkit[ray]")] = None,
    ray_workers: Annotated[int | None, typer.Option(
        "--ray-workers", min=1, max=1024, rich_help_panel=LOAD, show_default=False,
        help="Ray actors to spread the load over [default: one a node]")] = None,
    repeat: Annotated[int, typer.Option(
        min=1, max=1000, rich_help_panel=LOAD,
        help="Run each run N times: figures as the mean and 95% interval, runs kept")] = 1,
    ramp_up: Annotated[float, typer.Option(
        "--ramp-up", min=0.0, rich_help_panel=LOAD,
        help="Seconds over which the rate rises to --rate (or the -c loops start)")] = 0.0,
    sessions: Annotated[int | None, typer.Option(
        "--sessions", min=1, max=4096, show_default=False, rich_help_panel=LOAD,
        help="N users playing the --dataset conversations turn by turn, each turn carrying "
        "the history and the server's replies (--requests: conversations)")] = None,
    think_time: Annotated[str | None, typer.Option(
        "--think-time", show_default=False, rich_help_panel=LOAD,
        help="Pause between a reply and the next turn: 2s, 500ms, exp:2s, uniform:1s:3s, "
        "normal:2s:0.5s")] = None,
    trace: Annotated[Path | None, typer.Option(
        "--trace", dir_okay=False, show_default=False, rich_help_panel=LOAD,
        help="Replay a trace's arrivals and lengths: JSONL (timestamp s, input_tokens, "
        "output_tokens, session_id), Mooncake JSONL or the Azure LLM inference CSV")] = None,
    trace_speed: Annotated[float, typer.Option(
        "--trace-speed", min=0.001, rich_help_panel=LOAD,
        help="Replay the trace this many times faster")] = 1.0,
    endpoint: Annotated[str, typer.Option(
        help="chat (/chat/completions) or completions (/completions)",
        rich_help_panel=WORKLOAD)] = "chat",
    dataset: Annotated[str, typer.Option(
        help="random, or a FILE: JSONL batch records or ShareGPT-style JSON",
        rich_help_panel=WORKLOAD)] = "random",
    prompt_tokens: Annotated[int, typer.Option(min=1, rich_help_panel=WORKLOAD,
                                               help="Prompt length (random dataset)")] = 256,
    prompt_tokens_stdev: Annotated[float, typer.Option(
        min=0.0, rich_help_panel=WORKLOAD, help="Spread of the prompt lengths")] = 0.0,
    output_tokens: Annotated[int | None, typer.Option(
        min=1, show_default=False, rich_help_panel=WORKLOAD,
        help="Tokens to generate per request, forced where the server allows "
        "[default: 128; a ShareGPT file: its replies' lengths]")] = None,
    output_tokens_stdev: Annotated[float, typer.Option(
        min=0.0, rich_help_panel=WORKLOAD, help="Spread of the output lengths")] = 0.0,
    prefix_tokens: Annotated[int, typer.Option(
        "--prefix-tokens", min=0, rich_help_panel=WORKLOAD,
        help="Begin each prompt with a shared prefix of N tokens (prefix caching)")] = 0,
    prefix_groups: Annotated[int, typer.Option(
        "--prefix-groups", min=1, max=100000, rich_help_panel=WORKLOAD,
        help="Distinct shared prefixes; request i uses prefix i mod K")] = 1,
    tokenizer: Annotated[Path | None, typer.Option(
        "--tokenizer", dir_okay=False, show_default=False, rich_help_panel=WORKLOAD,
        help="GGUF file whose tokenizer counts tokens [default: the local model's; none "
        "for a server, so lengths are approximate]")] = None,
    temperature: opt.Temperature = None,
    slo: Annotated[str | None, typer.Option(
        "--slo", show_default=False, rich_help_panel=REPORTS,
        help="Goodput bounds, e.g. ttft=500ms,tpot=50ms,e2e=10s (also itl)")] = None,
    find_capacity: Annotated[bool, typer.Option(
        "--find-capacity", rich_help_panel=CAPACITY,
        help="Search the highest request rate whose run meets --slo (start: --rate, else "
        "one user's throughput)")] = False,
    slo_percentile: Annotated[float, typer.Option(
        "--slo-percentile", min=1.0, max=100.0, rich_help_panel=CAPACITY,
        help="The percentile of each figure that must be within its --slo bound")] = 99.0,
    goodput: Annotated[float | None, typer.Option(
        "--goodput", min=0.0, max=1.0, show_default=False, rich_help_panel=CAPACITY,
        help="Also require this share of requests within every --slo bound")] = None,
    capacity_precision: Annotated[float, typer.Option(
        "--capacity-precision", min=0.001, max=1.0, rich_help_panel=CAPACITY,
        help="Stop when the failing rate is within this share above the passing one")] = 0.1,
    server_metrics: Annotated[bool, typer.Option(
        "--server-metrics", rich_help_panel=REPORTS,
        help="Scrape the server's Prometheus /metrics (at the base URL's root) before, "
        "during and after each run")] = False,
    server_metrics_url: Annotated[str | None, typer.Option(
        "--server-metrics-url", show_default=False, rich_help_panel=REPORTS,
        help="Scrape this Prometheus URL instead (implies --server-metrics)")] = None,
    server_metrics_interval: Annotated[float, typer.Option(
        "--server-metrics-interval", min=0.05, rich_help_panel=REPORTS,
        help="Seconds between scrapes during a run")] = 1.0,
    html_path: Annotated[Path | None, typer.Option(
        "--html", dir_okay=False, show_default=False, rich_help_panel=REPORTS,
        help="Write one self-contained HTML page: tables, plots, metadata, command line")] = None,
    json_path: Annotated[Path | None, typer.Option(
        "--json", dir_okay=False, show_default=False, rich_help_panel=REPORTS,
        help="Write the full report as JSON to FILE")] = None,
    csv_path: Annotated[Path | None, typer.Option(
        "--csv", dir_okay=False, show_default=False, rich_help_panel=REPORTS,
        help="Write one row per request to FILE")] = None,
    plots_dir: Annotated[Path | None, typer.Option(
        "--plots", file_okay=False, show_default=False, rich_help_panel=REPORTS,
        help="Write PNG plots to DIR (histograms, latency against throughput, tokens/s)")] = None,
    model: opt.Model = None,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
    timeout: opt.Timeout = None,
) -> None:
    """Load-test a server: TTFT, ITL, TPOT, E2E latency, throughput, goodput.

    Closed loop with --concurrency, open loop with --rate, or --sweep from one
    request at a time to saturation. Requests are never retried: failures are
    counted by type. The summary goes to stdout; Ctrl-C keeps what was measured.

    Examples:

      streamkit bench --base-url http://127.0.0.1:8000/v1 -c 1 -c 4 -c 16 --requests 200

      streamkit bench --base-url $URL --rate 2 --rate 8 --duration 60 --json run.json

      streamkit bench --base-url $URL --sweep --slo ttft=500ms,tpot=50ms --plots plots/

      streamkit bench --dataset sharegpt.json --tokenizer model.gguf -c 8 --csv requests.csv

      streamkit bench --base-url $URL --dataset chats.json --sessions 8 --think-time exp:2s

      streamkit bench --base-url $URL --trace mooncake.jsonl --trace-speed 2 --server-metrics

      streamkit bench --base-url $URL --find-capacity --slo ttft=500ms,tpot=50ms --html cap.html

      streamkit bench --base-url $URL -c 8 --repeat 5 --json new.json

      streamkit bench compare before.json after.json --fail-on 'ttft.p99>+10%'
    """
    if ctx.invoked_subcommand is not None:
        return
    from streamkit.loadtest.bench import run_bench
    from streamkit.loadtest.metrics import parse_slo
    from streamkit.loadtest.setup import BenchConfig

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile, base_url=base_url, api_key=api_key, model=model,
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, timeout=timeout,
            max_retries=0,
        )
        config = BenchConfig(
            endpoint=endpoint, dataset=dataset, prompt_tokens=prompt_tokens,
            output_tokens=output_tokens or 128, output_tokens_given=output_tokens is not None,
            prompt_tokens_stdev=prompt_tokens_stdev, output_tokens_stdev=output_tokens_stdev,
            tokenizer=tokenizer, temperature=temperature,
            concurrency=tuple(concurrency or ()), rate=tuple(rate or ()),
            burstiness=burstiness, sweep=sweep, sweep_steps=sweep_steps, requests=requests,
            duration=duration, warmup=warmup, seed=seed,
            slo=parse_slo(slo) if slo else None, workers=workers,
            json_path=json_path, csv_path=csv_path, plots_dir=plots_dir, html_path=html_path,
            repeat=repeat, sessions=sessions, think_time=think_time,
            prefix_tokens=prefix_tokens, prefix_groups=prefix_groups, trace=trace,
            trace_speed=trace_speed, ramp_up=ramp_up, find_capacity=find_capacity,
            slo_percentile=slo_percentile, goodput_target=goodput,
            capacity_precision=capacity_precision,
            server_metrics=server_metrics_url or ("auto" if server_metrics else None),
            server_metrics_interval=server_metrics_interval,
            command_line=masked_command_line(sys.argv[1:]),
        )
        if ray is None:
            if ray_workers is not None:
                raise UsageError("--ray-workers is for --ray runs")
            return await run_bench(config, settings, interrupts)
        if workers > 1:
            raise UsageError("--workers is for one machine; with --ray, --ray-workers says "
                             "how many actors share the load")
        from streamkit.cluster.bench import run_bench_on_cluster  # Ray: only on this path

        return await run_bench_on_cluster(ray, ray_workers, config, settings, interrupts)

    raise typer.Exit(run_command(body))


def masked_command_line(args: list[str]) -> tuple[str, ...]:
    """The command as typed, for the HTML report, with any API key replaced by ``***``."""
    shown = ["streamkit"]
    hide_next = False
    for arg in args:
        if hide_next:
            shown.append("***")
            hide_next = False
        elif arg == "--api-key":
            shown.append(arg)
            hide_next = True
        elif arg.startswith("--api-key="):
            shown.append("--api-key=***")
        else:
            shown.append(arg)
    return tuple(shown)


@bench_app.command()
def compare(
    reports: Annotated[list[Path], typer.Argument(
        help="Two or more JSON reports of `streamkit bench --json`", dir_okay=False)],
    fail_on: Annotated[str | None, typer.Option(
        "--fail-on", show_default=False,
        help="Exit 1 when a figure of NEW moved past a bound against BASE, e.g. "
        "'ttft.p99>+10%,throughput<-5%' (a change inside --repeat confidence intervals "
        "passes)")] = None,
) -> None:
    """Print the runs of JSON reports side by side, with changes relative to the first.

    With --fail-on (exactly two reports, BASE then NEW) it is a CI gate: exit 1,
    naming each bound broken; 0 when none is.

    Examples:

      streamkit bench compare before.json after.json

      streamkit bench compare a.json b.json c.json

      streamkit bench compare base.json new.json --fail-on 'ttft.p99>+10%,throughput<-5%'
    """
    from streamkit.loadtest.compare import compare_reports
    from streamkit.loadtest.verdict import parse_fail_on

    def body() -> int:
        bounds = parse_fail_on(fail_on) if fail_on is not None else None
        return compare_reports(reports, fail_on=bounds)

    raise typer.Exit(run_blocking_command(body))
