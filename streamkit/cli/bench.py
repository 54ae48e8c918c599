"""``streamkit bench``: load-test a server (or the local model); ``bench compare``."""

from __future__ import annotations

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
    tokenizer: Annotated[Path | None, typer.Option(
        "--tokenizer", dir_okay=False, show_default=False, rich_help_panel=WORKLOAD,
        help="GGUF file whose tokenizer counts tokens [default: the local model's; none "
        "for a server, so lengths are approximate]")] = None,
    temperature: opt.Temperature = None,
    slo: Annotated[str | None, typer.Option(
        "--slo", show_default=False, rich_help_panel=REPORTS,
        help="Goodput bounds, e.g. ttft=500ms,tpot=50ms,e2e=10s (also itl)")] = None,
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

      streamkit bench compare before.json after.json
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
            json_path=json_path, csv_path=csv_path, plots_dir=plots_dir,
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


@bench_app.command()
def compare(
    reports: Annotated[list[Path], typer.Argument(
        help="Two or more JSON reports of `streamkit bench --json`", dir_okay=False)],
) -> None:
    """Print the runs of JSON reports side by side, with changes relative to the first.

    Examples:

      streamkit bench compare before.json after.json

      streamkit bench compare a.json b.json c.json
    """
    from streamkit.loadtest.compare import compare_reports

    raise typer.Exit(run_blocking_command(lambda: compare_reports(reports)))
