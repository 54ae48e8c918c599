"""Bare HTTP/1.1 over Trio sockets, for the scripted servers in ``tests/``.

The scripted servers (``fault_server``, ``timed_server``, ``token_server``)
need exact control of what goes on the wire -- when each chunk is written, a
stream cut before its terminating chunk -- so they speak HTTP themselves with
these helpers: ``read_request`` for a request (one per connection, or many on
a keep-alive connection that keeps a buffer), ``send_head`` / ``send_json`` /
``start_sse`` / ``send_piece`` / ``end_chunked`` / ``stream_pieces`` for the
answer, ``serve`` to listen, and ``run_program`` to run a server as a program
that prints ``PORT <n>``.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

import trio

Handler = Callable[[trio.SocketStream], Awaitable[None]]


class Receiver(Protocol):
    """What ``read_request`` reads from: a ``trio.SocketStream``, or a reader that also
    keeps when the bytes arrived (``arrivals.StampedReceiver``)."""

    async def receive_some(self, max_bytes: int | None = None) -> bytes: ...


class Sender(Protocol):
    """What the answers are written to: a ``trio.SocketStream``, or a writer that also
    keeps when the bytes left (``departures.StampedSender``)."""

    async def send_all(self, data: bytes) -> None: ...


@dataclass
class Request:
    method: str
    target: str
    headers: dict[str, str]  # names lower-cased
    body: bytes


async def read_request(stream: Receiver, buffer: bytearray | None = None) -> Request | None:
    """The next request on ``stream``: request line, headers, Content-Length body.

    ``None`` when the peer closes before a whole request has arrived. On a
    keep-alive connection pass the same ``buffer`` each time: what arrives
    after one request's body stays in it for the next.
    """
    if buffer is None:
        buffer = bytearray()
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some(65536)
        if not data:
            return None
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _ = request_line.split(" ", 2)
    headers = {}
    for line in lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = await stream.receive_some(65536)
        if not data:
            return None
        rest += data
    buffer[:] = rest[length:]
    return Request(method, target, headers, rest[:length])


async def send_head(
    stream: Sender, status: str, headers: Mapping[str, object], body: bytes = b""
) -> None:
    """The status line (``status`` is e.g. ``"200 OK"``) and headers, then ``body``, in
    one write."""
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers.items()]
    await stream.send_all(("\r\n".join(lines) + "\r\n\r\n").encode() + body)


def _connection(close: bool) -> dict[str, str]:
    return {"Connection": "close"} if close else {}


async def send_json(
    stream: Sender,
    status: str,
    body: object,
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = True,
) -> None:
    """A whole JSON answer; ``close``: say ``Connection: close`` (the caller closes)."""
    raw = json.dumps(body).encode()
    await send_head(
        stream,
        status,
        {
            "Content-Type": "application/json",
            "Content-Length": str(len(raw)),
            **_connection(close),
            **(headers or {}),
        },
        raw,
    )


async def start_sse(
    stream: Sender,
    status: str = "200 OK",
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = True,
) -> None:
    """The head of a chunked ``text/event-stream`` answer; the body follows in pieces."""
    await send_head(
        stream,
        status,
        {
            "Content-Type": "text/event-stream",
            "Transfer-Encoding": "chunked",
            **_connection(close),
            **(headers or {}),
        },
    )


async def send_piece(stream: Sender, data: bytes) -> None:
    """One chunk of a chunked body (``data`` must not be empty)."""
    await stream.send_all(b"%x\r\n%b\r\n" % (len(data), data))


async def end_chunked(stream: Sender) -> None:
    """The terminating zero-length chunk; a stream cut short just never sends it."""
    await stream.send_all(b"0\r\n\r\n")


async def stream_pieces(
    stream: Sender,
    pieces: list[bytes],
    headers: Mapping[str, str] | None = None,
    *,
    close: bool = True,
) -> None:
    """A whole ``text/event-stream`` answer, a chunk per piece; ``close``: say
    ``Connection: close`` (the caller closes)."""
    await start_sse(stream, headers=headers, close=close)
    for piece in pieces:
        await send_piece(stream, piece)
    await end_chunked(stream)


async def serve(
    handler: Handler,
    *,
    backlog: int | None = None,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``handler`` (one call per connection) on a free port of 127.0.0.1; for
    ``nursery.start``, which returns the port."""
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1", backlog=backlog)
    task_status.started(listeners[0].socket.getsockname()[1])
    await trio.serve_listeners(handler, listeners)


def run_program(handler: Handler, *, backlog: int | None = None) -> None:
    """Run as a program: serve ``handler``, print ``PORT <n>`` once listening, and
    serve until interrupted."""

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            port = await nursery.start(functools.partial(serve, handler, backlog=backlog))
            print(f"PORT {port}", flush=True)

    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
