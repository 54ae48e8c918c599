"""Batch throughput against concurrency: ``streamkit chat --jsonl -j N`` vs a plain SDK script.

Why: the point of ``--jsonl -j N`` is to keep N requests in flight against a
server that takes its time, so that a batch finishes N times faster than one
request after another. This measures how close the whole process gets to
that ideal, and compares it with the asyncio script people write by hand
with the OpenAI SDK.

``tests/fault_server.py`` is started once; its ``delayed`` scenario answers
every request after a fixed 200 ms with a short chat stream (``"Hello"``,
``", world"``, ``stop``, ``[DONE]``) and closes the connection, so every
line pays a TCP connect; ``delayed-keepalive`` answers the same and keeps
the connection open for the next request, as most servers do. Both are
run and reported. With N in flight the ideal throughput is N / 0.2 s
lines/s. At each
concurrency N in 1, 8, 64, 256 both clients get the same input of
``max(50, min(2000, 40 * N))`` lines (``{"id": i, "prompt": ...}``; 2,000 at
N = 1 would take 400 s, so low concurrency gets fewer lines -- about 8 s of
ideal run time each), a fresh scenario key per run, and are timed from
``Popen`` to exit:

* ``python -m streamkit chat --jsonl --base-url URL -j N -i IN -o OUT``
  (ordered output, the default);
* the same interpreter running ``sdk_client`` below: ``AsyncOpenAI`` with an
  ``asyncio.Semaphore(N)`` around ``client.chat.completions.create(...,
  stream=True)``, one task per line, the text of each line collected and
  written as a JSON line when it finishes (unordered: less work than
  streamkit's ordered output);
* ``floor_client`` below, in the same interpreter: the least a Trio client
  can do a line (a hand-written request, raw reads to the chunked body's
  end, no parsing), so that the ideal the machine leaves to any Trio client,
  and the CPU a line it costs, are measured in the same run.

Connection pools, for fairness: the installed SDK builds on ``httpx2`` (or
``httpx`` in older releases) with a default pool limit (printed), so the
script passes ``http_client=openai.DefaultAsyncHttpxClient(limits=Limits(
max_connections=None, max_keepalive_connections=None))`` -- the SDK's own
defaults otherwise. streamkit's client pool limit is read from the client
``build_client`` returns and printed, since httpx's default of 100
connections would cap ``-j 256`` at 100 in flight.

Each output is checked (one record per input line, every text ``"Hello,
world"``), and the mean time of one request is taken from it (streamkit's
``latency.total_s``; the SDK script records the same span). The clients
take turns at every level (a different one goes first each round) for
``--rounds`` rounds; figures are medians. Start-up is measured separately,
as the wall time of a 1-line batch against the scenario that answers at once
(``ok``), and subtracted for the "excl. start-up" fraction.

CPU: client and server share the machine's cores. The client's CPU time
comes from ``os.wait4`` (that child only), the server's from
``/proc/<pid>/stat``, the whole machine's from ``/proc/stat``, each before
and after every run; "others" is CPU used by processes outside this
benchmark in the meantime (a shared machine). A single-threaded client whose
CPU time is close to its wall time, or a machine whose cores are close to
fully busy, is limited by CPU rather than by the design of the client; the
table marks both.

``--pin``: the server runs on core 1 and each client on core 0
(``taskset``), so that neither takes the other's core.

streamkit's bytecode is written first (``support.precompile``), so start-up
is that of an installed copy, not of a source tree compiled at every start.

Run: ``python bench/batch_scaling.py`` (about 5 minutes), ``--quick``
(about 1 minute, fewer lines, one round).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from support import PYTHON, child_env, fresh_key, precompile, start_server, write_input

DELAY_S = 0.2  # the delayed scenarios' fixed wait before answering
SCENARIOS = ("delayed", "delayed-keepalive")
LEVELS = (1, 8, 64, 256)
EXPECTED_TEXT = "Hello, world"
CLIENTS = ("streamkit", "openai SDK", "floor")
CPU_COUNT = os.cpu_count() or 1
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def sdk_client(base_url: str, concurrency: int, input_path: str, output_path: str) -> None:
    """The plain SDK batch script (run in a child process)."""
    import asyncio

    import openai

    try:
        import httpx2 as http  # what the SDK builds on since 3.x
    except ImportError:  # older SDKs: httpx
        import httpx as http  # type: ignore[no-redef]

    async def main(records: list[dict], out: TextIO) -> None:
        http_client = openai.DefaultAsyncHttpxClient(
            limits=http.Limits(max_connections=None, max_keepalive_connections=None)
        )
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", http_client=http_client)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(record: dict) -> None:
            async with semaphore:
                started = time.perf_counter()
                try:
                    stream = await client.chat.completions.create(
                        model="m",
                        messages=[{"role": "user", "content": record["prompt"]}],
                        stream=True,
                    )
                    parts: list[str] = []
                    finish = None
                    async for chunk in stream:
                        for choice in chunk.choices:
                            if choice.delta.content:
                                parts.append(choice.delta.content)
                            finish = choice.finish_reason or finish
                    result = {
                        "id": record["id"],
                        "text": "".join(parts),
                        "finish_reason": finish,
                        "latency": {"total_s": time.perf_counter() - started},
                    }
                except openai.APIError as exc:
                    result = {
                        "id": record["id"],
                        "error": {"type": type(exc).__name__, "message": str(exc)},
                    }
            out.write(json.dumps(result) + "\n")

        await asyncio.gather(*(one(record) for record in records))
        await client.close()

    with open(input_path, encoding="utf-8") as source:
        records = [json.loads(line) for line in source if line.strip()]
    with open(output_path, "w", encoding="utf-8") as out:
        asyncio.run(main(records, out))


def floor_client(base_url: str, concurrency: int, input_path: str, output_path: str) -> None:
    """The least a Trio client can do a line (run in a child process): the baseline
    that says what of the ideal, and what CPU a line, the machine leaves to any
    Trio client at all.

    N tasks, each on one connection kept while the server allows it; a line's
    request is the JSON body and a head written by hand, sent with one
    ``send``; its answer is read raw until the chunked body's last chunk, and
    checked for the text, with no HTTP, SSE or JSON parsing; one JSON line
    out per line, unordered, unflushed. Everything streamkit does beyond this
    (h11, the SSE and chunk decode, the request's options, the record, the
    ordered output, the log) is what its figures add to these.
    """
    import trio

    parts = base_url.split("/", 3)  # http:, "", host:port, path
    host, _, port = parts[2].rpartition(":")
    target = f"/{parts[3].rstrip('/')}/chat/completions"
    head = f"POST {target} HTTP/1.1\r\nHost: {parts[2]}\r\nContent-Type: application/json\r\n"
    end = b"0\r\n\r\n"

    async def worker(jobs: trio.MemoryReceiveChannel[dict], out: TextIO) -> None:
        sock = None
        async for record in jobs:
            started = time.perf_counter()
            body = json.dumps(
                {
                    "model": "m",
                    "messages": [{"role": "user", "content": record["prompt"]}],
                    "stream": True,
                }
            ).encode()
            if sock is None:
                sock = trio.socket.socket()
                await sock.connect((host, int(port)))
            await sock.send(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            answer = b""
            while not answer.endswith(end):
                data = await sock.recv(65536)
                if not data:
                    raise RuntimeError(f"line {record['id']}: the connection closed early")
                answer += data
            if b"\r\nConnection: close" in answer[: answer.index(b"\r\n\r\n")]:
                sock.close()
                sock = None
            text = EXPECTED_TEXT if b'"Hello"' in answer and b'", world"' in answer else "?"
            result = {
                "id": record["id"],
                "text": text,
                "latency": {"total_s": time.perf_counter() - started},
            }
            out.write(json.dumps(result) + "\n")

    async def main(records: list[dict], out: TextIO) -> None:
        send, receive = trio.open_memory_channel[dict](concurrency)
        async with trio.open_nursery() as nursery:
            async with receive:
                for _ in range(concurrency):
                    nursery.start_soon(worker, receive.clone(), out)
            async with send:
                for record in records:
                    await send.send(record)

    with open(input_path, encoding="utf-8") as source:
        records = [json.loads(line) for line in source if line.strip()]
    with open(output_path, "w", encoding="utf-8") as out:
        trio.run(main, records, out)


def process_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a running process, from /proc."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        fields = stat.read().rpartition(")")[2].split()
    if fields[0] == "Z":
        raise FileNotFoundError(pid)  # exited: only a zombie left
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS  # utime, stime


def machine_busy_s() -> float:
    """CPU seconds the whole machine has spent busy (all cores), from /proc/stat."""
    with open("/proc/stat", encoding="ascii") as stat:
        fields = [int(v) for v in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]  # idle, iowait
    return (sum(fields[:8]) - idle) / CLOCK_TICKS  # up to steal; guest is inside user


@dataclass
class Run:
    wall_s: float
    cpu_s: float  # the client's user + system time
    server_cpu_s: float
    machine_s: float  # every process's CPU time meanwhile, this benchmark's included
    request_ms: float = 0.0  # mean time of one request, from the output records


def timed_run(argv: Sequence[str], env: dict[str, str], server_pid: int) -> Run:
    """Wall time from Popen to exit, with the CPU time of the child, server and machine."""
    server_before, machine_before = process_cpu_s(server_pid), machine_busy_s()
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stderr is not None
    err = proc.stderr.read()  # empty unless something went wrong; read before reaping
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    machine = machine_busy_s() - machine_before
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    try:
        server_cpu = process_cpu_s(server_pid) - server_before
    except FileNotFoundError:
        raise RuntimeError("the fault server is gone (killed from outside?)") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[:4]} exited {proc.returncode}: {err.decode()[-2000:]}")
    return Run(wall, usage.ru_utime + usage.ru_stime, server_cpu, machine)


def client_argv(
    client: str, url: str, concurrency: int, src: Path, out: Path, pin: bool = False
) -> list[str]:
    prefix = ["taskset", "-c", "0"] if pin else []
    if client == "streamkit":
        return [
            *prefix,
            PYTHON,
            "-m",
            "streamkit",
            "chat",
            "--jsonl",
            "--base-url",
            url,
            "-j",
            str(concurrency),
            "-i",
            str(src),
            "-o",
            str(out),
        ]
    return [
        *prefix,
        PYTHON,
        str(Path(__file__).resolve()),
        "--sdk-client" if client == "openai SDK" else "--floor-client",
        url,
        str(concurrency),
        str(src),
        str(out),
    ]


def check_output(client: str, out: Path, lines: int) -> float:
    """Check one record a line, each with the scenario's text; the mean request ms."""
    records = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    ids = sorted(record["id"] for record in records)
    bad = [r for r in records if r.get("text") != EXPECTED_TEXT or "error" in r]
    if ids != list(range(lines)) or bad:
        raise RuntimeError(
            f"{client}: {len(records)} records for {lines} lines, {len(bad)} wrong, e.g. {bad[:1]}"
        )
    return statistics.fmean(r["latency"]["total_s"] for r in records) * 1e3


