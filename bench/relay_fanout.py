"""The WebSocket relay under fan-out: 100 streaming clients, latency, one stalled client.

Why: ``streamkit relay`` puts one upstream server behind a WebSocket server
for many clients. It should cost little against talking to the server
directly, and a client that stops reading must never slow the others
(``streamkit/relay.py``: the outbox never blocks, merges a slow client's
deltas, and drops it after ``--slow-client-timeout``). This measures both.

Set-up: ``tests/fault_server.py`` and ``python -m streamkit relay --port 0
--base-url http://127.0.0.1:PORT/by-model/KEY/v1 --slow-client-timeout 10``
(10 s, the default, given explicitly) run as two processes; the clients run
in this one, in one Trio loop, so the relay never shares an event loop with
them. The fault server's ``by-model`` scenario takes the scenario from the
request's ``model``, so clients choose it per request: ``many-N`` (N chat
chunks of ``"tok "``, as fast as the server can send them) or ``slow`` (one
token every 20 ms). The machine has 2 cores for 3 busy processes in the relay
runs (2 in the direct ones), so the CPU seconds of each process are reported
per run (clients: this process; relay and server: ``/proc/<pid>/stat``).

(a) Throughput: 100 concurrent clients each stream one ``many-2000`` reply
(200,000 tokens in all), through the relay -- one WebSocket each
(``trio_websocket.open_websocket_url``), ``{"type": "chat", ...}`` sent,
``delta`` frames read until ``finish`` -- or directly from the fault server
-- ``httpx.AsyncClient`` (Trio backend, no pool limit) POSTing to
``/chat/completions``, the SSE read with ``httpx_sse`` and each event's JSON
decoded for its ``delta.content``. Every client's text is checked. The relay
merges the deltas of a client that falls behind into fewer frames, so events
(delta frames / SSE events) are counted but the fair unit is delivered
tokens (text bytes / 4). The two paths alternate (the one that goes first
switches every round); figures are medians over rounds. Rates are for the
whole run: tokens delivered / wall time from launch to the last finish.

(b) Added latency: 100 concurrent requests on the ``slow`` scenario, each
reading its first 5 tokens. Through the relay, the 100 WebSockets are opened
first and the request frames sent together once all are open; time to first
delta counts from sending the request frame (the handshakes are timed
separately), and after 5 tokens the client sends ``cancel`` and reads to the
``finish`` frame before closing (see (d) for why it does not just close).
Directly, it counts from starting the HTTP request (a new connection each
time -- the relay also opens a new upstream connection per request), and the
client disconnects after 5 tokens. p50/p99 (nearest rank) over all rounds.
The same with one request at a time (20 alternating samples each) shows the
relay's own added latency, without 100 requests queueing in one process.

(c) A stalled client: the run of (a) through the relay, with and without one
extra client that opens a WebSocket (a raw socket with a minimal handshake),
sends a request on ``many-200000`` and never reads a byte. It starts 0.5 s
(``--lead``) before the 100, so the relay is already blocked sending to it. Its socket is
reset only after the relay has dropped it (``--slow-client-timeout``, 10 s)
and closed its side. Goal: the 100's token throughput with it >= 0.95 x
without it. The relay's CPU time from the stalled request to its drop is
reported too. Control: the same extra request from a client that reads it
(also started 0.5 s before the 100, its stream not counted), which tells the
cost of stalling from the cost of the extra stream the relay reads upstream.
Between runs the bench waits until the relay is idle (its CPU time stops
growing), so one run's leftovers do not land in the next.

(d) Disconnects while the relay is sending, after the measurements, each on
a fresh relay process: clients that close their WebSocket (close handshake)
a few frames into a fast stream, and a stalled client reset (RST) before the
relay drops it. Reported: whether the relay process is still running, and
if not, its exit code and the error it died of.

Run: ``python bench/relay_fanout.py`` (about 1.7 minutes), ``--quick``
(about 20 s: 1 round of each, 50 clients, 1,000-token streams).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import os
import re
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trio
from httpx_sse import aconnect_sse
from trio_websocket import ConnectionClosed, HandshakeError, open_websocket_url

from support import PYTHON, child_env, fresh_key, start_server

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
TOKEN = "tok "
STALL_GOAL = 0.95
SLOW_CLIENT_TIMEOUT = 10.0
LATENCY_TOKENS = 5  # read this many tokens of the slow scenario, then disconnect


# -- processes ---------------------------------------------------------------


@dataclass
class RelayProcess:
    proc: subprocess.Popen[str]
    url: str
    port: int
    stderr: list[str] = field(default_factory=list)

    def drops(self) -> int:
        return sum("dropping" in line for line in self.stderr)


def start_relay(env: dict[str, str], server_port: int) -> RelayProcess:
    base_url = f"http://127.0.0.1:{server_port}/by-model/{fresh_key()}/v1"
    proc = subprocess.Popen(
        [
            PYTHON,
            "-m",
            "streamkit",
            "relay",
            "--port",
            "0",
            "--base-url",
            base_url,
            "--max-retries",
            "0",
            "--slow-client-timeout",
            str(SLOW_CLIENT_TIMEOUT),
        ],
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert proc.stderr is not None
    line = proc.stderr.readline()
    if not line.startswith("listening on ws://"):
        proc.kill()
        raise RuntimeError(f"relay did not start: {line!r}")
    url = line.split()[-1]
    relay = RelayProcess(proc, url, int(url.rstrip("/").rsplit(":", 1)[1]))

    def drain() -> None:
        assert proc.stderr is not None
        for rest in proc.stderr:
            relay.stderr.append(rest.rstrip("\n"))

    threading.Thread(target=drain, daemon=True).start()
    return relay


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


async def wait_idle(pid: int, *, quiet: float = 0.3, limit: float = 20.0) -> float:
    """Wait until a process uses (almost) no CPU for ``quiet`` seconds; the time waited."""
    start = time.perf_counter()
    last, since = cpu_seconds(pid), time.perf_counter()
    while time.perf_counter() - start < limit:
        await trio.sleep(0.05)
        now = cpu_seconds(pid)
        if now - last > 0.02:
            last, since = now, time.perf_counter()
        elif time.perf_counter() - since >= quiet:
            break
    return time.perf_counter() - start


# -- clients -----------------------------------------------------------------


def chat_frame(frame_id: str, model: str) -> str:
    return json.dumps(
        {
            "type": "chat",
            "id": frame_id,
            "model": model,
            "messages": [{"role": "user", "content": "hi"}],
        }
    )


@dataclass
class Stream:
    """One client's stream: what arrived, and when (perf_counter seconds)."""

    start: float = 0.0  # request sent (relay) / HTTP request started (direct)
    opened: float = 0.0  # relay: WebSocket open started (before the handshake)
    handshake: float = 0.0  # relay: seconds to open the WebSocket
    first: float = 0.0
    end: float = 0.0
    events: int = 0
    text: str = ""
    finished: bool = False


