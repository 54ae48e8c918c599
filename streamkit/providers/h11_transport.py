"""The lean transport: HTTP/1.1 with h11 on Trio sockets, connections kept alive.

Why: at ``-j 256`` a batch line cost 1.2-1.8 ms of client CPU, half of it
in the httpx, httpcore and anyio layers around each network read. Here a
read is one ``recv`` of the socket; h11 (itself sans-IO) writes the request
and reads the answer's head, and ``protocol.http1_body`` undoes the body's
framing, so the body's pieces from one read go up as one: one decode and
one batch a read.

It speaks for plain ``http://`` servers reached directly (transport.py picks
it) and fails the way httpx does, with the same classes and messages
(httpcore's Trio backend is the model): ``ConnectError``/``ConnectTimeout``
for the connect, ``ReadTimeout``/``WriteTimeout`` for a read or write that
took longer than the idle timeout, ``ReadError`` for a broken connection,
``RemoteProtocolError`` for what h11 refuses or a connection closed before
its answer. A write that fails is not reported by itself: the answer is
read anyway, as httpcore does (a server may refuse a request early).

Connections: each request takes a free kept-alive connection (the most
recently used) or opens one, and puts it back when its answer was read to
the end and h11 says the connection may serve another. A connection the
server closed while idle is seen (readable) and dropped before use; one it
closed just as the request went out, before any byte of an answer, is the
client's bad luck (llama.cpp's ``llama-server`` closes idle connections on
its own schedule): the request is sent again at once, once, on a new
connection -- nothing of it reached the model.
"""

from __future__ import annotations

import math
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import h11
import trio
from h11._headers import Headers as _H11Headers

from streamkit.protocol.http1_body import BodyDecoder, BodyError, body_framing, keeps_alive
from streamkit.protocol.urls import plain_http_address
from streamkit.providers.transport import (
    ConnectError,
    ConnectTimeout,
    Headers,
    ReadError,
    ReadTimeout,
    RemoteProtocolError,
    Response,
    WriteTimeout,
    merged,
    request_headers,
)

READ_SIZE = 65536  # httpcore's
DRAIN_S = 0.05  # after a body left unread: how long its end may take to be reused
_STREAM_ERRORS = (trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class _Connection:
    """One TCP connection, its HTTP/1.1 state, and whether it may serve another request."""

    __slots__ = ("_idle_poll", "http", "reusable", "served", "stream")

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.http = h11.Connection(h11.CLIENT)
        self.served = 0  # answers read to their end on it
        self.reusable = False
        self._idle_poll: select.poll | None = None  # made at the first reuse, kept

    def closed_by_server(self) -> bool:
        """Readable while idle: the server closed it (or sent what it should not)."""
        if self._idle_poll is None:
            self._idle_poll = select.poll()
            self._idle_poll.register(self.stream.socket.fileno(), select.POLLIN)
        return bool(self._idle_poll.poll(0))


class _Unanswered(Exception):
    """The connection ended before any byte of the answer arrived: ``error`` says how."""

    def __init__(self, error: Exception | None = None) -> None:
        super().__init__()
        self.error = error or RemoteProtocolError("Server disconnected without sending a response.")


class H11Transport:
    """A plain ``http://`` base URL over h11, with a keep-alive free list."""

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
        self.url = base_url
        self._host, self._port = host, port
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        self._headers = [
            ("Host", host if port == 80 else f"{host}:{port}"),
            *request_headers(base_url, api_key),
        ]
        self._validated: dict[tuple[tuple[str, str], ...], list] = {}
        self._prefix = parts.path.rstrip("/") + "/"
        self._query = f"?{parts.query}" if parts.query else ""  # after the API path
        self._connect_timeout = math.inf if connect_timeout is None else connect_timeout
        self._idle_timeout = math.inf if idle_timeout is None else idle_timeout
        self._free: list[_Connection] = []
        self._open: set[_Connection] = set()

    async def __aenter__(self) -> H11Transport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for connection in list(self._open):
            await self._discard(connection)

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None = None, headers: Headers = ()
    ) -> AsyncIterator[Response]:
        request = h11.Request(
            method=method,
            target=self._prefix + path.lstrip("/") + self._query,
            headers=self._head(headers, body),
        )
        connection = await self._connection()
        try:
            head = await self._exchange(connection, request, body)
        except _Unanswered as dropped:
            await self._discard(connection)
            if not connection.served:
                raise dropped.error from None
            connection = await self._connection(fresh=True)  # once more, on a new one
            try:
                head = await self._exchange(connection, request, body)
            except _Unanswered as again:
                await self._discard(connection)
                raise again.error from None
            except BaseException:
                await self._discard(connection)
                raise
        except BaseException:
            await self._discard(connection)
            raise
        start, closed = connection.http.trailing_data  # what came after the head
        reader = _Body(
            self,
            connection,
            BodyDecoder(body_framing(method, head.status_code, head.headers)),
            keep_alive=keeps_alive(head.http_version, head.headers),
            start=start,
            closed=closed,
        )
        try:
            yield Response(
                head.status_code,
                head.reason.decode("latin-1"),
                [(k.decode("latin-1"), v.decode("latin-1")) for k, v in head.headers],
                reader,
            )
            if not connection.reusable:
                await reader.drain()
        finally:
            if connection.reusable:
                connection.served += 1
                connection.reusable = False
                connection.http = h11.Connection(h11.CLIENT)  # h11 saw only the head
                self._free.append(connection)
            else:
                await self._discard(connection)

    def _head(self, extra: Headers, body: bytes | None) -> _H11Headers:
        """The request's headers, validated by h11 once per set of ``extra`` headers.

        h11 checks every header of every request (a tenth of a batch line's
        CPU); only Content-Length changes between the requests of a set, and
        it is digits, so the checked rest is kept and the length added as h11
        would store it (its ``Headers`` of (raw name, lower name, value)).
        """
        key = tuple(extra)
        items = self._validated.get(key)
        if items is None:
            checked = h11.Request(
                method="GET", target="/", headers=merged(self._headers, extra)
            ).headers
            items = self._validated[key] = list(checked._full_items)
        if body is None:
            return _H11Headers(items)
        return _H11Headers(
            [*items, (b"Content-Length", b"content-length", str(len(body)).encode())]
        )

    async def _connection(self, *, fresh: bool = False) -> _Connection:
        """A free keep-alive connection (unless ``fresh``), else a new one."""
        while self._free and not fresh:
            connection = self._free.pop()
            if not connection.closed_by_server():
                return connection
            await self._discard(connection)
        try:
            with trio.fail_after(self._connect_timeout):
                stream = await trio.open_tcp_stream(self._host, self._port)
        except trio.TooSlowError as exc:
            raise ConnectTimeout(str(exc)) from exc
        except _STREAM_ERRORS as exc:
            raise ConnectError(str(exc)) from exc
        connection = _Connection(stream)
        self._open.add(connection)
        return connection

    async def _discard(self, connection: _Connection) -> None:
        self._open.discard(connection)
        await trio.aclose_forcefully(connection.stream)

    async def _exchange(
        self, connection: _Connection, request: h11.Request, body: bytes | None
    ) -> h11.Response:
        """Send ``request`` and read up to its answer's head."""
        http = connection.http
        out = http.send(request)
        if body:
            out += http.send(h11.Data(data=body))
        out += http.send(h11.EndOfMessage())
        try:
            with trio.CancelScope(deadline=trio.current_time() + self._idle_timeout) as scope:
                await connection.stream.send_all(out)
        except _STREAM_ERRORS:
            pass  # read the answer anyway: a server may answer and close early
        if scope.cancelled_caught:
            raise WriteTimeout("")
        answered = False
        while True:
            event = _next_event(http)
            if event is h11.NEED_DATA:
                try:
                    data = await self.read(connection)
                except ReadError as exc:
                    if answered:
                        raise
                    raise _Unanswered(exc) from None
                if not data and not answered:
                    raise _Unanswered
                answered = True
                http.receive_data(data)
            elif type(event) is h11.Response:
                return event
            elif type(event) is h11.ConnectionClosed:
                raise _Unanswered
            # else: an informational (1xx) answer

    async def read(self, connection: _Connection) -> bytes:
        """One network read, within the idle timeout (a read of the socket itself:
        ``receive_some`` adds only a context manager and the message's prefix)."""
        with trio.CancelScope(deadline=trio.current_time() + self._idle_timeout):
            try:
                return await connection.stream.socket.recv(READ_SIZE)
            except OSError as exc:  # as SocketStream words it
                raise ReadError(f"socket connection broken: {exc}") from exc
        raise ReadTimeout("")


