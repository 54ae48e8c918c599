"""The ``bench`` command's body: plan the runs, open the target, run, report.

Runs go one after another: each ``--concurrency`` value, then each
``--rate`` value, or a sweep (GuideLLM's: a synchronous run, a
maximum-throughput run, then ``--sweep-steps`` Poisson rates evenly spaced
between the two throughputs measured), or a ``--sessions`` or ``--trace``
run, or the runs of a ``--find-capacity`` search, each chosen from what the
runs before it measured (capacity.py). ``--repeat N`` makes every run N
runs, reported as one (repeats.py). Ctrl-C ends the current run and skips
the rest; a run that stopped because every request failed ends the
benchmark with that error's exit code, after the reports are written.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from streamkit.config import Settings
from streamkit.errors import StreamkitError, UsageError, error_for_kind
from streamkit.loadtest.capacity import CapacitySearch, probe
from streamkit.loadtest.client import Target
from streamkit.loadtest.plan import check, planned_runs, spec, sweep_rates, throughput
from streamkit.loadtest.report import (
    ReportInfo,
    build_report,
    now_iso,
    write_csv,
    write_json,
)
from streamkit.loadtest.runner import Observer, Runner, RunResult, RunSpec
from streamkit.loadtest.setup import (
    BenchConfig,
    build_workload,
    model_name,
    open_target,
    tokenizer_for,
)
from streamkit.loadtest.summary import print_summary
from streamkit.loadtest.workload import DURATION_POOL, Workload
from streamkit.pipeline.interrupts import Interrupts
from streamkit.providers.llama.tokenizer import Tokenizer

Execute = Callable[[RunResult], Awaitable[None]]


def _observer(interactive: bool) -> Any:
    if not interactive:
        return None
    from streamkit.loadtest.live import LiveView  # rich.live: terminals only

    return LiveView()


def metrics_url(config: BenchConfig, settings: Settings) -> str | None:
    """``--server-metrics``: the URL given, or ``/metrics`` at the base URL's root."""
    if config.server_metrics is None:
        return None
    if config.server_metrics != "auto":
        return config.server_metrics
    if not settings.base_url:
        raise UsageError(
            "--server-metrics needs a server: give --base-url, or the metrics URL itself"
        )
    root = settings.base_url.rstrip("/").removesuffix("/v1")
    return f"{root}/metrics"


async def run_bench(
    config: BenchConfig,
    settings: Settings,
    interrupts: Interrupts,
    *,
    spread: Callable[[Observer | None], Callable[[RunResult], Awaitable[None]]] | None = None,
) -> int:
    """Run every planned run, write the reports; the exit code.

    ``spread``, given the live view, returns how a run is carried out elsewhere
    (a Ray cluster: ``cluster.bench``) instead of in this process or ``--workers``.
    """
    check(config)
    scrape_url = metrics_url(config, settings)
    runs = planned_runs(config)
    per_run = max([r.requests or 0 for r in runs] + [config.requests or 0])
    total = per_run + config.warmup
    tokenizer = await trio.to_thread.run_sync(tokenizer_for, config, settings)
    workload = await trio.to_thread.run_sync(
        build_workload,
        config,
        settings,
        total if total > config.warmup else DURATION_POOL,
        tokenizer,
    )
    info = ReportInfo(
        base_url=settings.base_url or "local",
        model=model_name(settings),
        endpoint=config.endpoint,
        started_at=now_iso(),
        workload=workload.description,
        prompt_tokens_approximate=workload.approximate,
        slo_ms={k: v * 1000 for k, v in config.slo.items()} if config.slo else None,
        workers=config.workers,
        command_line=list(config.command_line),
        repeat=config.repeat,
        server_metrics_url=scrape_url,
    )
    observer = _observer(sys.stderr.isatty())
    groups: list[list[RunResult]] = []
    search: CapacitySearch | None = None
    async with open_target(settings) as target:
        execute = (
            spread(observer)
            if spread is not None
            else _executor(config, settings, target, workload, tokenizer, observer)
        )
        if scrape_url is not None:
            execute = _scraped(execute, scrape_url, config.server_metrics_interval)
        with observer or contextlib.nullcontext():
            if config.find_capacity:
                search = await _find_capacity(config, execute, groups, interrupts)
            else:
                await _run_all(config, runs, execute, groups, interrupts)
        info.timing_source = target.timing_source
    report = build_report(info, groups)
    if search is not None:
        report["capacity"] = {
            "slo_ms": info.slo_ms,
            "percentile": config.slo_percentile,
            "goodput": config.goodput_target,
            **search.summary(),
        }
    _write_outputs(config, report, groups)
    print_summary(report)
    if interrupts.exit_code is not None:
        return interrupts.exit_code
    stopped = next((r for group in groups for r in group if r.stopped), None)
    if stopped is not None and search is None:  # a search expects runs to fail
        kind = stopped.samples[-1].error or "error"
        error: StreamkitError = error_for_kind(kind.split("_")[0], stopped.stopped or "")
        print(f"streamkit: bench stopped: {stopped.stopped}", file=sys.stderr, flush=True)
        return error.exit_code
    return 0