class Barrier:
    """Lets ``parties`` tasks go on together once all have arrived."""

    def __init__(self, parties: int) -> None:
        self.left = parties
        self.all_here = trio.Event()

    async def wait(self) -> None:
        self.left -= 1
        if self.left == 0:
            self.all_here.set()
        await self.all_here.wait()


async def relay_stream(
    url: str, model: str, out: Stream, stop_after: int | None, barrier: Barrier | None = None
) -> None:
    """One request through the relay; with ``stop_after``, cancel after that many tokens.

    With ``barrier``, the request is sent only when every client's WebSocket
    is open, so that its timing does not include other clients' handshakes.

    A cancelled request is read to its ``finish`` frame before the WebSocket
    closes: a client that closes while the relay is still sending to it can
    take the relay down (see (d)), which would end the benchmark.
    """
    out.opened = time.perf_counter()
    async with open_websocket_url(url) as ws:
        out.handshake = time.perf_counter() - out.opened
        if barrier is not None:
            await barrier.wait()
        out.start = time.perf_counter()
        await ws.send_message(chat_frame("r", model))
        parts: list[str] = []
        tokens = 0
        cancelled = False
        while True:
            frame = json.loads(await ws.get_message())
            if frame["type"] == "delta":
                if not out.events:
                    out.first = time.perf_counter()
                out.events += 1
                parts.append(frame["text"])
                if stop_after is not None and not cancelled:
                    tokens += frame["text"].count(" ")
                    if tokens >= stop_after:
                        await ws.send_message(json.dumps({"type": "cancel", "id": "r"}))
                        cancelled = True
            elif frame["type"] == "finish":
                out.finished = frame["finish_reason"] == ("cancelled" if cancelled else "stop")
                break
            elif frame["type"] == "error":
                raise RuntimeError(f"relay error frame: {frame}")
        out.end = time.perf_counter()
        out.text = "".join(parts)


