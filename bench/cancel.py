"""How fast Ctrl-C ends a streaming reply: SIGINT to process exit.

Why: a streaming CLI is interrupted all the time -- the answer is going the
wrong way, or is long enough. The user should get the prompt back at once,
with what was received kept and the documented exit code (130), whatever
the stream was doing at that moment.

``tests/fault_server.py`` is started once; its ``slow`` scenario sends one
token every 20 ms for a long time. ``--runs`` times (default 50), with a
fresh scenario key each: start ``python -m streamkit chat hi --base-url
URL`` with stdout piped, wait for its first output bytes, then a random 0-200
ms more (so the signal lands at different points of the stream: in a read,
in the printer, in a flush), send SIGINT and time until the process has
exited (observed through a pidfd, so the measurement has no polling delay).
Every run must exit with 130.

Percentiles are nearest-rank over the runs: with 50 runs p99 is the
maximum. The goal is p99 < 100 ms.

Run: ``python bench/cancel.py`` (about 30 s), ``--quick`` (10 runs).
"""

from __future__ import annotations

import argparse
import math
import os
import random
import select
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server

EXIT_INTERRUPTED = 130


def wait_exit(proc: subprocess.Popen[bytes], timeout: float) -> None:
    """Block until ``proc`` exits (no polling interval), then reap it."""
    pidfd = os.pidfd_open(proc.pid)
    try:
        ready, _, _ = select.select([pidfd], [], [], timeout)
    finally:
        os.close(pidfd)
    if not ready:
        proc.kill()
        proc.wait()
        raise TimeoutError(f"streamkit did not exit within {timeout} s of SIGINT")
    proc.wait()


def one_run(port: int, env: dict[str, str], delay: float) -> tuple[float, int, bytes, bytes]:
    """Seconds from SIGINT to exit, the exit code, stdout and stderr."""
    url = f"http://127.0.0.1:{port}/slow/{fresh_key()}/v1"
    proc = subprocess.Popen(
        [PYTHON, "-m", "streamkit", "chat", "hi", "--base-url", url],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = os.read(proc.stdout.fileno(), 65536)
    if not first:
        proc.wait()
        raise RuntimeError(f"no output; stderr: {proc.stderr.read()!r}")
    time.sleep(delay)
    start = time.perf_counter()
    proc.send_signal(signal.SIGINT)
    wait_exit(proc, timeout=10)
    elapsed = time.perf_counter() - start
    out = first + proc.stdout.read()
    err = proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    return elapsed, proc.returncode, out, err


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs")
    parser.add_argument("--runs", type=int, help="interruptions (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the random delays")
    args = parser.parse_args(argv)
    runs = args.runs or (10 if args.quick else 50)
    rng = random.Random(args.seed)

    times: list[float] = []
    bad: list[tuple[int, int, bytes]] = []
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        server, port = start_server(env)
        try:
            for i in range(runs):
                elapsed, code, _out, err = one_run(port, env, rng.uniform(0, 0.2))
                times.append(elapsed)
                if code != EXIT_INTERRUPTED:
                    bad.append((i, code, err))
        finally:
            server.terminate()
            server.wait(timeout=10)

    ms = [t * 1e3 for t in times]
    print(f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s)")
    print(
        f"SIGINT -> exit of `streamkit chat` mid-stream (slow scenario), {runs} runs, "
        f"signal 0-200 ms after the first output (seed {args.seed})"
    )
    print(f"  {'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}{'min ms':>8}{'mean ms':>9}")
    p99 = percentile(ms, 99)
    print(
        f"  {percentile(ms, 50):>8.1f}{percentile(ms, 90):>8.1f}{p99:>8.1f}{max(ms):>8.1f}"
        f"{min(ms):>8.1f}{statistics.fmean(ms):>9.1f}"
    )
    print(f"  exit code 130: {runs - len(bad)}/{runs}")
    verdict = "meets" if p99 < 100 else "BELOW"
    print(f"  p99 / goal: {p99:.1f} ms / < 100 ms ({verdict}); p99 is nearest-rank")
    for i, code, err in bad:
        print(f"  run {i}: exit {code}, stderr {err.decode(errors='replace').strip()!r}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
