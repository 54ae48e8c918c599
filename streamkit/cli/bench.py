"""``streamkit bench``: load-test a server (or the local model); ``bench compare``."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from streamkit.cli import options as opt
from streamkit.cli.bench_options import (
    Burstiness,
    CapacityPrecision,
    Concurrency,
    CsvPath,
    Dataset,
    Duration,
    Endpoint,
    FindCapacity,
    Goodput,
    HtmlPath,
    JsonPath,
    OutputTokens,
    OutputTokensStdev,
    PlotsDir,
    PrefixGroups,
    PrefixTokens,
    PromptTokens,
    PromptTokensStdev,
    RampUp,
    Rate,
    Ray,
    RayWorkers,
    Repeat,
    Requests,
    Seed,
    ServerMetrics,
    ServerMetricsInterval,
    ServerMetricsUrl,
    Sessions,
    Slo,
    SloPercentile,
    Sweep,
    SweepSteps,
    ThinkTime,
    Tokenizer,
    Trace,
    TraceSpeed,
    Warmup,
    Workers,
)
from streamkit.config import resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import run_blocking_command, run_command
from streamkit.pipeline.interrupts import Interrupts

bench_app = typer.Typer(
    name="bench",
    invoke_without_command=True,
    no_args_is_help=False,
)


@bench_app.callback()
def bench(
    ctx: typer.Context,
    concurrency: Concurrency = None,
    rate: Rate = None,
    burstiness: Burstiness = 1.0,
    sweep: Sweep = False,
    sweep_steps: SweepSteps = 5,
    requests: Requests = None,
    duration: Duration = None,
    warmup: Warmup = 0,
    seed: Seed = 0,
    workers: Workers = 1,
    ray: Ray = None,
    ray_workers: RayWorkers = None,
    repeat: Repeat = 1,
    ramp_up: RampUp = 0.0,
    sessions: Sessions = None,
    think_time: ThinkTime = None,
    trace: Trace = None,
    trace_speed: TraceSpeed = 1.0,
    endpoint: Endpoint = "chat",
    dataset: Dataset = "random",
    prompt_tokens: PromptTokens = 256,
    prompt_tokens_stdev: PromptTokensStdev = 0.0,
    output_tokens: OutputTokens = None,
    output_tokens_stdev: OutputTokensStdev = 0.0,
    prefix_tokens: PrefixTokens = 0,
    prefix_groups: PrefixGroups = 1,
    tokenizer: Tokenizer = None,
    temperature: opt.Temperature = None,
    slo: Slo = None,
    find_capacity: FindCapacity = False,
    slo_percentile: SloPercentile = 99.0,
    goodput: Goodput = None,
    capacity_precision: CapacityPrecision = 0.1,
    server_metrics: ServerMetrics = False,
    server_metrics_url: ServerMetricsUrl = None,
    server_metrics_interval: ServerMetricsInterval = 1.0,
    html_path: HtmlPath = None,
    json_path: JsonPath = None,
    csv_path: CsvPath = None,
    plots_dir: PlotsDir = None,
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
            profile=profile,
            base_url=base_url,
            api_key=api_key,
            model=model,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            timeout=timeout,
            max_retries=0,
        )
        config = BenchConfig(
            endpoint=endpoint,
            dataset=dataset,
            prompt_tokens=prompt_tokens,
            output_tokens=output_tokens or 128,
            output_tokens_given=output_tokens is not None,
            prompt_tokens_stdev=prompt_tokens_stdev,
            output_tokens_stdev=output_tokens_stdev,
            tokenizer=tokenizer,
            temperature=temperature,
            concurrency=tuple(concurrency or ()),
            rate=tuple(rate or ()),
            burstiness=burstiness,
            sweep=sweep,
            sweep_steps=sweep_steps,
            requests=requests,
            duration=duration,
            warmup=warmup,
            seed=seed,
            slo=parse_slo(slo) if slo else None,
            workers=workers,
            json_path=json_path,
            csv_path=csv_path,
            plots_dir=plots_dir,
            html_path=html_path,
            repeat=repeat,
            sessions=sessions,
            think_time=think_time,
            prefix_tokens=prefix_tokens,
            prefix_groups=prefix_groups,
            trace=trace,
            trace_speed=trace_speed,
            ramp_up=ramp_up,
            find_capacity=find_capacity,
            slo_percentile=slo_percentile,
            goodput_target=goodput,
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
            raise UsageError(
                "--workers is for one machine; with --ray, --ray-workers says "
                "how many actors share the load"
            )
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
    reports: Annotated[
        list[Path],
        typer.Argument(help="Two or more JSON reports of `streamkit bench --json`", dir_okay=False),
    ],
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            show_default=False,
            help="Exit 1 when a figure of NEW moved past a bound against BASE, e.g. "
            "'ttft.p99>+10%,throughput<-5%' (a change inside --repeat confidence intervals "
            "passes)",
        ),
    ] = None,
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