async def direct_stream(
    client: httpx.AsyncClient, base: str, model: str, out: Stream, stop_after: int | None
) -> None:
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}]}
    out.start = out.opened = time.perf_counter()
    parts: list[str] = []
    tokens = 0
    async with aconnect_sse(client, "POST", f"{base}/chat/completions", json=body) as source:
        source.response.raise_for_status()
        async for event in source.aiter_sse():
            if event.data == "[DONE]":
                out.finished = True
                break
            choice = json.loads(event.data)["choices"][0]
            text = choice["delta"].get("content")
            if text:
                if not out.events:
                    out.first = time.perf_counter()
                out.events += 1
                parts.append(text)
                if stop_after is not None:
                    tokens += text.count(" ")
                    if tokens >= stop_after:
                        break
    out.end = time.perf_counter()
    out.text = "".join(parts)


async def stalled_client(port: int, model: str) -> trio.SocketStream:
    """A WebSocket client that sends one request and never reads: a raw socket."""
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    key = base64.b64encode(os.urandom(16)).decode()
    await stream.send_all(
        f"GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        f"Sec-WebSocket-Version: 13\r\n\r\n".encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        data = await stream.receive_some(4096)
        if not data:
            raise RuntimeError("relay closed the stalled client's handshake")
        head += data
    if not head.startswith(b"HTTP/1.1 101"):
        raise RuntimeError(f"handshake refused: {head[:40]!r}")
    payload = chat_frame("stall", model).encode()
    mask = os.urandom(4)
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    assert len(payload) < 126
    await stream.send_all(bytes([0x81, 0x80 | len(payload)]) + mask + masked)
    return stream


def unread_bytes(stream: trio.SocketStream) -> int:
    """Bytes waiting in the socket's kernel receive queue (FIONREAD)."""
    raw = fcntl.ioctl(stream.socket.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int(struct.unpack("i", raw)[0])


async def reset(stream: trio.SocketStream) -> None:
    """Close with an RST (SO_LINGER 0), as a vanished client would."""
    stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    await stream.aclose()


# -- runs --------------------------------------------------------------------


@dataclass
class RunResult:
    wall: float
    streams: list[Stream]
    cpu: dict[str, float]  # clients (this process), relay, server
    idle_wait: float = 0.0
    drop_after: float = 0.0  # stalled runs: seconds from the stalled request to its drop
    episode_cpu: float = 0.0  # stalled runs: relay CPU seconds, stalled request to drop
    stalled_queue: tuple[int, int] = (0, 0)  # its unread bytes 0.4 s and 0.5 s in

    @property
    def tokens(self) -> int:
        return sum(len(s.text) for s in self.streams) // len(TOKEN)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.streams)


async def run_clients(
    clients: int,
    make: Callable[[Stream], Awaitable[None]],
    pids: dict[str, int],
) -> RunResult:
    streams = [Stream() for _ in range(clients)]
    cpu0 = {name: cpu_seconds(pid) for name, pid in pids.items()}
    proc0 = time.process_time()
    start = time.perf_counter()
    async with trio.open_nursery() as nursery:
        for stream in streams:
            nursery.start_soon(make, stream)
    wall = time.perf_counter() - start
    cpu = {"clients": time.process_time() - proc0}
    cpu.update({name: cpu_seconds(pid) - cpu0[name] for name, pid in pids.items()})
    return RunResult(wall, streams, cpu)


def check_full(result: RunResult, tokens: int, path: str) -> None:
    expected = TOKEN * tokens
    bad = [i for i, s in enumerate(result.streams) if s.text != expected or not s.finished]
    if bad:
        raise RuntimeError(f"{path}: {len(bad)} streams incomplete or wrong (first: {bad[0]})")


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.4999)))
    return ordered[rank - 1]