def lines_for(concurrency: int, quick: bool) -> int:
    if quick:
        return max(20, min(1000, concurrency * 10))
    return max(50, min(2000, concurrency * 40))


def pool_limits(url: str) -> tuple[str, str]:
    """streamkit's transport for ``url`` and the SDK's default pool limit, as text."""
    from streamkit.providers.transports import build_transport

    ours = type(build_transport(url, None, connect_timeout=10, idle_timeout=120)).__name__
    try:
        from openai._constants import DEFAULT_CONNECTION_LIMITS

        theirs = f"{DEFAULT_CONNECTION_LIMITS.max_connections} connections"
    except Exception as exc:
        theirs = f"unknown ({type(exc).__name__})"
    return ours, theirs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer lines, one round")
    parser.add_argument("--rounds", type=int, help="timed rounds per client (default 2)")
    parser.add_argument(
        "--pin", action="store_true", help="server on core 1, each client on core 0 (taskset)"
    )
    for child in ("--sdk-client", "--floor-client"):
        parser.add_argument(
            child, nargs=4, metavar=("URL", "N", "IN", "OUT"), help=argparse.SUPPRESS
        )
    args = parser.parse_args(argv)
    for child, run in ((args.sdk_client, sdk_client), (args.floor_client, floor_client)):
        if child:
            url, concurrency, src, out = child
            run(url, int(concurrency), src, out)
            return 0
    rounds = args.rounds or (1 if args.quick else 2)
    precompile()
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        server, port = start_server(env, cpu=1 if args.pin else None)
        try:
            report(Path(tmp), port, server.pid, env, rounds, args.quick, args.pin)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


