"""How long a one-shot local chat takes to show its first output, from process start.

Why: ``streamkit chat "..."`` with the embedded model starts an interpreter,
imports the CLI, loads llama.cpp and the GGUF file, evaluates the prompt and
samples a token -- all before the user sees anything. This measures that
wait, and the pieces it can be compared with, as separate processes.

``--runs`` rounds (default 5). Each round starts, in this order, each with a
fresh process from ``subprocess.Popen``:

* ``python -m streamkit chat Hi -n 1`` with the local model (no base URL,
  no config file): time from ``Popen`` to the first byte read from its
  stdout, and to its exit (which must be 0);
* for reference, wall time from ``Popen`` to exit of ``python -c pass``,
  ``python -c "from streamkit.cli.app import app_for; app_for(['chat'])"``
  (the imports of the CLI and its ``chat``),
  ``python -c "import llama_cpp"`` and ``python -m streamkit --help``.

"Cold-ish": every run is a new process, so nothing is warm inside Python;
the OS page cache is not dropped, so the files are most likely cached (the
first round is the coldest). Each run and the median are printed.

Run: ``python bench/local_startup.py`` (under a minute), ``--quick`` (2 rounds).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from support import PYTHON, child_env

REFERENCES: list[tuple[str, list[str]]] = [
    ("python -c pass", ["-c", "pass"]),
    ("CLI imports (chat)", ["-c", "from streamkit.cli.app import app_for; app_for(['chat'])"]),
    ("python -c 'import llama_cpp'", ["-c", "import llama_cpp"]),
    ("python -m streamkit --help", ["-m", "streamkit", "--help"]),
]
CHAT = ["-m", "streamkit", "chat", "Hi", "-n", "1"]


def time_to_exit(args: list[str], env: dict[str, str]) -> float:
    """Seconds from ``Popen`` to exit; the command must succeed."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=env,
    )
    _, err = proc.communicate()
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args} exited {proc.returncode}: {err.decode(errors='replace')}")
    return elapsed


def chat_times(env: dict[str, str]) -> tuple[float, float, bytes]:
    """Seconds from ``Popen`` to the first stdout byte and to exit, and the output."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, *CHAT],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    first = os.read(proc.stdout.fileno(), 65536)
    first_byte = time.perf_counter() - start
    rest, err = proc.communicate()
    exited = time.perf_counter() - start
    if proc.returncode != 0 or not first:
        raise RuntimeError(
            f"chat exited {proc.returncode}, output {first!r}: {err.decode(errors='replace')}"
        )
    return first_byte, exited, first + rest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="2 rounds")
    parser.add_argument("--runs", type=int, help="rounds (default 5)")
    args = parser.parse_args(argv)
    runs = args.runs or (2 if args.quick else 5)

    rows: dict[str, list[float]] = {"chat Hi -n 1: first stdout byte": [], "chat Hi -n 1: exit": []}
    rows.update({label: [] for label, _ in REFERENCES})
    outputs: list[bytes] = []
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        for _ in range(runs):
            first_byte, exited, output = chat_times(env)
            rows["chat Hi -n 1: first stdout byte"].append(first_byte)
            rows["chat Hi -n 1: exit"].append(exited)
            outputs.append(output)
            for label, command in REFERENCES:
                rows[label].append(time_to_exit(command, env))

    load_after = os.getloadavg()[0]
    medians = {label: statistics.median(values) for label, values in rows.items()}
    print(
        f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s); {runs} rounds, "
        f"a fresh process each, page cache not dropped; times from Popen, ms"
    )
    print(f"1-min load average {load_before:.2f} before the rounds, {load_after:.2f} after")
    print()
    width = max(len(label) for label in rows) + 2
    header = "".join(f"{'run ' + str(i + 1):>8}" for i in range(runs))
    print(f"  {'':<{width}}{header}{'median':>9}")
    for label, values in rows.items():
        cells = "".join(f"{v * 1e3:>8.0f}" for v in values)
        print(f"  {label:<{width}}{cells}{medians[label] * 1e3:>9.0f}")
    print()
    first = medians["chat Hi -n 1: first stdout byte"]
    bare = medians["python -c pass"]
    cli = medians["CLI imports (chat)"]
    llama = medians["python -c 'import llama_cpp'"]
    print(
        f"  first byte / --help: {first / medians['python -m streamkit --help']:.2f}; "
        f"first byte - CLI import: {(first - cli) * 1e3:.0f} ms "
        f"(llama_cpp import alone, interpreter excluded: {(llama - bare) * 1e3:.0f} ms)"
    )
    print(f"  outputs: {sorted({o.decode(errors='replace') for o in outputs})!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