@dataclass
class Bench:
    relay: RelayProcess
    server_pid: int
    server_port: int
    http: httpx.AsyncClient
    clients: int
    tokens: int
    env: dict[str, str]
    lead: float = 0.5  # seconds the extra client of (c) starts before the 100

    @property
    def pids(self) -> dict[str, int]:
        return {"relay": self.relay.proc.pid, "server": self.server_pid}

    def direct_base(self, model: str) -> str:
        return f"http://127.0.0.1:{self.server_port}/{model}/{fresh_key()}/v1"

    async def settle(self) -> float:
        return await wait_idle(self.relay.proc.pid)

    async def throughput_run(self, path: str) -> RunResult:
        model = f"many-{self.tokens}"
        idle = await self.settle()
        if path == "relay":
            result = await run_clients(
                self.clients, lambda s: relay_stream(self.relay.url, model, s, None), self.pids
            )
        else:
            base = self.direct_base(model)
            result = await run_clients(
                self.clients, lambda s: direct_stream(self.http, base, model, s, None), self.pids
            )
        check_full(result, self.tokens, path)
        result.idle_wait = idle
        return result

    async def stalled_run(self, stalled_tokens: int) -> RunResult:
        """The 100 with a stalled client; it is reset only after the relay dropped it."""
        idle = await self.settle()
        drops = self.relay.drops()
        relay_cpu = cpu_seconds(self.relay.proc.pid)
        stalled = await stalled_client(self.relay.port, f"many-{stalled_tokens}")
        since = time.perf_counter()
        try:
            await trio.sleep(self.lead - 0.1)
            first = unread_bytes(stalled)
            await trio.sleep(0.1)  # by now the relay is blocked sending to it
            result_queue = (first, unread_bytes(stalled))
            model = f"many-{self.tokens}"
            result = await run_clients(
                self.clients, lambda s: relay_stream(self.relay.url, model, s, None), self.pids
            )
            with trio.move_on_after(SLOW_CLIENT_TIMEOUT + 10):
                while self.relay.drops() == drops:  # noqa: ASYNC110 - a line from a thread
                    await trio.sleep(0.05)
            result.drop_after = time.perf_counter() - since
            result.stalled_queue = result_queue
            result.episode_cpu = cpu_seconds(self.relay.proc.pid) - relay_cpu
            await trio.sleep(1.5)  # the relay's close attempt (1 s) and its socket closed
        finally:
            await reset(stalled)
        check_full(result, self.tokens, "relay + stalled client")
        result.idle_wait = idle
        return result

    async def reading_extra_run(self, extra_tokens: int) -> RunResult:
        """The control for (c): the same extra request, from a client that reads it."""
        idle = await self.settle()
        extra = Stream()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(relay_stream, self.relay.url, f"many-{extra_tokens}", extra, None)
            await trio.sleep(self.lead)
            model = f"many-{self.tokens}"
            result = await run_clients(
                self.clients, lambda s: relay_stream(self.relay.url, model, s, None), self.pids
            )
        if extra.text != TOKEN * extra_tokens:
            raise RuntimeError("the extra reading client got a wrong text")
        check_full(result, self.tokens, "relay + reading client")
        result.idle_wait = idle
        return result

    async def latency_run(
        self, path: str, clients: int | None = None, *, settle: bool = True
    ) -> RunResult:
        idle = await self.settle() if settle else 0.0
        clients = clients or self.clients
        if path == "relay":
            barrier = Barrier(clients)
            result = await run_clients(
                clients,
                lambda s: relay_stream(self.relay.url, "slow", s, LATENCY_TOKENS, barrier),
                self.pids,
            )
        else:
            base = self.direct_base("slow")
            result = await run_clients(
                clients,
                lambda s: direct_stream(self.http, base, "slow", s, LATENCY_TOKENS),
                self.pids,
            )
        for s in result.streams:
            if s.text.count(" ") < LATENCY_TOKENS:
                raise RuntimeError(f"{path}: a latency client got {s.text!r}")
        result.idle_wait = idle
        return result