def report(
    tmp: Path, port: int, server_pid: int, env: dict[str, str], rounds: int, quick: bool, pin: bool
) -> None:
    base = f"http://127.0.0.1:{port}"
    one_line = tmp / "one.jsonl"
    write_input(one_line, 1)
    out = tmp / "out.jsonl"

    # Start-up (and warm-up): a 1-line batch answered at once, interleaved.
    startup_runs = 3 if quick else 5
    startup: dict[str, list[float]] = {c: [] for c in CLIENTS}
    for _ in range(startup_runs):
        for client in CLIENTS:
            argv = client_argv(client, f"{base}/ok/{fresh_key()}/v1", 1, one_line, out, pin)
            startup[client].append(timed_run(argv, env, server_pid).wall_s)
            check_output(client, out, 1)
    start_s = {c: statistics.median(v) for c, v in startup.items()}

    inputs = {}
    for level in LEVELS:
        inputs[level] = tmp / f"in-{level}.jsonl"
        write_input(inputs[level], lines_for(level, quick))

    runs: dict[tuple[str, str, int], list[Run]] = {}
    for round_ in range(rounds):
        for scenario in SCENARIOS:
            for index, level in enumerate(LEVELS):
                first = (round_ + index) % len(CLIENTS)  # each client leads in turn
                order = CLIENTS[first:] + CLIENTS[:first]
                for client in order:
                    url = f"{base}/{scenario}/{fresh_key()}/v1"
                    argv = client_argv(client, url, level, inputs[level], out, pin)
                    run = timed_run(argv, env, server_pid)
                    run.request_ms = check_output(client, out, lines_for(level, quick))
                    runs.setdefault((scenario, client, level), []).append(run)

    ours_limit, sdk_limit = pool_limits(base)
    print(
        f"Python {sys.version.split()[0]} on {CPU_COUNT} CPU(s); client and server "
        "(tests/fault_server.py) "
        + ("pinned: server on core 1, client on core 0." if pin else "share them.")
    )
    print(
        f"Scenarios: `delayed` answers every request after {DELAY_S * 1e3:.0f} ms and closes "
        "the connection; `delayed-keepalive` the same, keeping it open."
    )
    print(
        f"Ideal = N / {DELAY_S} s lines/s. Lines per level = "
        + ("max(20, min(1000, 10 x N)) (--quick)" if quick else "max(50, min(2000, 40 x N))")
        + ": fewer at low N, where 2,000 lines would take minutes."
    )
    print(f"Median of {rounds} interleaved round(s) per client; wall clock from Popen to exit.")
    print(
        f"Start-up (1-line batch, `ok` scenario, median of {startup_runs}): "
        + ", ".join(f"{c} {start_s[c]:.3f} s" for c in CLIENTS)
    )
    print(
        f"streamkit's transport for {base}: {ours_limit}; openai SDK pool limit "
        f"{sdk_limit} by default, run here with max_connections=None (unlimited)."
    )
    verdicts: list[str] = []
    for scenario in SCENARIOS:
        verdicts += throughput_table(scenario, runs, start_s, quick)
    print(
        "  bound = the best fraction with zero overhead and no start-up: lines / (ceil(lines "
        f"/ N) x {DELAY_S} s) / ideal; cpu/line = client CPU ms per line."
    )
    for scenario in SCENARIOS:
        cpu_table(scenario, runs, quick)
    print("  cpu/wall near 100%: the single-threaded client is CPU-bound, whatever its design.")
    print()
    goals = (
        "Goals (>= 0.9 of ideal up to N=64 and >= 0.7 at 256, ahead of the SDK at every "
        "N, <= 0.4 ms CPU per line)"
    )
    if verdicts:
        print(f"{goals}: NOT MET: " + "; ".join(verdicts))
    else:
        print(f"{goals}: met")


