"""Which runs a benchmark makes, and which options cannot go together.

Every conflict is found here, before a tokenizer is loaded or a request
sent, and said as one usage error (exit 2) naming both options: a
benchmark that fails after minutes of measuring, or silently ignores an
option, wastes the time it was meant to save.
"""

from __future__ import annotations

from typing import Any

from streamkit.errors import UsageError
from streamkit.loadtest.runner import RunResult, RunSpec
from streamkit.loadtest.schedule import parse_think_time, spaced_rates
from streamkit.loadtest.setup import BenchConfig

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
    _check_workload(config)
    _check_capacity(config)
    if config.plots_dir is not None or config.html_path is not None:
        from streamkit.loadtest.plots import require_matplotlib

        require_matplotlib()  # before any run: not after minutes of measuring


def _conflicts(option: str, others: dict[str, object]) -> None:
    """The first of ``others`` given alongside ``option``, as a usage error."""
    for name, given in others.items():
        if given:
            raise UsageError(f"{option} cannot be combined with {name}")


def _check_workload(config: BenchConfig) -> None:
    if config.sessions is not None:
        if config.dataset == "random":
            raise UsageError("--sessions plays conversations: give --dataset FILE")
        _conflicts(
            "--sessions",
            {
                "--concurrency": config.concurrency,
                "--rate": config.rate,
                "--sweep": config.sweep,
                "--trace": config.trace,
                "--warmup": config.warmup,
                "--prefix-tokens": config.prefix_tokens,
                "--find-capacity": config.find_capacity,
                "--endpoint completions": config.endpoint == "completions",
            },
        )
    if config.think_time is not None:
        if config.sessions is None:
            raise UsageError("--think-time is the pause between turns: it needs --sessions")
        try:
            parse_think_time(config.think_time)
        except ValueError as exc:
            raise UsageError(f"--think-time: {exc}") from None
    if config.prefix_groups != 1 and not config.prefix_tokens:
        raise UsageError("--prefix-groups needs --prefix-tokens N")
    if config.prefix_tokens and config.dataset != "random":
        raise UsageError(
            "--prefix-tokens builds random prompts: it cannot be combined with --dataset FILE"
        )
    if config.trace is not None:
        _conflicts(
            "--trace",
            {
                "--concurrency": config.concurrency,
                "--rate": config.rate,
                "--sweep": config.sweep,
                "--dataset": config.dataset != "random",
                "--prefix-tokens": config.prefix_tokens,
                "--ramp-up": config.ramp_up,
                "--find-capacity": config.find_capacity,
            },
        )
    elif config.trace_speed != 1.0:
        raise UsageError("--trace-speed needs --trace FILE")


def _check_capacity(config: BenchConfig) -> None:
    if not config.find_capacity:
        for name, given in (
            ("--goodput", config.goodput_target is not None),
            ("--slo-percentile", config.slo_percentile != 99.0),
            ("--capacity-precision", config.capacity_precision != 0.1),
        ):
            if given:
                raise UsageError(f"{name} is a setting of --find-capacity")
        return
    if not config.slo:
        raise UsageError("--find-capacity needs --slo (e.g. --slo ttft=500ms,tpot=50ms)")
    _conflicts(
        "--find-capacity",
        {
            "--concurrency": config.concurrency,
            "--sweep": config.sweep,
            "--repeat": config.repeat > 1,
            "several --rate": len(config.rate) > 1,
        },
    )


def spec(config: BenchConfig, mode: str, **load: Any) -> RunSpec:
    """A run of ``mode`` with ``load`` and the settings every run of the benchmark shares."""
    requests = config.requests
    if (
        requests is None
        and config.duration is None
        and config.sessions is None
        and config.trace is None
    ):
        requests = DEFAULT_REQUESTS
    return RunSpec(
        mode,
        requests=requests,
        duration=config.duration,
        warmup=config.warmup,
        seed=config.seed,
        ramp_up=config.ramp_up,
        **load,
    )


def planned_runs(config: BenchConfig) -> list[RunSpec]:
    """The runs known before any has run (a sweep's rates and a search's come later)."""
    if config.find_capacity:
        return []  # bench.py plans the search as it goes
    if config.sessions is not None:
        return [spec(config, "sessions", concurrency=config.sessions, think_time=config.think_time)]
    if config.trace is not None:
        return [spec(config, "trace", trace_speed=config.trace_speed)]
    if config.sweep:
        throughput = config.concurrency[0] if config.concurrency else SWEEP_THROUGHPUT_CONCURRENCY
        return [
            spec(config, "sweep-sync", concurrency=1),
            spec(config, "sweep-throughput", concurrency=throughput),
        ]
    runs = [spec(config, "concurrency", concurrency=c) for c in config.concurrency]
    runs += [spec(config, "rate", rate=r, burstiness=config.burstiness) for r in config.rate]
    return runs or [spec(config, "concurrency", concurrency=1)]


def sweep_rates(config: BenchConfig, first: RunResult, second: RunResult) -> list[RunSpec]:
    """The sweep's open-loop runs, between the two throughputs measured."""
    low = throughput(first)
    high = throughput(second)
    if low <= 0 or high <= 0:
        return []
    base = first.spec
    return [
        RunSpec(
            "sweep-rate",
            rate=rate,
            burstiness=config.burstiness,
            requests=base.requests,
            duration=base.duration,
            warmup=base.warmup,
            seed=base.seed,
            ramp_up=base.ramp_up,
        )
        for rate in spaced_rates(low, high, config.sweep_steps)
    ]


def throughput(result: RunResult) -> float:
    """Completed requests per second of a run."""
    done = sum(1 for s in result.samples if s.ok)
    return done / result.duration if result.duration > 0 else 0.0