# -- report ------------------------------------------------------------------


def cpu_cells(runs: list[RunResult]) -> str:
    return "".join(
        f"{statistics.median(r.cpu[name] for r in runs):>9.2f}"
        for name in ("clients", "relay", "server")
    )


def throughput_row(label: str, runs: list[RunResult]) -> tuple[str, float]:
    wall = statistics.median(r.wall for r in runs)
    tokens_s = statistics.median(r.tokens / r.wall for r in runs)
    events_s = statistics.median(r.events / r.wall for r in runs)
    events = statistics.median(r.events for r in runs)
    per_stream = statistics.median(
        statistics.median(s.end - s.start for s in r.streams) for r in runs
    )
    row = (
        f"    {label:<24}{wall:>7.2f}{events:>10,.0f}{events_s:>11,.0f}{tokens_s:>11,.0f}"
        f"{tokens_s * len(TOKEN) / 1e6:>7.2f}{per_stream:>10.2f}{cpu_cells(runs)}"
    )
    return row, tokens_s


THROUGHPUT_HEAD = (
    f"    {'path':<24}{'wall s':>7}{'events':>10}{'events/s':>11}{'tokens/s':>11}"
    f"{'MB/s':>7}{'stream s':>10}{'CPU cl.':>9}{'relay':>9}{'server':>9}"
)


def report_throughput(
    bench: Bench, relay_runs: list[RunResult], direct_runs: list[RunResult]
) -> None:
    total = bench.clients * bench.tokens
    print(
        f"(a) Throughput: {bench.clients} concurrent clients x many-{bench.tokens} "
        f"({total:,} tokens a run); median of {len(relay_runs)} alternating rounds."
    )
    print(THROUGHPUT_HEAD)
    relay_row, relay_rate = throughput_row("relay (WebSocket)", relay_runs)
    direct_row, direct_rate = throughput_row("direct (httpx SSE)", direct_runs)
    print(relay_row)
    print(direct_row)
    print(
        f"    relay / direct, tokens/s: {relay_rate / direct_rate:.2f}; events are delta "
        f"frames (relay, merged when a client is behind) or SSE events (direct, 1 per token)"
    )
    print(
        f"    relay: {statistics.median(r.tokens / r.events for r in relay_runs):.1f} tokens "
        f"per delta frame (median); 'stream s' = median time of one client's stream, "
        f"request to finish; CPU s per process per run"
    )


