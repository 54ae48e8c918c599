"""The two transports are one to the producer: same bytes out, same words for failures.

The producer runs over each transport in turn against the same scripted
servers (real sockets); what the user sees -- the reply, its error, the
``--debug`` line -- must be byte-identical but for the milliseconds. Then
what only the lean transport does: keep connections alive, send a request
again once when a kept-alive connection was closed under it, never reuse a
connection its answer ended; and the choice between the two, proxies from
the environment included.
"""

from __future__ import annotations

import re
import uuid

import pytest
import trio
from closing_server import ClosingServer

from streamkit.providers.h11_transport import H11Transport
from streamkit.providers.httpx_transport import HttpxTransport
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport, proxied
from streamkit.request import GenerationRequest, Message

from fault_server import serve

REQUEST = GenerationRequest("chat", "m", messages=(Message("user", "hi"),))


async def produce(
    url: str,
    *,
    lean: bool,
    idle: float = 5.0,
    key: str | None = "key-1234",
    request: GenerationRequest = REQUEST,
) -> tuple[str, object, list[str]]:
    """One request through the producer over one transport: text, error, debug lines."""
    from streamkit.pipeline.stream import run_stream

    lines: list[str] = []
    async with build_transport(
        url, key, connect_timeout=5, idle_timeout=idle, lean=lean
    ) as transport:
        producer = OpenAIHTTPProducer(transport, api_key=key, max_retries=0, debug=lines.append)
        reply = await run_stream(lambda send: producer.stream(request, send), [])
    error = reply.error and (reply.error.kind, reply.error.message, reply.error.status)
    return reply.text, error, [re.sub(r"\d+ ms", "_ ms", line) for line in lines]


@pytest.mark.parametrize(
    "scenario",
    [
        "ok",
        "always-500",
        "401",
        "drop",
        "malformed",
        "no-done",
        "html",
        "whole-chat",
        "odd-split",
        "error-event",
        "nowhere",
    ],
)
async def test_debug_and_error_output_is_the_same_over_both(nursery, scenario):
    port = await nursery.start(serve)
    url = f"http://127.0.0.1:{port}/{scenario}/{uuid.uuid4().hex}/v1"
    lean, httpx = await produce(url, lean=True), await produce(url, lean=False)
    assert lean == httpx
    assert lean[2] and lean[2][0].startswith(f"POST {url}/chat/completions -> ")


async def test_a_refused_connection_and_an_idle_stream_read_the_same(nursery):
    with trio.socket.socket() as probe:  # a port nobody listens on
        await probe.bind(("127.0.0.1", 0))
        refused = f"http://127.0.0.1:{probe.getsockname()[1]}/v1"
    lean, httpx = await produce(refused, lean=True), await produce(refused, lean=False)
    assert lean == httpx and lean[1][0] == "connection"
    assert "ConnectError: all attempts to connect" in lean[2][0]

    port = await nursery.start(serve)
    url = f"http://127.0.0.1:{port}/stall/{uuid.uuid4().hex}/v1"
    lean, httpx = await produce(url, lean=True, idle=0.3), await produce(url, lean=False, idle=0.3)
    assert lean == httpx and lean[1][0] == "timeout"
    assert lean[0] == "before the stall" and "ReadTimeout" in lean[2][0]


async def test_the_request_bytes_are_the_same_over_both(nursery):
    """The whole request, head and body, for a stream and for a JSON request."""
    received: list[bytes] = []
    reply = (
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n"
        b'\r\n{"data":[]}'
    )

    async def handle(stream: trio.SocketStream) -> None:
        async with stream:
            buffer = b""
            while b"\r\n\r\n" not in buffer:
                buffer += await stream.receive_some()
            head, _, body = buffer.partition(b"\r\n\r\n")
            length = re.search(rb"(?i)content-length: (\d+)", head)
            while length and len(body) < int(length[1]):
                body += await stream.receive_some()
            received.append(head + b"\r\n\r\n" + body)
            await stream.send_all(reply)

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    nursery.start_soon(trio.serve_listeners, handle, listeners)
    port = listeners[0].socket.getsockname()[1]
    for base in (
        f"http://127.0.0.1:{port}/base/v1?api-version=2",
        f"http://user:p%40ss@127.0.0.1:{port}/v1",
    ):
        for lean in (True, False):
            async with build_transport(
                base, "key-1", connect_timeout=5, idle_timeout=5, lean=lean
            ) as transport:
                producer = OpenAIHTTPProducer(transport, api_key="key-1", max_retries=0)
                await produce(base, lean=lean, key="key-1")
                await producer.request_json("POST", "completions", {"prompt": "é", "n": 1})
                await producer.list_models()
    assert len(received) == 12
    for n in range(0, 12, 6):
        assert received[n : n + 3] == received[n + 3 : n + 6]
    assert received[0].startswith(
        b"POST /base/v1/chat/completions?api-version=2 HTTP/1.1\r\nHost: 127.0.0.1:"
    )
    assert b"\r\nAccept-Encoding: identity\r\n" in received[0]
    assert b"Authorization: Basic dXNlcjpwQHNz\r\n" in received[6]  # user:p@ss, as httpx


