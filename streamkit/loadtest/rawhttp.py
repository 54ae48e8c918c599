"""A lean HTTP/1.1 client for ``streamkit bench`` against a plain ``http://`` server.

Why: a profile of ``streamkit bench -c 64`` against ``tests/timed_server.py``
showed the httpx client spending ~150 µs of CPU per network read, most of it
in the httpx, httpcore and anyio layers and their context managers (h11, the
HTTP/1.1 parsing itself, ~10 µs). At ~3,200 reads/s that kept one process
50-70 % busy, and each read was timestamped late by the reads queued before
it: 28 ms p99 TTFT error, 6.3 ms p99 ITL error (bench/bench_accuracy.py).
Here a read is ``trio.SocketStream.receive_some``, timed the moment it
returns, then h11 and the sans-IO ``OpenAIStreamDecoder``, and nothing else.

It does only what bench needs: one POST, a streamed answer, keep-alive. No
TLS, proxies, redirects, retries or compression: ``https://`` base URLs keep
using the httpx ``HTTPTarget``, as every other command does.
"""

from __future__ import annotations

import json
import math
import select
from urllib.parse import urlsplit

import h11
import trio

from streamkit import __version__
from streamkit.errors import (
    RequestTimeout,
    StreamkitError,
    UsageError,
    one_line,
    redact,
)
from streamkit.loadtest.client import Measurement, error_type
from streamkit.loadtest.workload import Item
from streamkit.protocol.http_errors import ERROR_BODY_LIMIT, connection_error, status_message
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.urls import public_url, url_secrets
from streamkit.protocol.wire import openai_body

READ_SIZE = 65536