def report_latency(
    relay_runs: list[RunResult],
    direct_runs: list[RunResult],
    relay_single: list[RunResult],
    direct_single: list[RunResult],
) -> None:
    def ms(values: list[float]) -> str:
        return (
            f"{percentile(values, 50) * 1e3:>9.1f}{percentile(values, 99) * 1e3:>9.1f}"
            f"{max(values) * 1e3:>9.1f}"
        )

    relay_req = [s.first - s.start for r in relay_runs for s in r.streams]
    handshakes = [s.handshake for r in relay_runs for s in r.streams]
    direct = [s.first - s.start for r in direct_runs for s in r.streams]
    clients = len(relay_runs[0].streams)
    print(
        f"(b) Time to first delta, slow scenario: {clients} concurrent requests, "
        f"{LATENCY_TOKENS} tokens read, then cancel (relay) / disconnect (direct);"
    )
    print(
        f"    relay requests sent together once all {clients} WebSockets are open; "
        f"{len(relay_runs)} alternating rounds, {len(relay_req)} samples each."
    )
    print(
        f"    {'path':<44}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'CPU cl.':>9}"
        f"{'relay':>9}{'server':>9}"
    )
    print(f"    {'relay, from the request frame':<44}{ms(relay_req)}{cpu_cells(relay_runs)}")
    print(f"    {'relay: the WebSocket handshakes before it':<44}{ms(handshakes)}")
    print(
        f"    {'direct, from the HTTP request (new conn.)':<44}{ms(direct)}{cpu_cells(direct_runs)}"
    )
    print(
        f"    added by the relay (request frame vs direct): p50 "
        f"{(percentile(relay_req, 50) - percentile(direct, 50)) * 1e3:+.1f} ms, p99 "
        f"{(percentile(relay_req, 99) - percentile(direct, 99)) * 1e3:+.1f} ms"
    )
    one_relay = [s.first - s.start for r in relay_single for s in r.streams]
    one_direct = [s.first - s.start for r in direct_single for s in r.streams]
    print(
        f"    one request at a time ({len(one_relay)} alternating samples each): relay "
        f"p50 {percentile(one_relay, 50) * 1e3:.1f} / p99 {percentile(one_relay, 99) * 1e3:.1f}"
        f" ms, direct p50 {percentile(one_direct, 50) * 1e3:.1f} / p99 "
        f"{percentile(one_direct, 99) * 1e3:.1f} ms: added p50 "
        f"{(percentile(one_relay, 50) - percentile(one_direct, 50)) * 1e3:+.1f} ms"
    )


def report_stall(
    bench: Bench, runs: dict[str, list[RunResult]], stalled_tokens: int, drops: int
) -> None:
    without, with_, reading = runs["without"], runs["stalled"], runs["reading"]
    print(
        f"(c) A stalled client: the (a) relay run with one extra client that requests "
        f"many-{stalled_tokens} and never reads;"
    )
    print(
        f"    it starts {bench.lead:g} s before the {bench.clients}; --slow-client-timeout "
        f"{SLOW_CLIENT_TIMEOUT:g} s; median of {len(without)} alternating rounds."
    )
    print("    Control: the same extra request from a client that reads it.")
    print(THROUGHPUT_HEAD)
    row_without, rate_without = throughput_row("relay, no extra client", without)
    row_with, rate_with = throughput_row("+ stalled client", with_)
    row_reading, rate_reading = throughput_row("+ reading client (ctrl)", reading)
    print(row_without)
    print(row_with)
    print(row_reading)
    ratio = rate_with / rate_without
    verdict = "meets" if ratio >= STALL_GOAL else "BELOW"
    per_round = ", ".join(
        f"{w.tokens / w.wall / (o.tokens / o.wall):.2f}"
        for w, o in zip(with_, without, strict=True)
    )
    print(
        f"    with / without, tokens/s of the {bench.clients}: {ratio:.3f} (goal >= "
        f"{STALL_GOAL}: {verdict}); per round: {per_round}"
    )
    print(
        f"    control: with a reading extra client / without: {rate_reading / rate_without:.3f}"
        f"; stalled / reading: {rate_with / rate_reading:.3f}"
    )
    episode = statistics.median(r.episode_cpu for r in with_)
    alone = statistics.median(r.cpu["relay"] for r in without)
    print(
        f"    relay CPU from the stalled request to its drop: median {episode:.2f} s, of "
        f"which ~{alone:.2f} s is the {bench.clients} clients' share (a run without it): "
        f"the stalled request costs ~{episode - alone:.2f} CPU s"
    )
    queues = ", ".join(f"{a:,} -> {b:,}" for a, b in (r.stalled_queue for r in with_))
    print(
        f"    the stalled client's unread bytes {bench.lead - 0.1:g} s -> {bench.lead:g} s "
        f"after its request (its kernel "
        f"receive queue, full: the relay is blocked sending to it): {queues}"
    )
    drop_after = [r.drop_after for r in with_]
    waits = [r.idle_wait for r in without + with_ + reading]
    print(
        f"    the stalled client was dropped by the relay {drops} time(s) in {len(with_)} "
        f"runs, {min(drop_after):.1f}-{max(drop_after):.1f} s after its request; waited for "
        f"an idle relay before each run: median {statistics.median(waits):.2f} s, max "
        f"{max(waits):.2f} s"
    )


