"""The highest open-loop request rate ``streamkit bench`` keeps to on one core.

Why: an open-loop benchmark is honest only while the client sends each
request when the schedule says. Past some rate the client's own event loop
is too busy (reading the streams in flight, starting new requests) and
sends late; its report says so (``schedule_lag_ms``: send time minus
scheduled time; the summary warns when the p99 passes 10 ms). That rate is
the most one client process can drive, and tells when ``--workers`` is
needed.

``tests/timed_server.py`` is pinned to core 1 (``taskset -c 1``) with the
plan ``ttft=0.01,itl=0.005,tokens=4,usage=1``: short streams, 4 tokens in
25 ms, so that at R requests/s about 0.025 x R are in flight and the work
is the client's per-request cost. The client, pinned to core 0 (``taskset
-c 0``), is ``streamkit bench --base-url URL --rate R --duration D
--warmup 10 --prompt-tokens 16 --output-tokens 4 --json J``, one process
per rate (Poisson arrivals, seed 0). The rate goes up by a factor
(``--factor``, default 1.5) from ``--start`` until the p99 schedule lag
passes 10 ms (or a run has failures, or ``--max-rate``), then ``--refine``
bisection steps between the last rate kept and the first one missed. The
client's CPU time (``os.wait4``) against its wall time shows whether its
core was the limit.

The machine has 2 cores and may be shared: anything else running on core 0
shows up as lag. A single run's p99 is noisy near the boundary; the
figure is the highest rate measured under 10 ms, not a guarantee.

Run: ``python bench/client_rate.py`` (about 1-2 minutes), ``--quick``
(2 s runs, no refinement).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server

PLAN = "ttft=0.01,itl=0.005,tokens=4,usage=1"
LAG_LIMIT_MS = 10.0  # streamkit's own "fell behind" threshold (runner.LAG_WARNING_S)
MAX_STEPS = 16  # rates tried in the ladder, at most
RUN_TIMEOUT_S = 120


@dataclass
class Step:
    rate: float
    lag_p50: float
    lag_p99: float
    achieved: float  # completed requests per second
    completed: int
    failed: int
    ttft_p50: float
    cpu: float  # client CPU seconds / wall seconds (its one core)
    wall: float
    preempted: float  # involuntary context switches of the client per second

    @property
    def kept_up(self) -> bool:
        return self.lag_p99 <= LAG_LIMIT_MS and self.failed == 0


def run_rate(
    url: str, rate: float, duration: float, env: dict[str, str], tmp: Path, cpu: int
) -> Step:
    """One open-loop run of ``streamkit bench`` pinned to core ``cpu``."""
    report = tmp / "rate.json"
    argv = [
        "taskset",
        "-c",
        str(cpu),
        PYTHON,
        "-m",
        "streamkit",
        "bench",
        "--base-url",
        url,
        "--rate",
        f"{rate:g}",
        "--duration",
        f"{duration:g}",
        "--warmup",
        "10",
        "--prompt-tokens",
        "16",
        "--output-tokens",
        "4",
        "--json",
        str(report),
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None
    timer = threading.Timer(RUN_TIMEOUT_S, proc.kill)  # every run bounded in time
    timer.start()
    try:
        err = proc.stderr.read()  # empty unless something went wrong; read before reaping
        # taskset execs the client in place: this is the client's own CPU time.
        _, status, usage = os.wait4(proc.pid, 0)
    finally:
        timer.cancel()
        proc.stderr.close()
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(
            f"rate {rate:g}: exited {proc.returncode}: {err.decode(errors='replace')[-1500:]}"
        )
    run = json.loads(report.read_text(encoding="utf-8"))["runs"][0]
    lag = run["schedule_lag_ms"] or {}
    nan = float("nan")
    return Step(
        rate=rate,
        lag_p50=lag.get("p50", nan),
        lag_p99=lag.get("p99", nan),
        achieved=run["request_throughput"],
        completed=run["requests_completed"],
        failed=run["requests_failed"],
        ttft_p50=(run["ttft_ms"] or {}).get("p50", nan),
        cpu=(usage.ru_utime + usage.ru_stime) / wall,
        wall=wall,
        preempted=usage.ru_nivcsw / wall,
    )


def ladder(
    measure: Callable[[float], Step], start: float, factor: float, max_rate: float, refine: int
) -> list[Step]:
    """Rates up by ``factor`` until one is missed, then ``refine`` bisection steps."""
    steps: list[Step] = []
    rate = start
    while len(steps) < MAX_STEPS and rate <= max_rate:
        steps.append(measure(rate))
        if not steps[-1].kept_up:
            break
        rate *= factor
    kept = [s.rate for s in steps if s.kept_up]
    missed = [s.rate for s in steps if not s.kept_up]
    if not kept or not missed:
        return steps
    low, high = max(kept), min(missed)
    for _ in range(refine):
        step = measure(round((low + high) / 2))
        steps.append(step)
        if step.kept_up:
            low = step.rate
        else:
            high = step.rate
    return steps


def print_report(steps: list[Step], duration: float) -> None:
    print(
        f"streamkit bench on core 0, tests/timed_server.py on core 1; {PLAN}; "
        f"open loop, Poisson, {duration:g} s per rate."
    )
    header = (
        f"  {'rate/s':>8}{'done/s':>9}{'ok':>7}{'fail':>6}{'lag p50':>9}{'lag p99':>9}"
        f"{'TTFT p50':>10}{'client cpu':>12}{'preempted/s':>13}  kept up"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for s in sorted(steps, key=lambda s: s.rate):
        print(
            f"  {s.rate:>8.0f}{s.achieved:>9.1f}{s.completed:>7}{s.failed:>6}"
            f"{s.lag_p50:>9.2f}{s.lag_p99:>9.2f}{s.ttft_p50:>10.2f}{s.cpu:>12.0%}"
            f"{s.preempted:>13.0f}  " + ("yes" if s.kept_up else "NO")
        )
    print(
        "  lag: send time - scheduled time (ms); client cpu: its CPU time / wall time "
        "(100% = core 0 full; start-up included);"
    )
    print(
        "  preempted/s: the client's involuntary context switches (another process took "
        "core 0) per second of wall time."
    )
    kept = [s for s in steps if s.kept_up]
    missed = [s for s in steps if not s.kept_up]
    print()
    if kept:
        best = max(kept, key=lambda s: s.rate)
        print(
            f"Highest rate kept (p99 schedule lag <= {LAG_LIMIT_MS:g} ms, no failures): "
            f"{best.rate:.0f} req/s (p99 lag {best.lag_p99:.2f} ms)."
        )
    else:
        print("No rate tried was kept up with.")
    if missed:
        first = min(missed, key=lambda s: s.rate)
        print(
            f"Lowest rate missed: {first.rate:.0f} req/s (p99 lag {first.lag_p99:.2f} ms, "
            f"{first.failed} failed)."
        )
    else:
        print("No rate tried was missed (raise --max-rate).")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 s runs, no refinement")
    parser.add_argument("--start", type=float, default=50.0, help="first rate, req/s (50)")
    parser.add_argument("--factor", type=float, default=1.5, help="ladder step factor (1.5)")
    parser.add_argument("--max-rate", type=float, default=4000.0, help="highest rate (4000)")
    parser.add_argument("--duration", type=float, help="seconds per run (default 4)")
    parser.add_argument("--refine", type=int, help="bisection steps (default 3)")
    args = parser.parse_args(argv)
    if args.factor <= 1 or args.start <= 0:
        parser.error("--start must be positive and --factor above 1")
    duration = args.duration or (2.0 if args.quick else 4.0)
    refine = args.refine if args.refine is not None else (0 if args.quick else 3)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = child_env(tmp)
        server, port = start_server(env, script="timed_server.py", cpu=1)
        base = f"http://127.0.0.1:{port}/{PLAN}"

        def measure(rate: float) -> Step:
            step = run_rate(f"{base}/{fresh_key()}/v1", rate, duration, env, tmp, cpu=0)
            print(
                f"  {rate:.0f}/s: p99 lag {step.lag_p99:.2f} ms, cpu {step.cpu:.0%}",
                file=sys.stderr,
            )
            return step

        try:
            steps = ladder(measure, args.start, args.factor, args.max_rate, refine)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print_report(steps, duration)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