class _Connection:
    """One keep-alive TCP connection and its HTTP/1.1 state."""

    __slots__ = ("http", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.http = h11.Connection(h11.CLIENT)

    def closed_by_server(self) -> bool:
        """Readable while idle: the server closed it (or sent what it should not)."""
        poll = select.poll()
        poll.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(poll.poll(0))


class RawHTTPTarget:
    """An OpenAI-compatible server at a plain ``http://`` base URL, over h11.

    The measurement and its failures are ``HTTPTarget``'s: ``http_<status>``
    with the server's message on one line, ``connection`` when nothing was
    received, ``protocol`` when a stream broke after its first token,
    ``timeout`` for the connect and idle limits (cancel scopes of this
    target; the whole-request limit is the caller's). Each request in flight
    has a connection of its own, taken from a free list and put back when
    its response has been read to the end, so that after warm-up no TCP
    connect falls inside a TTFT.
    """

    def __init__(
        self, base_url: str, api_key: str | None, *,
        connect_timeout: float | None, idle_timeout: float | None,
    ) -> None:
        parts = urlsplit(base_url)
        try:
            port = parts.port or 80
        except ValueError as exc:
            raise UsageError(f"invalid base URL {public_url(base_url)!r}: {exc}") from None
        if parts.scheme != "http" or not parts.hostname:
            raise UsageError(f"invalid base URL {public_url(base_url)!r}: "
                             "not http://host[:port]/path")
        self.url = public_url(base_url.rstrip("/"))
        self._host, self._port = parts.hostname, port
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

    async def aclose(self) -> None:
        for connection in list(self._open):
            await self._discard(connection)

    async def send(self, item: Item, measurement: Measurement) -> None:
        path, body = openai_body(item.request)
        body.update(item.extra_body())
        target = self._prefix + path + self._query
        # what httpx's json= sends
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"),
                         allow_nan=False).encode()
        connection = None
        reusable = False
        try:
            connection = await self._connection()
            reusable = await self._exchange(connection, target, raw, measurement)
        except (OSError, trio.BrokenResourceError, h11.ProtocolError) as exc:
            measurement.end = trio.current_time()
            error = self._translate(exc, measurement.first is not None)
            measurement.fail(error.kind, error.message)
        except StreamkitError as exc:  # a timeout of ours, an undecodable event stream
            measurement.end = trio.current_time()
            measurement.fail(exc.kind, exc.message)
        finally:
            if connection is not None:
                if reusable:
                    self._free.append(connection)
                else:
                    await self._discard(connection)

    async def _connection(self) -> _Connection:
        """A free keep-alive connection, else a new one."""
        while self._free:
            connection = self._free.pop()
            if not connection.closed_by_server():
                return connection
            await self._discard(connection)
        with trio.move_on_after(self._connect_timeout) as waited:
            stream = await trio.open_tcp_stream(self._host, self._port)
        if waited.cancelled_caught:
            raise RequestTimeout(f"connecting to {self.url} timed out (--connect-timeout)")
        connection = _Connection(stream)
        self._open.add(connection)
        return connection

    async def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        await trio.aclose_forcefully(connection.stream)

    async def _exchange(
        self, connection: _Connection, target: str, raw: bytes, measurement: Measurement
    ) -> bool:
        """One request and its whole response; True if the connection can serve another."""
        http, stream, clock = connection.http, connection.stream, trio.current_time
        request = h11.Request(method="POST", target=target,
                              headers=[*self._headers, ("Content-Length", str(len(raw)))])
        out = http.send(request) + http.send(h11.Data(data=raw)) + http.send(h11.EndOfMessage())
        with trio.move_on_after(self._idle_timeout) as waited:
            await stream.send_all(out)
        if waited.cancelled_caught:
            raise self._idle()
        decoder = OpenAIStreamDecoder()
        response: h11.Response | None = None
        error_body = b""
        while True:
            with trio.move_on_after(self._idle_timeout) as waited:
                data = await stream.receive_some(READ_SIZE)
                at = clock()
            if waited.cancelled_caught:
                raise self._idle()
            http.receive_data(data)
            while True:
                event = http.next_event()
                kind = type(event)
                if kind is h11.Data:
                    if response is not None and response.status_code >= 400:
                        error_body += event.data
                        if len(error_body) >= ERROR_BODY_LIMIT:
                            self._fail_status(measurement, response, target, error_body)
                            return False
                    elif measurement.end is None:  # after [DONE]: read to the body's end,
                        # so that the connection serves the next request
                        measurement.feed(decoder.feed(bytes(event.data)), at)
                        if decoder.chunks.done:
                            measurement.end = at
                elif event is h11.NEED_DATA:
                    break
                elif kind is h11.Response:
                    response = event
                elif kind is h11.EndOfMessage:
                    if response is not None and response.status_code >= 400:
                        self._fail_status(measurement, response, target, error_body)
                    else:
                        if measurement.end is None:
                            measurement.feed(decoder.close(), clock())
                        if measurement.end is None:
                            measurement.end = clock()
                    if http.our_state is h11.DONE and http.their_state is h11.DONE:
                        http.start_next_cycle()
                        return True
                    return False
                elif kind is h11.ConnectionClosed or event is h11.PAUSED:
                    raise h11.RemoteProtocolError("the server closed the connection early")
                # else: an informational (1xx) response

    def _fail_status(
        self, measurement: Measurement, response: h11.Response, target: str, raw: bytes
    ) -> None:
        """An HTTP error status, its message as ``OpenAIHTTPProducer`` words it."""
        message, _ = status_message(response.status_code, response.reason.decode("latin-1"),
                                    f"POST {target}", raw)
        measurement.end = trio.current_time()
        measurement.fail(error_type("http", response.status_code),
                         redact(message, self._secrets))

    def _idle(self) -> RequestTimeout:
        return RequestTimeout(f"no data from {self.url} within the idle timeout (--idle-timeout)")

    def _translate(self, exc: Exception, sent_any: bool) -> StreamkitError:
        """A socket or HTTP/1.1 failure, in ``OpenAIHTTPProducer._translate``'s words."""
        cause = exc.__cause__ if isinstance(exc, trio.BrokenResourceError) else None
        return connection_error(self.url, one_line(cause or exc), sent_any)