# -- (d) disconnects mid-stream ----------------------------------------------


async def closing_client(url: str, model: str, frames: int) -> None:
    """Reads ``frames`` frames, then closes its WebSocket (close handshake) mid-stream."""
    try:
        async with open_websocket_url(url) as ws:
            await ws.send_message(chat_frame("r", model))
            for _ in range(frames):
                await ws.get_message()
    except (ConnectionClosed, HandshakeError, OSError, trio.BrokenResourceError):
        pass  # the relay went away under us: reported from its side


def relay_fate(relay: RelayProcess) -> str:
    """Whether the relay process is still up; if not, its exit code and last error."""
    code = relay.proc.poll()
    if code is None:
        return "relay still running"
    frames = [
        match.groups()
        for line in relay.stderr
        if (match := re.search(r'File ".*/(streamkit/[^"]+)", line (\d+), in (\w+)', line))
    ]
    errors = [
        line.strip(" |")
        for line in relay.stderr
        if line.strip(" |").startswith(
            ("trio_websocket.", "trio.", "ExceptionGroup", "ConnectionClosed")
        )
    ]
    where = "{}:{} in {}".format(*frames[-1]) if frames else "?"
    return (
        f"relay EXITED with code {code}, a traceback on stderr; last streamkit frame: "
        f"{where}; error: {errors[-1] if errors else '?'}"
    )


async def disconnect_checks(env: dict[str, str], server_port: int) -> list[tuple[str, str]]:
    """Each check on a fresh relay process; the outcome of each."""
    outcomes = []
    relay = start_relay(env, server_port)
    try:
        rounds = 0
        while rounds < 3 and relay.proc.poll() is None:
            rounds += 1
            async with trio.open_nursery() as nursery:
                for i in range(20):
                    nursery.start_soon(closing_client, relay.url, "many-200000", 1 + i)
            await trio.sleep(1.0)
        outcomes.append(
            (
                f"20 clients close their WebSocket after 1-20 frames of many-200000, "
                f"{rounds} round(s) of them",
                relay_fate(relay),
            )
        )
    finally:
        stop_process(relay.proc)
    relay = start_relay(env, server_port)
    try:
        tries = 0
        while tries < 3 and relay.proc.poll() is None:
            tries += 1
            stalled = await stalled_client(relay.port, "many-200000")
            await trio.sleep(1.0)
            await reset(stalled)
            await trio.sleep(1.0)
            await wait_idle(relay.proc.pid)
        outcomes.append(
            (
                f"a stalled client is reset (RST) 1 s after its request, before the "
                f"relay drops it, {tries} time(s)",
                relay_fate(relay),
            )
        )
    finally:
        stop_process(relay.proc)
    return outcomes


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


# -- main --------------------------------------------------------------------


