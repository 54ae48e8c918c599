"""What Ray costs a batch: ``chat --jsonl`` on one machine vs ``--ray local`` (two workers).

Why: ``--ray`` is worth it only if a cluster's second node is a gain, so
the Ray path must cost little at the same concurrency: the goal is under 10%
of one-machine throughput, and little driver CPU per row (the driver reads,
reorders, journals and writes every row of the cluster).

``tests/keyed_server.py`` answers every request after ``--delay`` seconds
(default 20 ms) with a two-chunk chat stream, so with ``-j N`` in flight the
ideal is N / delay rows/s. The same input of ``--rows`` lines runs, with
``-j N`` and ``--no-log``, as

* ``python -m streamkit chat --jsonl -i IN -o OUT`` (one machine);
* the same with ``--ray local --ray-workers 2``: a one-machine Ray cluster
  started inside the command, two actors with N/2 requests in flight each.

Each is timed from ``Popen`` to exit, alternating for ``--rounds`` rounds
(medians). Start-up (joining or starting Ray is seconds) is measured as the
wall time of a one-line batch and subtracted for the steady rows/s. The
driver's CPU is its own process's (``os.wait4``: Ray's own processes, which
the driver starts but does not wait for, are not in it), less the one-line
run's, per row. Every output is checked: one record per line, in order.

Ray rewrites 127.0.0.1 to the host's address, so the script re-runs itself
in a network namespace with only loopback (``unshare --net --pid --fork
--mount-proc``, as root); HOME and RAY_TMPDIR are a temp dir, so Ray's token
file and session stay there.

Run: ``python bench/ray_overhead.py`` (about 2 minutes), ``--quick`` (fewer
rows, one round).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
INSIDE = "STREAMKIT_BENCH_NETNS"


def run(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and the process's own CPU seconds."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "streamkit", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - started
    stderr = process.stderr.read().decode() if process.stderr else ""
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"streamkit failed: {' '.join(args)}\n{stderr}")
    return wall, usage.ru_utime + usage.ru_stime


def write_rows(path: Path, count: int) -> None:
    path.write_text(
        "".join(
            json.dumps({"id": k, "messages": [{"role": "user", "content": f"row {k}"}]}) + "\n"
            for k in range(count)
        )
    )


def check(path: Path, count: int) -> None:
    ids = [json.loads(line)["id"] for line in path.read_text().splitlines()]
    assert ids == list(range(count)), f"{path}: {len(ids)} records, not {count} in order"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--delay", type=float, default=0.02)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    if os.environ.get(INSIDE) != "1":
        os.environ[INSIDE] = "1"
        sys.exit(
            subprocess.call(
                [
                    "unshare",
                    "--net",
                    "--pid",
                    "--fork",
                    "--mount-proc",
                    "--kill-child",
                    sys.executable,
                    *sys.argv,
                ]
            )
        )
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    if options.quick:
        options.rows, options.rounds = 600, 1
    tmp = Path(tempfile.mkdtemp(prefix="ray-overhead-"))
    env = {
        **os.environ,
        "HOME": str(tmp),
        "RAY_TMPDIR": str(tmp),
        "RAY_USAGE_STATS_ENABLED": "0",
        "STREAMKIT_CONFIG": "/nonexistent",
        "PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}",
    }
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "keyed_server.py")],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    urllib.request.urlopen(
        f"http://127.0.0.1:{port}/admin", json.dumps({"delay": options.delay}).encode()
    ).read()
    rows, one = tmp / "in.jsonl", tmp / "one.jsonl"
    write_rows(rows, options.rows)
    write_rows(one, 1)
    modes = {"one machine": [], "--ray local, 2 workers": ["--ray", "local", "--ray-workers", "2"]}
    common = [
        "chat",
        "--jsonl",
        "--no-log",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
        "-j",
        str(options.concurrency),
    ]
    figures: dict[str, dict[str, list[float]]] = {
        m: {"wall": [], "cpu": [], "start": [], "start_cpu": []} for m in modes
    }
    try:
        for number in range(options.rounds):
            order = list(modes) if number % 2 == 0 else list(reversed(modes))
            for mode in order:
                out = tmp / "out.jsonl"
                wall, cpu = run([*common, *modes[mode], "-i", str(rows), "-o", str(out)], env)
                check(out, options.rows)
                start, start_cpu = run(
                    [*common, *modes[mode], "-i", str(one), "-o", str(tmp / "one-out.jsonl")], env
                )
                for name, value in (
                    ("wall", wall),
                    ("cpu", cpu),
                    ("start", start),
                    ("start_cpu", start_cpu),
                ):
                    figures[mode][name].append(value)
    finally:
        server.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    ideal = options.concurrency / options.delay
    print(
        f"{options.rows} rows, -j {options.concurrency}, server delay "
        f"{options.delay * 1000:.0f} ms (ideal {ideal:.0f} rows/s), "
        f"{options.rounds} round(s), medians"
    )
    print(
        f"{'':<24}{'wall s':>8}{'rows/s':>9}{'start s':>9}{'steady rows/s':>15}"
        f"{'driver CPU ms/row':>19}"
    )
    steady = {}
    for mode, got in figures.items():
        wall, start = statistics.median(got["wall"]), statistics.median(got["start"])
        cpu = statistics.median(got["cpu"]) - statistics.median(got["start_cpu"])
        steady[mode] = options.rows / max(wall - start, 1e-9)
        print(
            f"{mode:<24}{wall:>8.2f}{options.rows / wall:>9.1f}{start:>9.2f}"
            f"{steady[mode]:>15.1f}{cpu / options.rows * 1000:>19.3f}"
        )
    local, ray = steady.values()
    print(
        f"Ray path, steady: {ray / local:.1%} of one machine's rows/s "
        f"(goal: cost under 10%, i.e. at least 90%)"
    )


if __name__ == "__main__":
    main()
