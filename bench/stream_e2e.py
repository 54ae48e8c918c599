"""End-to-end streaming throughput and time to first token, as separate processes.

Why: what a user runs is a whole process -- interpreter start-up, imports,
HTTP, decoding, writing to stdout. ``sse_decode.py`` measures decoding alone;
this measures the command a user types against the plain OpenAI SDK loop
doing the same job, over a real local socket.

Throughput: ``tests/fault_server.py`` is started once; its ``many-N``
scenario streams N (default 100,000) chat chunks of ``"tok "`` as fast as it
can, then ``stop`` and ``[DONE]``. Timed, from ``Popen`` to exit:

* ``python -m streamkit complete x --base-url URL --max-retries 0``,
  stdout to /dev/null;
* the same interpreter running ``sdk_client`` below: ``AsyncOpenAI(...)``,
  ``client.completions.create(model="m", prompt="x", stream=True)``,
  iterating and writing each chunk's text to stdout (/dev/null). The server
  sends chat-shaped chunks on both endpoints; the SDK leaves
  ``choice.text`` as ``None`` and keeps the unknown ``delta`` field, so the
  text is read from there.

The two alternate (one untimed warm-up each, then ``--rounds`` interleaved
rounds); every run uses a fresh scenario key, and each run's text length is
checked. Chunks/s is N / median wall time. Start-up is measured separately as
the wall time of ``python -c "from streamkit.cli.app import app_for;
app_for(['complete'])"`` (the imports of the CLI and its ``complete``) and
``python -c "import asyncio, openai"`` (median of several), and subtracted
for the "excluding start-up" figures -- an estimate: the CLI's own argument
parsing and the SDK's client construction stay in the streaming part.

Time to first token: against the ``slow`` scenario (the first token is sent
right after the response head), the time from ``Popen`` to the first byte
read from the child's stdout, for ``streamkit complete`` and for baselines
that do nothing but connect and print: ``curl -N`` (if installed) and a
tiny raw-socket Python client. The difference is streamkit's start-up cost.

Run: ``python bench/stream_e2e.py`` (about 1 minute), ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server

CLI_IMPORT = "from streamkit.cli.app import app_for; app_for(['complete'])"

RAW_CLIENT = r"""
import socket, sys
port, path = int(sys.argv[1]), sys.argv[2].encode()
body = b'{"model":"m","prompt":"x","stream":true}'
sock = socket.create_connection(("127.0.0.1", port))
sock.sendall(b"POST " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
             b"Content-Type: application/json\r\nContent-Length: "
             + str(len(body)).encode() + b"\r\n\r\n" + body)
seen = b""
while b"data:" not in seen:
    data = sock.recv(65536)
    if not data:
        sys.exit(1)
    seen += data
out = sys.stdout.buffer
out.write(seen[seen.index(b"data:"):])
out.flush()
while data := sock.recv(65536):
    out.write(data)
    out.flush()
"""


def sdk_client(base_url: str) -> None:
    """The plain SDK streaming loop (run in a child process)."""
    import asyncio

    import openai

    async def main() -> None:
        client = openai.AsyncOpenAI(base_url=base_url, api_key="x", max_retries=0)
        stream = await client.completions.create(model="m", prompt="x", stream=True)
        out = sys.stdout
        written = 0
        async for chunk in stream:
            for choice in chunk.choices:
                text = choice.text
                if text is None:  # chat-shaped chunk: the SDK keeps "delta" as an extra
                    text = (getattr(choice, "delta", None) or {}).get("content")
                if text:
                    out.write(text)
                    written += len(text)
        await client.close()
        print(written, file=sys.stderr)

    asyncio.run(main())


def timed_run(argv: Sequence[str], env: dict[str, str]) -> tuple[float, int, str]:
    """Wall time from Popen to exit, the exit code and stderr."""
    start = time.perf_counter()
    proc = subprocess.run(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
        text=True,
        check=False,
    )
    return time.perf_counter() - start, proc.returncode, proc.stderr


def streamkit_argv(port: int, scenario: str) -> list[str]:
    url = f"http://127.0.0.1:{port}/{scenario}/{fresh_key()}/v1"
    return [PYTHON, "-m", "streamkit", "complete", "x", "--base-url", url, "--max-retries", "0"]


def sdk_argv(port: int, scenario: str) -> list[str]:
    url = f"http://127.0.0.1:{port}/{scenario}/{fresh_key()}/v1"
    return [PYTHON, str(Path(__file__).resolve()), "--sdk-client", url]


def check_streamkit_output(port: int, chunks: int, env: dict[str, str]) -> None:
    out = subprocess.run(
        streamkit_argv(port, f"many-{chunks}"), capture_output=True, env=env, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout == b"tok " * chunks + b"\n", len(out.stdout)


def first_byte_latency(argv: Sequence[str], env: dict[str, str], stop: signal.Signals) -> float:
    """Seconds from Popen to the first byte on the child's stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    assert proc.stdout is not None
    first = os.read(proc.stdout.fileno(), 65536)
    elapsed = time.perf_counter() - start
    proc.send_signal(stop)
    proc.wait(timeout=10)
    proc.stdout.close()
    if not first:
        raise RuntimeError(f"no output from {argv[:4]}")
    return elapsed


