"""``RawHTTPTarget`` (bench's plain-http client) against the timed server over real sockets.

The clock is real, so times are checked against the plan only in the
direction that cannot flake (never earlier than the server's schedule) and
within wide bounds; counts, error types and messages are checked exactly,
and against ``HTTPTarget`` (httpx) where the two must agree.
"""

from __future__ import annotations

import itertools
import json
import socket
import uuid
from contextlib import asynccontextmanager

import pytest
import timed_server
import trio
import trio.testing
from closing_server import ClosingServer
from llama_server_fixture import native_llama_server  # noqa: F401

from streamkit.config import Settings
from streamkit.errors import UsageError
from streamkit.loadtest import rawhttp
from streamkit.loadtest.client import HTTPTarget, Measurement
from streamkit.loadtest.kernelstamps import ANCILLARY_SIZE, SO_TIMESTAMPNS, kernel_clock
from streamkit.loadtest.rawhttp import RawHTTPTarget
from streamkit.loadtest.report import connections_opened
from streamkit.loadtest.runner import Runner, RunResult, RunSpec
from streamkit.loadtest.setup import open_target
from streamkit.loadtest.workload import random_workload
from streamkit.providers.httpx_transport import HttpxTransport
from streamkit.providers.openai_http import OpenAIHTTPProducer

from conftest import free_port


def workload(count: int, output_tokens: int = 8):
    return random_workload(
        count, kind="chat", model="m", prompt_tokens=16, output_tokens=output_tokens, seed=1
    )


@pytest.fixture
async def server(nursery):
    """The timed server in this test's nursery: ``url(plan)`` gives a fresh base URL."""
    port = await nursery.start(timed_server.serve)

    def url(plan: str) -> str:
        return f"http://127.0.0.1:{port}/{plan}/{uuid.uuid4().hex}/v1"

    return url


@asynccontextmanager
async def raw_target(url: str, idle_timeout: float | None = 5):
    target = RawHTTPTarget(url, None, connect_timeout=idle_timeout and 5, idle_timeout=idle_timeout)
    try:
        yield target
    finally:
        await target.aclose()


@asynccontextmanager
async def httpx_target(url: str):
    def new_transport() -> HttpxTransport:
        return HttpxTransport(url, None, connect_timeout=5, idle_timeout=5)

    target = HTTPTarget(OpenAIHTTPProducer(new_transport(), max_retries=0), new_transport)
    try:
        yield target
    finally:
        await target.aclose()


async def run(target, spec: RunSpec, output_tokens: int = 8) -> RunResult:
    result = RunResult(spec)
    await Runner(target, workload(spec.requests or 1, output_tokens)).run(result)
    return result


async def test_times_follow_the_plan_and_usage_is_counted(server):
    async with raw_target(server("ttft=0.05,itl=0.01,tokens=5")) as target:
        result = await run(target, RunSpec("concurrency", concurrency=2, requests=6))
    assert [s.ok for s in result.samples] == [True] * 6
    for sample in result.samples:
        # sent before the server read the request; its first token no earlier than ttft
        assert sample.ttft >= 0.05
        assert len(sample.itl) == 4
        assert sum(sample.itl) > 0
        assert sample.e2e >= 0.05 + 4 * 0.01 - 1e-3
        assert (sample.output_tokens, sample.tokens_source) == (5, "usage")
        assert sample.prompt_tokens == 7  # the server's usage


async def test_connections_are_kept_between_requests(server):
    """12 requests at concurrency 3: 3 connections, also after error answers."""
    before = timed_server.connections_accepted
    async with raw_target(server("ttft=0.01,itl=0.001,tokens=3")) as target:
        result = await run(target, RunSpec("concurrency", concurrency=3, requests=12))
    assert [s.ok for s in result.samples] == [True] * 12
    assert timed_server.connections_accepted - before == 3

    before = timed_server.connections_accepted
    async with raw_target(server("ttft=0.01,itl=0.001,tokens=3,fail=2:503")) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=6))
    assert [s.ok for s in result.samples] == [True, False] * 3
    assert timed_server.connections_accepted - before == 1  # the error body read to its end


async def test_a_warm_up_that_opens_every_connection_leaves_none_to_the_measured_phase(
    server,
):
    """c=4 after 4 warm-up requests: the measured phase reuses their connections."""
    before = timed_server.connections_accepted
    async with raw_target(server("ttft=0.01,itl=0.001,tokens=3")) as target:
        spec = RunSpec("concurrency", concurrency=4, requests=12, warmup=4)
        result = await run(target, spec)
        assert [s.ok for s in result.samples] == [True] * 12
        assert target.connections_opened == 4
    assert result.connections_opened == 0
    assert timed_server.connections_accepted - before == 4