def throughput_table(
    scenario: str,
    runs: dict[tuple[str, str, int], list[Run]],
    start_s: dict[str, float],
    quick: bool,
) -> list[str]:
    """One scenario's lines/s against the ideal; the goals it misses."""

    def median(client: str, level: int, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in runs[scenario, client, level])

    print()
    print(f"`{scenario}`:")
    print(
        f"  {'N':>4}{'lines':>6}{'ideal l/s':>10}{'bound':>6} | "
        f"{'streamkit l/s':>13}{'of ideal':>9}{'excl.start':>11}{'cpu/line':>9} | "
        f"{'SDK l/s':>8}{'of ideal':>9}{'excl.start':>11}{'cpu/line':>9} | "
        f"{'floor l/s':>9}{'of ideal':>9}{'excl.start':>11}{'cpu/line':>9} | "
        f"{'sk/SDK':>6}{'sk/floor':>9}"
    )
    verdicts = []
    for level in LEVELS:
        lines = lines_for(level, quick)
        ideal = level / DELAY_S
        # Zero-overhead bound: the last of ceil(lines / N) rounds of 0.2 s.
        bound = lines / (math.ceil(lines / level) * DELAY_S) / ideal
        cells = []
        rates: dict[str, float] = {}
        per_lines: dict[str, float] = {}
        for client in CLIENTS:
            wall = median(client, level, "wall_s")
            rate = lines / wall
            net = (
                f"{lines / (wall - start_s[client]) / ideal:.2f}"
                if (wall > start_s[client])
                else "-"
            )  # start-up took longer (a busy machine)
            rates[client] = rate
            width = {"streamkit": 13, "openai SDK": 8, "floor": 9}[client]
            per_line = median(client, level, "cpu_s") / lines * 1e3
            cells.append(f"{rate:>{width},.0f}{rate / ideal:>9.2f}{net:>11}{per_line:>9.2f}")
            per_lines[client] = per_line
        ratio = rates["streamkit"] / rates["openai SDK"]
        print(
            f"  {level:>4}{lines:>6}{ideal:>10,.0f}{bound:>6.2f} | "
            + " | ".join(cells)
            + f" | {ratio:>5.2f}x{rates['streamkit'] / rates['floor']:>8.2f}x"
        )
        floor = f"the floor client {rates['floor'] / ideal:.3f}, {per_lines['floor']:.2f} ms"
        if level >= 64 and per_lines["streamkit"] > 0.4:
            verdicts.append(
                f"{scenario} N={level}: {per_lines['streamkit']:.2f} ms CPU/line (goal <= 0.4;"
                f" {floor})"
            )
        fraction = rates["streamkit"] / ideal
        goal = 0.9 if level <= 64 else 0.7
        if fraction < goal:
            verdicts.append(
                f"{scenario} N={level}: {fraction:.3f} of ideal (goal >= {goal}; {floor})"
            )
        if ratio <= 1:
            verdicts.append(f"{scenario} N={level}: behind the SDK script ({ratio:.3f}x)")
    return verdicts


