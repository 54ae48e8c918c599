"""The ``bench`` command's body: plan the runs, open the target, run, report.

Runs go one after another: each ``--concurrency`` value, then each
``--rate`` value, or a sweep (GuideLLM's: a synchronous run, a
maximum-throughput run, then ``--sweep-steps`` Poisson rates evenly spaced
between the two throughputs measured). Ctrl-C ends the current run and skips
the rest; a run that stopped because every request failed ends the
benchmark with that error's exit code, after the reports are written.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import trio

from streamkit.config import Settings
from streamkit.errors import StreamkitError, UsageError, error_for_kind
from streamkit.loadtest.client import Target
from streamkit.loadtest.report import (
    ReportInfo,
    build_report,
    now_iso,
    print_summary,
    write_csv,
    write_json,
)
from streamkit.loadtest.runner import Observer, Runner, RunResult, RunSpec
from streamkit.loadtest.schedule import spaced_rates
from streamkit.loadtest.setup import (
    BenchConfig,
    build_workload,
    model_name,
    open_target,
    tokenizer_for,
)
from streamkit.loadtest.workload import DURATION_POOL, Workload
from streamkit.pipeline.interrupts import Interrupts
from streamkit.providers.llama.tokenizer import Tokenizer

if TYPE_CHECKING:
    pass

SWEEP_THROUGHPUT_CONCURRENCY = 64


DEFAULT_REQUESTS = 50


def check(config: BenchConfig) -> None:
    """Combinations of options that cannot work, as usage errors."""
    if config.sweep and config.rate:
        raise UsageError("--sweep chooses its own rates; drop --rate")
    if config.sweep and len(config.concurrency) > 1:
        raise UsageError("--sweep takes at most one --concurrency (its throughput run's)")
    if config.requests is not None and config.duration is not None:
        raise UsageError("give --requests or --duration, not both")
    if config.endpoint not in ("chat", "completions"):
        raise UsageError(f"--endpoint must be chat or completions, not {config.endpoint!r}")
    if config.plots_dir is not None:
        from streamkit.loadtest.plots import require_matplotlib

        require_matplotlib()  # before any run: not after minutes of measuring


def planned_runs(config: BenchConfig) -> list[RunSpec]:
    """The runs known before any has run (a sweep's rates come later)."""
    requests = config.requests
    if requests is None and config.duration is None:
        requests = DEFAULT_REQUESTS
    common = {"requests": requests, "duration": config.duration, "warmup": config.warmup,
              "seed": config.seed}
    if config.sweep:
        throughput = config.concurrency[0] if config.concurrency else SWEEP_THROUGHPUT_CONCURRENCY
        return [RunSpec("sweep-sync", concurrency=1, **common),
                RunSpec("sweep-throughput", concurrency=throughput, **common)]
    runs = [RunSpec("concurrency", concurrency=c, **common) for c in config.concurrency]
    runs += [RunSpec("rate", rate=r, burstiness=config.burstiness, **common)
             for r in config.rate]
    return runs or [RunSpec("concurrency", concurrency=1, **common)]


def sweep_rates(config: BenchConfig, first: RunResult, second: RunResult) -> list[RunSpec]:
    """The sweep's open-loop runs, between the two throughputs measured."""
    low = _throughput(first)
    high = _throughput(second)
    if low <= 0 or high <= 0:
        return []
    base = first.spec
    return [RunSpec("sweep-rate", rate=rate, burstiness=config.burstiness,
                    requests=base.requests, duration=base.duration, warmup=base.warmup,
                    seed=base.seed)
            for rate in spaced_rates(low, high, config.sweep_steps)]


def _throughput(result: RunResult) -> float:
    done = sum(1 for s in result.samples if s.ok)
    return done / result.duration if result.duration > 0 else 0.0


def _observer(interactive: bool) -> Any:
    if not interactive:
        return None
    from streamkit.loadtest.live import LiveView  # rich.live: terminals only

    return LiveView()


async def run_bench(
    config: BenchConfig, settings: Settings, interrupts: Interrupts, *,
    spread: Callable[[Observer | None], Callable[[RunResult], Awaitable[None]]] | None = None,
) -> int:
    """Run every planned run, write the reports; the exit code.

    ``spread``, given the live view, returns how a run is carried out elsewhere
    (a Ray cluster: ``cluster.bench``) instead of in this process or ``--workers``.
    """
    check(config)
    runs = planned_runs(config)
    total = max((r.requests or 0) for r in runs) + config.warmup
    tokenizer = await trio.to_thread.run_sync(tokenizer_for, config, settings)
    workload = await trio.to_thread.run_sync(
        build_workload, config, settings, total if total > config.warmup else DURATION_POOL,
        tokenizer)
    info = ReportInfo(
        base_url=settings.base_url or "local", model=model_name(settings),
        endpoint=config.endpoint,
        started_at=now_iso(), workload=workload.description,
        prompt_tokens_approximate=workload.approximate,
        slo_ms={k: v * 1000 for k, v in config.slo.items()} if config.slo else None,
        workers=config.workers,
    )
    observer = _observer(sys.stderr.isatty())
    results: list[RunResult] = []
    async with open_target(settings) as target:
        execute = (spread(observer) if spread is not None
                   else _executor(config, settings, target, workload, tokenizer, observer))
        with observer or contextlib.nullcontext():
            queue = list(runs)
            while queue:
                spec = queue.pop(0)
                result = RunResult(spec, workers=config.workers)
                results.append(result)
                with interrupts.guard() as scope, scope:
                    await execute(result)
                if scope.cancelled_caught:
                    result.partial = True
                    break
                if result.stopped:
                    break
                if config.sweep and spec.mode == "sweep-throughput":
                    queue = sweep_rates(config, results[0], result)
    report = build_report(info, results)
    _write_outputs(config, report, results)
    print_summary(report)
    if interrupts.exit_code is not None:
        return interrupts.exit_code
    stopped = next((r for r in results if r.stopped), None)
    if stopped is not None:
        kind = stopped.samples[-1].error or "error"
        error: StreamkitError = error_for_kind(kind.split("_")[0], stopped.stopped or "")
        print(f"streamkit: bench stopped: {stopped.stopped}", file=sys.stderr, flush=True)
        return error.exit_code
    return 0


def _write_outputs(config: BenchConfig, report: dict[str, Any],
                   results: list[RunResult]) -> None:
    if config.json_path:
        write_json(config.json_path, report)
    if config.csv_path:
        write_csv(config.csv_path, results)
    if config.plots_dir:
        from streamkit.loadtest.plots import write_plots  # matplotlib: only when asked

        write_plots(config.plots_dir, report, results)


def _executor(config: BenchConfig, settings: Settings, target: Target, workload: Workload,
              tokenizer: Tokenizer | None, observer: Observer | None) -> Callable:
    """How one run is carried out: in this process, or spread over worker processes."""
    if config.workers > 1:
        from streamkit.loadtest.workers import WorkerPool

        return WorkerPool(config, settings, observer).run
    runner = Runner(target, workload, tokenizer=tokenizer, timeout=settings.timeout,
                    observer=observer)
    return runner.run