async def test_connects_in_the_measured_phase_are_counted(server):
    """A warm-up narrower than the concurrency, and a connection the server broke."""
    async with raw_target(server("ttft=0.01,itl=0.001,tokens=3")) as target:
        spec = RunSpec("concurrency", concurrency=4, requests=12, warmup=1)
        narrow = await run(target, spec)
    assert narrow.connections_opened == 3  # the warm-up opened one of the four

    # the server's 2nd and 4th answers break: the connection of each is not reused
    async with raw_target(server("ttft=0.01,itl=0.001,tokens=3,fail=2:break")) as target:
        spec = RunSpec("concurrency", concurrency=1, requests=3, warmup=1)
        result = await run(target, spec)
    assert [s.error for s in result.samples] == ["protocol", None, "protocol"]
    assert result.connections_opened == 1  # for the 3rd, after the 2nd broke
    assert connections_opened([[narrow], [result]]) == 4  # the report's: every run's


async def test_requests_are_timed_from_their_send_or_from_before_their_connect(
    server, autojump_clock, monkeypatch
):
    """Building a request is the client's time: out of its TTFT. A connect made for it
    is in it. (On a MockClock: a connect of 0.25 s, a request body 0.5 s to build.)"""
    build = rawhttp.openai_body

    def slow_build(request):
        autojump_clock.jump(0.5)
        return build(request)

    connect = trio.open_tcp_stream

    async def slow_connect(*args, **kwargs):
        await trio.sleep(0.25)
        return await connect(*args, **kwargs)

    monkeypatch.setattr(rawhttp, "openai_body", slow_build)
    monkeypatch.setattr(trio, "open_tcp_stream", slow_connect)
    async with raw_target(server("ttft=0.1,itl=0.01,tokens=2")) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=3))
    assert [s.ttft for s in result.samples] == [
        pytest.approx(0.25 + 0.1, abs=1e-9),  # a new connection
        pytest.approx(0.1, abs=1e-9),  # kept alive
        pytest.approx(0.1, abs=1e-9),
    ]


async def test_http_errors_are_counted_by_status_with_the_server_message(server):
    plan = "ttft=0.02,itl=0.005,tokens=4,fail=3:503"
    async with raw_target(server(plan)) as target:
        result = await run(target, RunSpec("concurrency", concurrency=2, requests=9))
    failed = [s for s in result.samples if not s.ok]
    assert [s.error for s in failed] == ["http_503"] * 3
    assert len([s for s in result.samples if s.ok]) == 6
    message = failed[0].message
    assert message.startswith("HTTP 503 X from POST /") and "\n" not in message
    assert message.endswith("/v1/chat/completions: scripted failure 503")

    async with httpx_target(server(plan)) as target:  # httpx words it the same
        reference = await run(target, RunSpec("concurrency", concurrency=1, requests=3))
    expected = reference.samples[-1].message
    assert expected.split(" from POST /")[0] == message.split(" from POST /")[0]
    assert expected.split("/v1/")[1] == message.split("/v1/")[1]


async def test_a_stream_broken_mid_way_is_a_protocol_error_as_with_httpx(server):
    plan = "ttft=0.02,itl=0.005,tokens=4,fail=2:break"
    before = timed_server.connections_accepted
    async with raw_target(server(plan)) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=4))
    assert [s.error for s in result.samples] == [None, "protocol"] * 2
    broken = result.samples[1]
    assert broken.first_at is not None and "broke mid-stream" in broken.message
    assert timed_server.connections_accepted - before == 2  # a broken one is not reused

    async with httpx_target(server(plan)) as target:
        reference = await run(target, RunSpec("concurrency", concurrency=1, requests=4))
    assert [s.error for s in reference.samples] == [s.error for s in result.samples]


async def test_a_refused_connection_is_a_connection_error():
    async with raw_target(f"http://127.0.0.1:{free_port()}/v1") as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=2))
    assert [s.error for s in result.samples] == ["connection"] * 2
    assert result.samples[0].message.startswith("cannot connect to http://127.0.0.1:")


async def test_the_idle_limit_is_a_timeout_of_the_target(server):
    async with raw_target(server("ttft=5,itl=0.01,tokens=2"), idle_timeout=0.1) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=1))
    (sample,) = result.samples
    assert sample.error == "timeout" and "--idle-timeout" in sample.message
    assert sample.first_at is None  # the server's first token never came


