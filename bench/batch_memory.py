"""Peak memory of ``streamkit chat --jsonl`` for a 10x longer input.

Why: a batch is often much larger than memory would allow if it were held
whole -- millions of prompts, results piped on. ``streamkit/pipeline/batch.py``
promises memory that stays flat however long the input: a window of
``4 x concurrency`` lines between reading and writing, the input read in
64 KiB pieces. This checks the promise from outside, on the whole process.

``tests/fault_server.py`` is started once; its ``ok`` scenario answers every
request at once with a short chat stream, so the batch runs as fast as the
client can go (the worst case for anything that piles up). For each size,
``python -m streamkit chat --jsonl --base-url URL -j 64 -i IN -o /dev/null``
runs as its own process with a fresh scenario key, on an input of that many
``{"id": i, "prompt": ...}`` lines. Its peak resident set is the
``ru_maxrss`` that ``os.wait4`` returns for that one child (not
``RUSAGE_CHILDREN``, which is the maximum over every child so far). While it
runs, ``/proc/<pid>/status`` is sampled every 0.25 s, to show the resident
set at 25, 50, 75 % of the run and its high-water mark as a cross-check.
A 1-line batch gives the start-up footprint, for scale.

Sizes: 10,000 and 100,000 lines (``--quick``: 2,000 and 20,000); the small
size runs before and after the large one (the larger peak of the two is
used). Goal: peak(large) / peak(small) <= 1.2.

Run: ``python bench/batch_memory.py`` (3-4 minutes: the 100,000-line run
alone takes about 3), ``--quick`` (under a minute).
"""

from __future__ import annotations

import argparse
import os
import select
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server, write_input

CONCURRENCY = 64
SAMPLE_EVERY_S = 0.25
GOAL = 1.2


def status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a running process, in KiB (empty once it has gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            text = status.read()
    except (FileNotFoundError, ProcessLookupError):
        return {}
    values = {}
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values


@dataclass
class Measurement:
    lines: int
    wall_s: float
    maxrss_kib: int  # os.wait4's ru_maxrss: this child's peak resident set
    hwm_kib: int  # the last VmHWM seen in /proc
    samples: list[int] = field(default_factory=list)  # VmRSS, every SAMPLE_EVERY_S

    def rss_at(self, fraction: float) -> int:
        if not self.samples:
            return 0
        return self.samples[min(len(self.samples) - 1, int(len(self.samples) * fraction))]


def measure(port: int, src: Path, lines: int, env: dict[str, str]) -> Measurement:
    url = f"http://127.0.0.1:{port}/ok/{fresh_key()}/v1"
    argv = [
        PYTHON,
        "-m",
        "streamkit",
        "chat",
        "--jsonl",
        "--base-url",
        url,
        "-j",
        str(CONCURRENCY),
        "-i",
        str(src),
        "-o",
        os.devnull,
    ]
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    pidfd = os.pidfd_open(proc.pid)
    samples: list[int] = []
    hwm = 0
    try:
        while True:
            ready, _, _ = select.select([pidfd], [], [], SAMPLE_EVERY_S)
            if ready:
                break
            values = status_kib(proc.pid)
            if "VmRSS" in values:
                samples.append(values["VmRSS"])
                hwm = max(hwm, values.get("VmHWM", 0))
    finally:
        os.close(pidfd)
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"streamkit exited {proc.returncode}: {err.decode()[-2000:]}")
    return Measurement(lines, wall, usage.ru_maxrss, hwm, samples)


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f}" if kib else "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2,000 vs 20,000 lines")
    args = parser.parse_args(argv)
    small, large = (2_000, 20_000) if args.quick else (10_000, 100_000)
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        inputs = {}
        for lines in (1, small, large):
            inputs[lines] = Path(tmp) / f"in-{lines}.jsonl"
            write_input(inputs[lines], lines)
        large_bytes = inputs[large].stat().st_size
        server, port = start_server(env)
        try:
            baseline = measure(port, inputs[1], 1, env)
            runs = [measure(port, inputs[n], n, env) for n in (small, large, small)]
        finally:
            server.terminate()
            server.wait(timeout=10)
    report(baseline, runs, large_bytes)
    return 0


def report(baseline: Measurement, runs: list[Measurement], large_bytes: int) -> None:
    print(
        f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s). "
        f"`streamkit chat --jsonl -j {CONCURRENCY} -o /dev/null` against "
        "tests/fault_server.py's `ok` scenario (answers at once)."
    )
    print(
        "Peak RSS = ru_maxrss from os.wait4 for that process alone; RSS at 25/50/75 % of "
        f"the run from /proc/<pid>/status every {SAMPLE_EVERY_S} s."
    )
    print()
    print(
        f"  {'run':<18}{'lines':>8}{'wall s':>8}{'lines/s':>9}{'peak RSS MiB':>13}"
        f"{'VmHWM MiB':>10}{'RSS 25%':>8}{'50%':>6}{'75%':>6}"
    )
    names = ["start-up (1 line)", "small", "large", "small, again"]
    for name, run in zip(names, [baseline, *runs], strict=True):
        print(
            f"  {name:<18}{run.lines:>8,}{run.wall_s:>8.2f}{run.lines / run.wall_s:>9,.0f}"
            f"{mib(run.maxrss_kib):>13}{mib(run.hwm_kib):>10}{mib(run.rss_at(0.25)):>8}"
            f"{mib(run.rss_at(0.5)):>6}{mib(run.rss_at(0.75)):>6}"
        )
    small_peak = max(runs[0].maxrss_kib, runs[2].maxrss_kib)
    large_peak = runs[1].maxrss_kib
    ratio = large_peak / small_peak
    verdict = "meets" if ratio <= GOAL else "ABOVE"
    print()
    print(
        f"  peak RSS {runs[1].lines:,} lines / {runs[0].lines:,} lines: {mib(large_peak)} / "
        f"{mib(small_peak)} MiB = {ratio:.3f} (goal <= {GOAL}: {verdict})"
    )
    print(
        f"  above the 1-line start-up footprint: {mib(small_peak - baseline.maxrss_kib)} MiB "
        f"(small), {mib(large_peak - baseline.maxrss_kib)} MiB (large); "
        f"the large input file is {large_bytes / 2**20:.1f} MiB"
    )


if __name__ == "__main__":
    sys.exit(main())
