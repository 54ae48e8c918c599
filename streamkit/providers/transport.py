"""One small interface for moving an HTTP request and its streamed answer.

The remote producer speaks to it (the way httpx's client speaks to
``httpx._transports.base``), unaware of which of two implementations it got:

* ``H11Transport`` (h11_transport.py): h11 on Trio sockets with a keep-alive
  free list, for a plain ``http://`` server reached directly. A profile of
  a ``-j 256`` batch put half of each line's CPU in the httpx, httpcore and
  anyio layers (about 150 µs a network read); this path does a read, h11
  and nothing else.
* ``HttpxTransport`` (httpx_transport.py): httpx, for ``https://`` and for a
  server behind a proxy from the environment (``HTTP(S)_PROXY``,
  ``ALL_PROXY``, ``NO_PROXY``), decided with httpx's own helpers, so a
  proxy applies exactly where httpx would apply it.

Both send the same request bytes (``request_headers``), raise the same
``TransportError`` classes with the same messages (the producer maps them to
streamkit's errors at one place, and ``--debug`` shows them by name), and
bound each connect, read and write by the same timeouts.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Protocol, Self
from urllib.parse import unquote, urlsplit

from streamkit import __version__

Headers = Sequence[tuple[str, str]]


class TransportError(Exception):
    """A failure below HTTP's answer; the subclasses are named as httpx names them."""


class ConnectError(TransportError): ...


class ConnectTimeout(TransportError): ...


class ReadTimeout(TransportError): ...


class WriteTimeout(TransportError): ...


class ReadError(TransportError): ...


class WriteError(TransportError): ...


class RemoteProtocolError(TransportError): ...


class DecodingError(TransportError): ...


class InvalidURL(TransportError): ...


class Response:
    """An answer's head, and its body as it arrives (one piece per network read)."""

    __slots__ = ("body", "headers", "reason", "status")

    def __init__(
        self, status: int, reason: str, headers: list[tuple[str, str]], body: AsyncIterator[bytes]
    ) -> None:
        self.status = status
        self.reason = reason
        self.headers = headers  # names lower-cased, in the order received
        self.body = body

    def header(self, name: str) -> str | None:
        """The first value of header ``name`` (lower-case), or None."""
        for key, value in self.headers:
            if key == name:
                return value
        return None


class Transport(Protocol):
    """Sends a request under a base URL and streams its answer.

    ``url`` is the base URL as given (credentials and query included: the
    caller shows it only through ``public_url``).
    """

    url: str

    def stream(
        self, method: str, path: str, body: bytes | None = None, headers: Headers = ()
    ) -> AbstractAsyncContextManager[Response]:
        """``method`` on ``path`` (relative to the base URL, whose query goes after it);
        ``headers`` add to or replace the defaults of ``request_headers``."""
        ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, *exc_info: object) -> None: ...


def request_headers(base_url: str, api_key: str | None) -> list[tuple[str, str]]:
    """The headers every request carries, in order, whichever transport sends it.

    ``Accept-Encoding: identity``: a stream must never wait in a compressor's
    buffer, and both transports then read the same bytes. Credentials in the
    URL are sent as Basic auth, as httpx sends them (replacing a key's
    Bearer header).
    """
    headers = [
        ("Accept", "*/*"),
        ("Accept-Encoding", "identity"),
        ("Connection", "keep-alive"),
        ("User-Agent", f"streamkit/{__version__}"),
    ]
    parts = urlsplit(base_url)
    if parts.username is not None or parts.password is not None:
        pair = f"{unquote(parts.username or '')}:{unquote(parts.password or '')}"
        headers.append(("Authorization", "Basic " + base64.b64encode(pair.encode()).decode()))
    elif api_key:
        headers.append(("Authorization", f"Bearer {api_key}"))
    return headers


def merged(defaults: Headers, extra: Headers) -> list[tuple[str, str]]:
    """``defaults`` without the names ``extra`` gives, then ``extra``: httpx's order."""
    names = {name.lower() for name, _ in extra}
    return [(n, v) for n, v in defaults if n.lower() not in names] + list(extra)