class _Body:
    """An answer's body, one piece per network read; at its end, the connection's fate.

    h11 read the head; the body is undone by ``BodyDecoder`` (see
    ``streamkit.protocol.http1_body`` for why). An iterator class rather than
    an async generator: a generator left unfinished (a reply ended by
    ``[DONE]``) is finalized by Trio's hooks, which cost more than the rest
    of its work.
    """

    def __init__(
        self,
        transport: H11Transport,
        connection: _Connection,
        decoder: BodyDecoder,
        *,
        keep_alive: bool,
        start: bytes,
        closed: bool,
    ) -> None:
        self.transport = transport
        self.connection = connection
        self.decoder = decoder
        self.keep_alive = keep_alive
        self._start: bytes | None = start  # read with the head, not yet decoded
        self._closed = closed  # the server closed the connection after it

    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        while not self.decoder.ended:
            if self._start is not None:
                data, self._start = self._start, None
                body = self._decode(data, closed=self._closed)
            else:
                data = await self.transport.read(self.connection)
                body = self._decode(data, closed=not data)
            if body:
                return body
        raise StopAsyncIteration

    def _decode(self, data: bytes, *, closed: bool) -> bytes:
        decoder = self.decoder
        try:
            body = decoder.feed(data) if data else b""
            if closed:
                body += decoder.close()
        except BodyError as exc:
            raise RemoteProtocolError(str(exc)) from None
        if decoder.ended:
            self.connection.reusable = self.keep_alive and not closed and not decoder.leftover
        return body

    async def drain(self) -> None:
        """After a body left unread (a reply ended by ``[DONE]``): its end, if it comes
        within ``DRAIN_S`` (it usually is in the next read), so the connection serves
        another request. Any failure just means a new connection next time."""
        with trio.move_on_after(DRAIN_S):
            try:
                async for _ in self:
                    pass
            except (ReadError, ReadTimeout, RemoteProtocolError):
                self.connection.reusable = False


def _next_event(http: h11.Connection) -> object:
    try:
        return http.next_event()
    except h11.RemoteProtocolError as exc:
        raise RemoteProtocolError(str(exc)) from exc