def median_time(argv: Sequence[str], env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        elapsed, code, err = timed_run(argv, env)
        assert code == 0, err
        times.append(elapsed)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 chunks, fewer rounds")
    parser.add_argument("--chunks", type=int, help="chunks per stream (default 100,000)")
    parser.add_argument("--rounds", type=int, help="timed rounds per client (default 5)")
    parser.add_argument("--sdk-client", metavar="BASE_URL", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sdk_client:
        sdk_client(args.sdk_client)
        return 0
    chunks = args.chunks or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (2 if args.quick else 5)
    samples = 3 if args.quick else 10

    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        server, port = start_server(env)
        try:
            report(port, env, chunks, rounds, samples)
        finally:
            server.terminate()
            server.wait(timeout=10)
    return 0


def report(port: int, env: dict[str, str], chunks: int, rounds: int, samples: int) -> None:
    scenario = f"many-{chunks}"
    check_streamkit_output(port, chunks, env)

    # Throughput: one warm-up each, then interleaved rounds.
    walls: dict[str, list[float]] = {"streamkit complete": [], "openai SDK AsyncOpenAI": []}
    for round_ in range(rounds + 1):
        for name, make in (
            ("streamkit complete", streamkit_argv),
            ("openai SDK AsyncOpenAI", sdk_argv),
        ):
            elapsed, code, err = timed_run(make(port, scenario), env)
            assert code == 0, (name, code, err)
            if name.startswith("openai"):
                assert err.strip() == str(4 * chunks), (name, err)
            if round_:
                walls[name].append(elapsed)

    startup_runs = max(3, samples)
    startup = {
        "streamkit complete": median_time([PYTHON, "-c", CLI_IMPORT], env, startup_runs),
        "openai SDK AsyncOpenAI": median_time(
            [PYTHON, "-c", "import asyncio, openai"], env, startup_runs
        ),
    }
    bare = median_time([PYTHON, "-c", "pass"], env, startup_runs)

    print(
        f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s); server and client share them."
    )
    print(
        f"Throughput: {chunks:,} chunks from tests/fault_server.py ({scenario}); "
        f"median of {rounds} interleaved rounds after one warm-up each."
    )
    print(
        f"  {'client':<24}{'median s':>9}{'best s':>8}{'chunks/s':>11}"
        f"{'start-up s':>12}{'chunks/s excl. start-up':>25}"
    )
    rates: dict[str, tuple[float, float]] = {}
    for name, values in walls.items():
        wall = statistics.median(values)
        start = startup[name]
        rate, rate_net = chunks / wall, chunks / (wall - start)
        rates[name] = (rate, rate_net)
        print(
            f"  {name:<24}{wall:>9.3f}{min(values):>8.3f}{rate:>11,.0f}"
            f"{start:>12.3f}{rate_net:>25,.0f}"
        )
    ours, theirs = rates["streamkit complete"], rates["openai SDK AsyncOpenAI"]
    ratio, ratio_net = ours[0] / theirs[0], ours[1] / theirs[1]
    verdict = "meets" if ratio >= 2 else "BELOW"
    print(
        f"  ratio streamkit / SDK: {ratio:.2f}x wall clock, {ratio_net:.2f}x excluding "
        f"start-up (goal >= 2x: {verdict})"
    )
    print(
        f'  start-up = median wall time of `python -c "{CLI_IMPORT}"` / '
        f'`python -c "import asyncio, openai"`; bare `python -c pass` = {bare:.3f} s'
    )

    # Time to first token against the slow scenario.
    clients: dict[str, signal.Signals] = {  # and the signal that ends each
        "streamkit complete": signal.SIGINT,
        "python raw socket": signal.SIGTERM,
    }
    curl = shutil.which("curl")
    if curl:
        clients["curl -N"] = signal.SIGTERM
    ttft: dict[str, list[float]] = {name: [] for name in clients}
    for _ in range(samples + 1):  # the first round is a warm-up
        for name, stop in clients.items():
            key = fresh_key()
            path = f"/slow/{key}/v1/completions"
            if name == "streamkit complete":
                cmd = streamkit_argv(port, "slow")
            elif name == "python raw socket":
                cmd = [PYTHON, "-c", RAW_CLIENT, str(port), path]
            else:
                assert curl is not None
                cmd = [
                    curl,
                    "-sSN",
                    "-X",
                    "POST",
                    "-H",
                    "Content-Type: application/json",
                    "--data",
                    '{"model":"m","prompt":"x","stream":true}',
                    f"http://127.0.0.1:{port}{path}",
                ]
            ttft[name].append(first_byte_latency(cmd, env, stop))
    print()
    print(
        f"Time to first token (slow scenario): Popen -> first stdout byte, median of "
        f"{samples} after one warm-up."
    )
    print(f"  {'client':<24}{'median ms':>10}{'min ms':>9}{'max ms':>9}")
    medians: dict[str, float] = {}
    for name, values in ttft.items():
        values = values[1:]
        medians[name] = statistics.median(values)
        print(
            f"  {name:<24}{medians[name] * 1e3:>10.1f}{min(values) * 1e3:>9.1f}"
            f"{max(values) * 1e3:>9.1f}"
        )
    ours_ms = medians["streamkit complete"] * 1e3
    for name in clients:
        if name != "streamkit complete":
            print(f"  streamkit start-up cost vs {name}: {ours_ms - medians[name] * 1e3:+.1f} ms")


if __name__ == "__main__":
    sys.exit(main())
