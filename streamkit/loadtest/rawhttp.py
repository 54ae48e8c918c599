"""A lean HTTP/1.1 client for ``streamkit bench`` against a plain ``http://`` server.

Why: a profile of ``streamkit bench -c 64`` against ``tests/timed_server.py``
showed the httpx client spending ~150 µs of CPU per network read, most of it
in the httpx, httpcore and anyio layers and their context managers (h11, the
HTTP/1.1 parsing itself, ~10 µs). At ~3,200 reads/s that kept one process
50-70 % busy, and each read was timestamped late by the reads queued before
it: 28 ms p99 TTFT error, 6.3 ms p99 ITL error (bench/bench_accuracy.py).
Here a read is one ``recvmsg`` of the socket, timed the moment it returns;
h11 reads the answer's head, then the sans-IO ``protocol.http1_body``
(the body's framing, as the lean transport of every other command undoes
it) and ``OpenAIStreamDecoder``, and nothing else.

It does only what bench needs: one POST, a streamed answer, keep-alive. No
TLS, proxies, redirects or compression: ``https://`` base URLs use
``HTTPTarget`` over the httpx transport. (Every other command reads plain
``http://`` with ``providers/h11_transport.py``, which stamps nothing: here
each read is timed before it is parsed.) One retry: servers close idle
keep-alive connections on their own schedule (llama.cpp's ``llama-server``
does, with no ``Connection: close`` before), so a request sent on a
kept-alive connection the server closed before any byte of an answer is
sent again on a new connection. That failure is the client's
bad luck, not the server's latency: the request is timed from its second
sending, from before the connect, as a request that found no free
connection is, so its TTFT holds a TCP connect like theirs
and nothing of the attempt that was dropped; for an open-loop run the lost
time shows in the request's lag behind its schedule.

Each read is stamped by the kernel when it can be (kernelstamps.py: the
event loop's lag kept out of the figures), else by the Trio clock as it
returns. A request is timed (``Measurement.timed_from``) from the moment its
bytes go to the kernel, after the JSON body and h11's serialization of it
(0.1-0.25 ms of the client's CPU per request here, which were in every
TTFT), or, when it needs a new connection, from before the connect, which
is in its TTFT.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import socket
from urllib.parse import urlsplit

import h11
import trio

from streamkit import __version__
from streamkit.errors import (
    ConnectFailed,
    RequestTimeout,
    StreamkitError,
    one_line,
    redact,
)
from streamkit.loadtest.client import Measurement, error_type
from streamkit.loadtest.kernelstamps import (
    ANCILLARY_SIZE,
    SO_TIMESTAMPNS,
    KernelClock,
    kernel_clock,
)
from streamkit.loadtest.workload import Item
from streamkit.protocol.http1_body import BodyDecoder, BodyError, body_framing, keeps_alive
from streamkit.protocol.http_errors import ERROR_BODY_LIMIT, connection_error, status_message
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.urls import plain_http_address, public_url, url_secrets
from streamkit.protocol.wire import openai_body

READ_SIZE = 65536


class _Connection:
    """One keep-alive TCP connection, its HTTP/1.1 state and the answers it carried."""

    __slots__ = ("connecting_at", "http", "raw", "served", "stream")

    def __init__(self, stream: trio.SocketStream, connecting_at: float) -> None:
        self.stream = stream
        self.connecting_at = connecting_at  # when its connect began: its first request's time
        # the read loop's own handle on the socket (a duplicate of its descriptor, so
        # closed on its own): a read is one recvmsg after trio says it is readable,
        # not trio's try, fail, wait and try again, with a checkpoint after each
        self.raw = socket.socket(fileno=os.dup(stream.socket.fileno()))
        self.http = h11.Connection(h11.CLIENT)
        self.served = 0  # answers read to their end: more than 0, a kept-alive connection

    def closed_by_server(self) -> bool:
        """Readable while idle: the server closed it (or sent what it should not)."""
        poll = select.poll()
        poll.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(poll.poll(0))


class _NoAnswer(Exception):
    """The connection ended (closed or reset) before any byte of the answer arrived."""

    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause
        self.reused = False  # it was a kept-alive connection

    def said(self, what: str) -> str:
        return f"{what}: {self.cause}" if self.cause else what


class RawHTTPTarget:
    """An OpenAI-compatible server at a plain ``http://`` base URL, over h11.

    The measurement and its failures are ``HTTPTarget``'s: ``http_<status>``
    with the server's message on one line, ``connection`` when nothing was
    received, ``protocol`` when a stream broke after its first token,
    ``timeout`` for the connect and idle limits (cancel scopes of this
    target; the whole-request limit is the caller's). Each request in flight
    has a connection of its own, taken from a free list and put back when
    its response has been read to the end, so that after warm-up no TCP
    connect falls inside a TTFT; never put back after an answer that ends
    its connection (``Connection: close``, HTTP/1.0: h11's keep-alive
    rules). A request the server dropped on a kept-alive connection before
    answering is sent again once, on a new connection (see the module's
    docstring for how it is timed).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float | None,
        idle_timeout: float | None,
    ) -> None:
        host, port = plain_http_address(base_url)
        parts = urlsplit(base_url)
        self.url = public_url(base_url.rstrip("/"))
        self._host, self._port = host, port
        self._prefix = parts.path.rstrip("/") + "/"
        self._query = f"?{parts.query}" if parts.query else ""  # after the API path
        self._headers = [
            ("Host", parts.netloc.rpartition("@")[2]),
            ("User-Agent", f"streamkit/{__version__}"),
            ("Accept", "text/event-stream"),
            ("Content-Type", "application/json"),
        ]
        if api_key:
            self._headers.append(("Authorization", f"Bearer {api_key}"))
        self._secrets = [api_key, *url_secrets(base_url)]
        self._connect_timeout = connect_timeout if connect_timeout is not None else math.inf
        self._idle_timeout = idle_timeout if idle_timeout is not None else math.inf
        self._free: list[_Connection] = []
        self._open: set[_Connection] = set()
        self.connections_opened = 0  # TCP connects so far (the report's, per measured phase)
        self._kernel: KernelClock | None = None
        self._kernel_checked = False

    @property
    def timing_source(self) -> str:
        """``kernel`` (receive stamps) or ``clock`` (the Trio clock after each read)."""
        return "kernel" if self._stamps() is not None else "clock"

    def _stamps(self) -> KernelClock | None:
        if not self._kernel_checked:  # decided in the run, on its clock
            self._kernel, self._kernel_checked = kernel_clock(), True
        return self._kernel

    async def aclose(self) -> None:
        for connection in list(self._open):
            await self._discard(connection)

    async def send(self, item: Item, measurement: Measurement) -> None:
        path, body = openai_body(item.request)
        body.update(item.extra_body())
        target = self._prefix + path + self._query
        # what httpx's json= sends
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        try:
            try:
                await self._attempt(target, raw, measurement, fresh=False)
            except _NoAnswer as dropped:
                if not dropped.reused:
                    raise ConnectFailed(
                        dropped.said(
                            f"the server at {self.url} closed the connection before answering"
                        ),
                        retryable=True,
                    ) from None
                # a kept-alive connection closed under it: once more, on a new one
                try:
                    await self._attempt(target, raw, measurement, fresh=True)
                except _NoAnswer as again:
                    raise ConnectFailed(
                        again.said(
                            f"the server at {self.url} closed a kept-alive connection before "
                            "answering; sent again on a new connection, it closed that one "
                            "before answering too"
                        ),
                        retryable=True,
                    ) from None
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            measurement.end = trio.current_time()
            error = self._translate(exc, measurement.first is not None)
            measurement.fail(error.kind, error.message)
        except StreamkitError as exc:  # a timeout of ours, an undecodable event stream
            measurement.end = trio.current_time()
            measurement.fail(exc.kind, exc.message)

    async def _attempt(
        self, target: str, raw: bytes, measurement: Measurement, *, fresh: bool
    ) -> None:
        """One exchange on a free connection (a new one if ``fresh``), put back if reusable."""
        connection = await self._connection(fresh=fresh)
        reusable = False
        try:
            reusable = await self._exchange(connection, target, raw, measurement)
        except _NoAnswer as dropped:
            dropped.reused = connection.served > 0
            raise
        finally:
            if reusable:
                connection.served += 1
                self._free.append(connection)
            else:
                await self._discard(connection)

    async def _connection(self, *, fresh: bool = False) -> _Connection:
        """A free keep-alive connection (unless ``fresh``), else a new one."""
        while self._free and not fresh:
            connection = self._free.pop()
            if not connection.closed_by_server():
                return connection
            await self._discard(connection)
        connecting_at = trio.current_time()
        with trio.move_on_after(self._connect_timeout) as waited:
            stream = await trio.open_tcp_stream(self._host, self._port)
        if waited.cancelled_caught:
            raise RequestTimeout(f"connecting to {self.url} timed out (--connect-timeout)")
        self.connections_opened += 1
        if self._stamps() is not None:
            with contextlib.suppress(OSError):  # else its reads bring no stamp: the clock
                stream.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        connection = _Connection(stream, connecting_at)
        self._open.add(connection)
        return connection

    async def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        connection.raw.close()
        await trio.aclose_forcefully(connection.stream)

    async def _exchange(
        self, connection: _Connection, target: str, raw: bytes, measurement: Measurement
    ) -> bool:
        """One request and its whole response; True if the connection can serve another."""
        http, stream = connection.http, connection.stream
        request = h11.Request(
            method="POST",
            target=target,
            headers=[*self._headers, ("Content-Length", str(len(raw)))],
        )
        out = http.send(request) + http.send(h11.Data(data=raw)) + http.send(h11.EndOfMessage())
        # timed from here, as its bytes go out; on a new connection, from before the
        # connect made for it
        measurement.timed_from(
            trio.current_time() if connection.served else connection.connecting_at
        )
        try:
            with trio.move_on_after(self._idle_timeout) as waited:
                await stream.send_all(out)
        except (OSError, trio.BrokenResourceError) as exc:
            raise _NoAnswer(self._cause(exc)) from exc
        if waited.cancelled_caught:
            raise self._idle()
        # one cancel scope for the whole answer, its deadline moved on at each read: a
        # scope entered and left per read was a good part of the loop's cost
        with trio.CancelScope() as waited:
            return await self._read_answer(
                connection, measurement, target, self._stamps(), waited, self._idle_timeout
            )
        raise self._idle()

    async def _read_answer(
        self,
        connection: _Connection,
        measurement: Measurement,
        target: str,
        kernel: KernelClock | None,
        waited: trio.CancelScope,
        idle: float,
    ) -> bool:
        """The response, read to its end under ``waited`` (the idle limit, per read)."""
        http, raw, clock = connection.http, connection.raw, trio.current_time
        ancillary_size = 0 if kernel is None else ANCILLARY_SIZE
        wait_readable = trio.lowlevel.wait_readable
        decoder = OpenAIStreamDecoder()
        response: h11.Response | None = None  # h11 reads the head; the body is framed here
        body: BodyDecoder | None = None
        keep_alive = False
        error_body = b""
        answered = False  # a byte of the answer arrived
        while True:
            waited.deadline = clock() + idle
            try:
                await wait_readable(raw)
                try:
                    data, ancillary, _, _ = raw.recvmsg(READ_SIZE, ancillary_size)
                except BlockingIOError:  # readable, then not (rare): wait again
                    continue
                stamp = None if kernel is None else kernel.at(ancillary)
                at = clock() if stamp is None else stamp
            except (OSError, trio.BrokenResourceError) as exc:
                if answered:
                    raise
                raise _NoAnswer(self._cause(exc)) from exc
            if not answered:
                if not data:
                    raise _NoAnswer("")
                answered = True
            closed = not data
            if body is None:
                http.receive_data(data)
                response = _head(http)
                if response is None:
                    continue
                framing = body_framing("POST", response.status_code, response.headers)
                body = BodyDecoder(framing)
                keep_alive = keeps_alive(response.http_version, response.headers)
                data, closed = http.trailing_data
            try:
                piece = body.feed(data) if data else b""
                if closed:
                    piece += body.close()
            except BodyError as exc:
                raise h11.RemoteProtocolError(str(exc)) from None
            if piece and response.status_code >= 400:
                error_body += piece
                if len(error_body) >= ERROR_BODY_LIMIT:
                    self._fail_status(measurement, response, target, error_body)
                    return False
            elif piece and measurement.end is None:  # after [DONE]: read to the body's
                # end, so that the connection serves the next request
                measurement.feed(decoder.feed(piece), at)
                if decoder.chunks.done:
                    measurement.end = at
            if not body.ended:
                continue
            if response.status_code >= 400:
                self._fail_status(measurement, response, target, error_body)
            else:
                if measurement.end is None:
                    measurement.feed(decoder.close(), clock())
                if measurement.end is None:
                    measurement.end = clock()
            if keep_alive and not closed and not body.leftover:
                connection.http = h11.Connection(h11.CLIENT)  # h11 saw only the head
                return True
            return False

    def _fail_status(
        self, measurement: Measurement, response: h11.Response, target: str, raw: bytes
    ) -> None:
        """An HTTP error status, its message as ``OpenAIHTTPProducer`` words it."""
        message, _ = status_message(
            response.status_code, response.reason.decode("latin-1"), f"POST {target}", raw
        )
        measurement.end = trio.current_time()
        measurement.fail(error_type("http", response.status_code), redact(message, self._secrets))

    def _idle(self) -> RequestTimeout:
        return RequestTimeout(f"no data from {self.url} within the idle timeout (--idle-timeout)")

    def _translate(self, exc: Exception, sent_any: bool) -> StreamkitError:
        """A socket or HTTP/1.1 failure, in ``OpenAIHTTPProducer._translate``'s words."""
        return connection_error(self.url, self._cause(exc), sent_any)

    @staticmethod
    def _cause(exc: Exception) -> str:
        """What the socket said (a ``BrokenResourceError`` wraps the ``OSError``)."""
        cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else None
        return one_line(cause or exc)


def _head(http: h11.Connection) -> h11.Response | None:
    """The answer's head once h11 has all of it (informational answers skipped)."""
    while True:
        event = http.next_event()
        if type(event) is h11.Response:
            return event
        if event is h11.NEED_DATA:
            return None
        if type(event) is h11.ConnectionClosed or event is h11.PAUSED:
            raise h11.RemoteProtocolError("the server closed the connection early")
        # else: an informational (1xx) answer