async def test_connections_are_kept_alive_between_requests(nursery):
    server = ClosingServer()
    port = await nursery.start(server.serve)
    async with H11Transport(
        f"http://127.0.0.1:{port}/v1", None, connect_timeout=5, idle_timeout=5
    ) as transport:
        producer = OpenAIHTTPProducer(transport, max_retries=0)
        for _ in range(3):
            text, error = await _one(producer)
            assert (text, error) == ("Hello, world", None)
    assert server.answered == [3]


async def test_a_kept_alive_connection_closed_under_a_request_is_sent_again_once(nursery):
    server = ClosingServer(answers=[1, 1, 0])
    port = await nursery.start(server.serve)
    async with H11Transport(
        f"http://127.0.0.1:{port}/v1", None, connect_timeout=5, idle_timeout=5
    ) as transport:
        producer = OpenAIHTTPProducer(transport, max_retries=0)
        assert await _one(producer) == ("Hello, world", None)
        assert await _one(producer) == ("Hello, world", None)  # on a second connection
        assert server.dropped == 1
        error = (await _one(producer))[1]  # dropped on the second, then on a new one
    assert server.answered == [1, 1, 0] and server.dropped == 3
    assert error == (
        "connection",
        f"cannot connect to http://127.0.0.1:{port}/v1: "
        "Server disconnected without sending a response.",
    )


@pytest.mark.parametrize(
    "script",
    [{"close_header": True}, {"status_line": b"HTTP/1.0 200 OK"}],
    ids=["connection-close", "http-1.0"],
)
async def test_an_answer_that_ends_its_connection_is_never_followed_by_reuse(nursery, script):
    server = ClosingServer(**script)  # it keeps the connection open anyway
    port = await nursery.start(server.serve)
    async with H11Transport(
        f"http://127.0.0.1:{port}/v1", None, connect_timeout=5, idle_timeout=5
    ) as transport:
        producer = OpenAIHTTPProducer(transport, max_retries=0)
        for _ in range(3):
            assert await _one(producer) == ("Hello, world", None)
    assert server.answered == [1, 1, 1]


async def _one(producer: OpenAIHTTPProducer) -> tuple[str, object]:
    from streamkit.pipeline.stream import run_stream

    reply = await run_stream(lambda send: producer.stream(REQUEST, send), [])
    return reply.text, reply.error and (reply.error.kind, reply.error.message)


def test_plain_http_is_lean_unless_a_proxy_applies_as_httpx_applies_it(monkeypatch):
    for name in (
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
        "no_proxy",
    ):
        monkeypatch.delenv(name, raising=False)

    def kind(url: str) -> type:
        return type(build_transport(url, None, connect_timeout=1, idle_timeout=1))

    assert kind("http://127.0.0.1:8000/v1") is H11Transport
    assert kind("https://api.example.com/v1") is HttpxTransport
    monkeypatch.setenv("HTTP_PROXY", "http://proxy.example:3128")
    assert proxied("http://gpu.example:8000/v1")
    assert kind("http://gpu.example:8000/v1") is HttpxTransport
    monkeypatch.setenv("NO_PROXY", "gpu.example,127.0.0.1")
    assert kind("http://gpu.example:8000/v1") is H11Transport
    assert kind("http://127.0.0.1:8000/v1") is H11Transport
    assert kind("http://other.example/v1") is HttpxTransport
    monkeypatch.setenv("NO_PROXY", "*")
    assert kind("http://other.example/v1") is H11Transport
    monkeypatch.delenv("NO_PROXY")
    monkeypatch.delenv("HTTP_PROXY")
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")  # https only
    assert kind("http://other.example/v1") is H11Transport