async def test_the_request_is_the_one_httpx_sends(nursery):
    """Same body bytes; the headers bench needs, and no Accept-Encoding."""
    received: list[tuple[list[str], bytes]] = []
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 14\r\n"
        b"\r\ndata: [DONE]\n\n"
    )

    async def handle(stream: trio.SocketStream) -> None:
        buffer = bytearray()
        async with stream:
            while True:
                while b"\r\n\r\n" not in buffer:
                    data = await stream.receive_some()
                    if not data:
                        return
                    buffer += data
                head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
                lines = head.decode().split("\r\n")
                length = next(
                    int(ln.split(":")[1])
                    for ln in lines
                    if ln.lower().startswith("content-length:")
                )
                while len(rest) < length:
                    rest += await stream.receive_some()
                buffer[:] = rest[length:]
                received.append((lines, rest[:length]))
                await stream.send_all(reply)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, handle, listeners)
    url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/base/v1/"
    item = workload(1)[0]
    async with raw_target(url) as target:
        await target.send(item, Measurement(trio.current_time()))
    async with httpx_target(url) as target:
        await target.send(item, Measurement(trio.current_time()))
    (raw_lines, raw_body), (httpx_lines, httpx_body) = received
    assert raw_body == httpx_body and json.loads(raw_body)["ignore_eos"] is True
    assert raw_lines[0] == httpx_lines[0] == "POST /base/v1/chat/completions HTTP/1.1"

    def headers(lines: list[str]) -> dict[str, str]:
        return {n.lower(): v.strip() for n, _, v in (ln.partition(":") for ln in lines[1:])}

    raw_headers, httpx_headers = headers(raw_lines), headers(httpx_lines)
    for name in ("host", "content-type", "content-length", "accept", "user-agent"):
        assert raw_headers[name] == httpx_headers[name], name
    assert "accept-encoding" not in raw_headers  # nothing to decompress


async def test_bench_reads_plain_http_lean_and_https_with_httpx(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ):
        monkeypatch.delenv(name, raising=False)

    def settings(url: str) -> Settings:
        return Settings(
            base_url=url,
            api_key="k",
            model="m",
            connect_timeout=5,
            idle_timeout=5,
            timeout=None,
            max_retries=0,
        )

    async with open_target(settings("http://127.0.0.1:9/v1")) as target:
        assert isinstance(target, RawHTTPTarget)
    async with open_target(settings("https://example.invalid/v1")) as target:
        assert isinstance(target, HTTPTarget)  # built, never connected
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")  # as httpx would use it
    async with open_target(settings("http://gpu.example:8000/v1")) as target:
        assert isinstance(target, HTTPTarget)
    with pytest.raises(UsageError, match="invalid base URL"):
        RawHTTPTarget("http://127.0.0.1:notaport/v1", None, connect_timeout=1, idle_timeout=1)


async def closing(nursery, **script) -> tuple[ClosingServer, str]:
    server = ClosingServer(**script)
    port = await nursery.start(server.serve)
    return server, f"http://127.0.0.1:{port}/v1"


async def test_a_kept_alive_connection_closed_under_a_request_is_retried_untimed(
    nursery, autojump_clock
):
    """Each connection serves one request, then drops the next 10 s after reading it.

    The request is sent again on a new connection and timed from there: its
    TTFT is the server's 0.5 s, not 10.5 s. (No deadline of the target's own,
    so that the mock clock jumps only to the server's.)
    """
    server, url = await closing(nursery, answers=1, drop_after=10, ttft=0.5)
    async with raw_target(url, idle_timeout=None) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=4))
    assert [s.error for s in result.samples] == [None] * 4
    assert server.dropped == 3 and server.answered == [1, 1, 1, 1]
    assert [s.ttft for s in result.samples] == pytest.approx([0.5] * 4)
    assert [s.e2e for s in result.samples] == pytest.approx([0.5] * 4)
    # the dropped attempts' 10 s: between one request's end and the next one's sending
    gaps = [b.sent_at - a.end_at for a, b in itertools.pairwise(result.samples)]
    assert gaps == pytest.approx([10] * 3)