async def run_all(
    bench: Bench, rounds: int, latency_rounds: int, single_samples: int, stalled_tokens: int
) -> None:
    # Warm-up: one small run each way (imports, first connections).
    for path in ("relay", "direct"):
        await bench.latency_run(path)

    relay_runs: list[RunResult] = []
    direct_runs: list[RunResult] = []
    for round_ in range(rounds):
        for path in ("relay", "direct") if round_ % 2 == 0 else ("direct", "relay"):
            result = await bench.throughput_run(path)
            (relay_runs if path == "relay" else direct_runs).append(result)
    report_throughput(bench, relay_runs, direct_runs)
    print()

    relay_lat: list[RunResult] = []
    direct_lat: list[RunResult] = []
    for round_ in range(latency_rounds):
        for path in ("relay", "direct") if round_ % 2 == 0 else ("direct", "relay"):
            result = await bench.latency_run(path)
            (relay_lat if path == "relay" else direct_lat).append(result)
    relay_one: list[RunResult] = []
    direct_one: list[RunResult] = []
    for i in range(single_samples):
        for path in ("relay", "direct") if i % 2 == 0 else ("direct", "relay"):
            result = await bench.latency_run(path, clients=1, settle=False)
            (relay_one if path == "relay" else direct_one).append(result)
    report_latency(relay_lat, direct_lat, relay_one, direct_one)
    print()

    drops_before = bench.relay.drops()
    runs: dict[str, list[RunResult]] = {"without": [], "stalled": [], "reading": []}
    for round_ in range(rounds):
        order = ("without", "stalled", "reading")
        for kind in order if round_ % 2 == 0 else order[::-1]:
            if kind == "stalled":
                runs[kind].append(await bench.stalled_run(stalled_tokens))
            elif kind == "reading":
                runs[kind].append(await bench.reading_extra_run(stalled_tokens))
            else:
                runs[kind].append(await bench.throughput_run("relay"))
    await bench.settle()
    await trio.sleep(0.2)  # let the relay's stderr reach the reader thread
    report_stall(bench, runs, stalled_tokens, bench.relay.drops() - drops_before)
    print()

    print(
        "(d) Disconnects while the relay is sending (after the measurements; each on a "
        "fresh relay process):"
    )
    for what, outcome in await disconnect_checks(bench.env, bench.server_port):
        print(f"    {what}:\n        {outcome}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="1 round of each, 50 clients, shorter streams"
    )
    parser.add_argument("--clients", type=int, help="concurrent clients (default 100)")
    parser.add_argument("--tokens", type=int, help="tokens per stream in (a), (c) (2000)")
    parser.add_argument("--rounds", type=int, help="rounds of (a) and of (c) (default 5)")
    parser.add_argument("--latency-rounds", type=int, help="rounds of (b) (default 3)")
    parser.add_argument(
        "--single-samples", type=int, help="one-at-a-time latency samples per path (default 20)"
    )
    parser.add_argument(
        "--lead",
        type=float,
        default=0.5,
        help="seconds the extra client of (c) starts before the others (0.5)",
    )
    parser.add_argument(
        "--stalled-tokens",
        type=int,
        default=200_000,
        help="tokens the stalled client asks for (default 200,000)",
    )
    args = parser.parse_args(argv)
    clients = args.clients or (50 if args.quick else 100)
    tokens = args.tokens or (1000 if args.quick else 2000)
    rounds = args.rounds or (1 if args.quick else 5)
    latency_rounds = args.latency_rounds or (1 if args.quick else 3)
    single_samples = args.single_samples or (5 if args.quick else 20)

    load_before = os.getloadavg()[0]
    print(
        f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s): clients (this "
        f"process), relay and fault server share them; load average (1 min) before: "
        f"{load_before:.2f}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        env = child_env(Path(tmp))
        server, server_port = start_server(env)
        relay: RelayProcess | None = None
        try:
            relay = start_relay(env, server_port)

            async def go() -> None:
                assert relay is not None
                limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
                async with httpx.AsyncClient(limits=limits, timeout=60) as http:
                    bench = Bench(
                        relay,
                        server.pid,
                        server_port,
                        http,
                        clients,
                        tokens,
                        env,
                        max(args.lead, 0.1),
                    )
                    await run_all(
                        bench, rounds, latency_rounds, single_samples, args.stalled_tokens
                    )

            trio.run(go)
        finally:
            for proc in ([relay.proc] if relay else []) + [server]:
                stop_process(proc)
        if relay is not None and any("Traceback" in line for line in relay.stderr):
            print(f"the measured relay failed: {relay_fate(relay)}")
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