def cpu_table(scenario: str, runs: dict[tuple[str, str, int], list[Run]], quick: bool) -> None:
    """One scenario's CPU: client, server, the machine."""

    def median(client: str, level: int, attribute: str) -> float:
        return statistics.median(getattr(r, attribute) for r in runs[scenario, client, level])

    print()
    print(
        f"`{scenario}` per run (medians): request = mean time of one request (server: 200 "
        "ms); CPU s of the client (os.wait4) and the server (/proc);"
    )
    print(
        f"busy = (client + server CPU) / (wall x {CPU_COUNT}); others = CPU used meanwhile "
        "by processes outside this benchmark, same scale."
    )
    print(
        f"  {'N':>4} | {'client':<10}{'wall s':>7}{'request ms':>11}{'client cpu':>11}"
        f"{'cpu/wall':>9}{'ms cpu/line':>12}{'server cpu':>11}{'busy':>6}{'others':>7}  limit"
    )
    for level in LEVELS:
        lines = lines_for(level, quick)
        for client in CLIENTS:
            wall = median(client, level, "wall_s")
            cpu = median(client, level, "cpu_s")
            server_cpu = median(client, level, "server_cpu_s")
            machine = median(client, level, "machine_s")
            capacity = wall * CPU_COUNT
            busy = (cpu + server_cpu) / capacity
            others = max(0.0, machine - cpu - server_cpu) / capacity
            limits = []
            if cpu / wall >= 0.85:
                limits.append("client CPU (one thread)")
            if busy + others >= 0.85:
                limits.append("machine CPU")
            label = f"{level:>4}" if client == CLIENTS[0] else " " * 4
            print(
                f"  {label} | {client:<10}{wall:>7.2f}"
                f"{median(client, level, 'request_ms'):>11.1f}{cpu:>11.2f}{cpu / wall:>9.0%}"
                f"{cpu / lines * 1e3:>12.2f}{server_cpu:>11.2f}{busy:>6.0%}{others:>7.0%}  "
                + (", ".join(limits) or "-")
            )


if __name__ == "__main__":
    sys.exit(main())