async def test_a_request_is_sent_again_once_and_says_what_happened(nursery):
    """The new connection is dropped too: one retry only, and no "cannot connect"."""
    server, url = await closing(nursery, answers=[1, 0])
    async with raw_target(url) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=2))
    first, second = result.samples
    assert first.ok and second.error == "connection"
    assert server.answered == [1, 0] and server.dropped == 2  # no third connection
    assert second.message == (
        f"the server at {url} closed a kept-alive connection before answering; sent again "
        "on a new connection, it closed that one before answering too"
    )

    server, url = await closing(nursery, answers=0)  # a first request is not sent again
    async with raw_target(url) as target:
        result = await run(target, RunSpec("concurrency", concurrency=1, requests=1))
    assert server.dropped == 1
    assert result.samples[0].message == (
        f"the server at {url} closed the connection before answering"
    )


@pytest.mark.parametrize(
    "script",
    [{"close_header": True}, {"status_line": b"HTTP/1.0 200 OK"}],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_its_connection_is_never_followed_by_reuse(nursery, script):
    server, url = await closing(nursery, **script)  # it keeps the connection open anyway
    async with raw_target(url) as target:
        result = await run(target, RunSpec("concurrency", concurrency=2, requests=6))
    assert [s.ok for s in result.samples] == [True] * 6
    assert server.answered == [1] * 6


@pytest.mark.server
def test_llama_server_closing_kept_alive_connections_loses_no_request(
    run_cli,
    native_llama_server,  # noqa: F811
    tmp_path,
):
    """llama-server -np 4 closes a kept-alive connection just after an answer now and
    then (here about 2 requests in 100): the request that was sent on it in that moment
    failed with "cannot connect". Eight runs of 24 requests at -c 4, every one served."""
    report = tmp_path / "report.json"
    result = run_cli(
        "bench",
        "--base-url",
        native_llama_server,
        "--model",
        "smollm2",
        *["-c", "4"] * 8,
        "--requests",
        "24",
        "--prompt-tokens",
        "8",
        "--output-tokens",
        "4",
        "--json",
        str(report),
        timeout=600,
    )
    assert result.code == 0, result.stderr
    runs = json.loads(report.read_text())["runs"]
    assert [(run["requests_completed"], run["requests_failed"], run["errors"]) for run in runs] == [
        (24, 0, {})
    ] * 8


async def test_kernel_stamps_time_the_reads_and_samples_are_plausible(server):
    """On Linux with Trio's own clock, reads are stamped by the kernel (SO_TIMESTAMPNS)."""
    if kernel_clock() is None:
        pytest.skip("no kernel receive stamps here")
    async with raw_target(server("ttft=0.05,itl=0.01,tokens=5")) as target:
        assert target.timing_source == "kernel"
        started = trio.current_time()
        result = await run(target, RunSpec("concurrency", concurrency=2, requests=4))
        finished = trio.current_time()
    assert len(result.samples) == 4
    for s in result.samples:
        assert s.error is None
        # every stamp inside the run (it began after ``started``) and in order; the
        # first token no earlier than the plan's TTFT, each gap measured
        assert 0 <= s.sent_at <= s.first_at <= s.end_at <= finished - started
        assert s.ttft >= 0.05
        assert len(s.itl) == 4 and min(s.itl) >= 0 and sum(s.itl) > 0


async def test_kernel_stamp_of_a_read_spanning_segments():
    """Two segments read together: the stamp is the later segment's (the last skb copied)."""
    kernel = kernel_clock()
    if kernel is None:
        pytest.skip("no kernel receive stamps here")
    listener = (await trio.open_tcp_listeners(0, host="127.0.0.1"))[0]
    port = listener.socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    peer = await listener.accept()
    client.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    await peer.send_all(b"first")
    await trio.sleep(0.02)
    before_second = trio.current_time()
    await peer.send_all(b"second")
    await trio.sleep(0.02)
    data, ancillary, _, _ = await client.socket.recvmsg(65536, ANCILLARY_SIZE)
    read_at = trio.current_time()
    stamp = kernel.at(ancillary)
    assert data == b"firstsecond"
    assert stamp is not None
    assert before_second - kernel.error <= stamp <= read_at + kernel.error
    print(f"mapping error bound {kernel.error * 1e6:.2f} µs")
    for stream in (client, peer, listener):
        await stream.aclose()


def test_kernel_stamps_are_off_on_a_mock_clock():
    async def main() -> str:
        return RawHTTPTarget(
            "http://127.0.0.1:1/v1", None, connect_timeout=1, idle_timeout=1
        ).timing_source

    assert trio.run(main, clock=trio.testing.MockClock()) == "clock"