async def _run_one(
    spec: RunSpec, config: BenchConfig, execute: Execute, interrupts: Interrupts
) -> tuple[list[RunResult], bool]:
    """``spec`` run ``--repeat`` times; the runs, and whether to go on."""
    group = []
    for repeat in range(1, config.repeat + 1):
        result = RunResult(spec, workers=config.workers, repeat=repeat)
        group.append(result)
        with interrupts.guard() as scope, scope:
            await execute(result)
        if scope.cancelled_caught:
            result.partial = True
            return group, False
        if result.stopped:
            return group, False
    return group, True


async def _run_all(
    config: BenchConfig,
    runs: list[RunSpec],
    execute: Execute,
    groups: list[list[RunResult]],
    interrupts: Interrupts,
) -> None:
    queue = list(runs)
    while queue:
        current = queue.pop(0)
        group, go_on = await _run_one(current, config, execute, interrupts)
        groups.append(group)
        if not go_on:
            return
        if config.sweep and current.mode == "sweep-throughput":
            queue = sweep_rates(config, groups[0][0], group[0])


async def _find_capacity(
    config: BenchConfig, execute: Execute, groups: list[list[RunResult]], interrupts: Interrupts
) -> CapacitySearch | None:
    """The search: a first rate (``--rate``, else one user's throughput), then capacity.py's."""
    assert config.slo is not None
    if config.rate:
        start = config.rate[0]
    else:
        group, go_on = await _run_one(
            spec(config, "capacity-sync", concurrency=1), config, execute, interrupts
        )
        groups.append(group)
        start = throughput(group[0])
        if not go_on or start <= 0:
            return None
    search = CapacitySearch(start, config.capacity_precision)
    while (rate := search.next_rate()) is not None:
        current = spec(config, "capacity", rate=rate, burstiness=config.burstiness)
        group, go_on = await _run_one(current, config, execute, interrupts)
        groups.append(group)
        if group[0].partial:
            break
        search.record(
            probe(
                rate,
                group[0].samples,
                config.slo,
                at=config.slo_percentile,
                goodput=config.goodput_target,
            )
        )
    return search


def _scraped(execute: Execute, url: str, interval: float) -> Execute:
    """``execute`` with the server's Prometheus metrics scraped around and during each run."""
    from streamkit.loadtest.promscrape import watch  # prometheus_client: only when asked

    async def run(result: RunResult) -> None:
        def keep(summary: dict[str, Any]) -> None:
            result.server_metrics = summary

        await watch(url, interval, lambda: execute(result), keep)

    return run


def _write_outputs(
    config: BenchConfig, report: dict[str, Any], groups: list[list[RunResult]]
) -> None:
    if config.json_path:
        write_json(config.json_path, report)
    if config.csv_path:
        write_csv(config.csv_path, [result for group in groups for result in group])
    if config.plots_dir:
        from streamkit.loadtest.plots import write_plots  # matplotlib: only when asked

        write_plots(config.plots_dir, report, groups)
    if config.html_path:
        from streamkit.loadtest.htmlreport import write_html

        write_html(config.html_path, report, groups)


def _executor(
    config: BenchConfig,
    settings: Settings,
    target: Target,
    workload: Workload,
    tokenizer: Tokenizer | None,
    observer: Observer | None,
) -> Execute:
    """How one run is carried out: in this process, or spread over worker processes."""
    if config.workers > 1:
        from streamkit.loadtest.workers import WorkerPool

        return WorkerPool(config, settings, observer).run
    runner = Runner(
        target, workload, tokenizer=tokenizer, timeout=settings.timeout, observer=observer
    )
    return runner.run
