"""The httpx transport: TLS, and servers behind a proxy from the environment.

httpx's exceptions become transport.py's classes of the same names, with
the same messages, at this one boundary, so the producer above cannot tell
this transport from the lean one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx

from streamkit.errors import UsageError, one_line, redact
from streamkit.protocol.urls import public_url, split_query, url_secrets
from streamkit.providers import transport
from streamkit.providers.transport import Headers, Response, request_headers

# httpx's names for what transport.py has; any other httpx error keeps its message.
_SAME_NAME = (
    "ConnectError",
    "ConnectTimeout",
    "ReadTimeout",
    "WriteTimeout",
    "ReadError",
    "WriteError",
    "RemoteProtocolError",
    "DecodingError",
    "InvalidURL",
)
_RENAMED = {"PoolTimeout": "ConnectTimeout", "UnsupportedProtocol": "InvalidURL"}


class HttpxTransport:
    """A base URL over an ``httpx.AsyncClient`` (environment proxies honoured)."""

    def __init__(
        self,
        base_url: str,
        api_key: str | None,
        *,
        connect_timeout: float | None,
        idle_timeout: float | None,
        mounted: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        """``mounted``: the httpx transport underneath (tests mount an in-memory server)."""
        self.url = base_url
        timeout = httpx.Timeout(
            connect=connect_timeout, read=idle_timeout, write=idle_timeout, pool=connect_timeout
        )
        # Building the default TLS context costs ~30 ms of start-up; a plain
        # http:// server (here, behind a proxy) never uses it, and redirects
        # are not followed, so no request of this client can reach TLS.
        plain_http = base_url.startswith("http://")
        try:
            base, query = split_query(base_url)
            self.client = httpx.AsyncClient(
                base_url=base.rstrip("/") + "/",
                params=query or None,
                headers=request_headers(base_url, api_key),
                timeout=timeout,
                verify=not plain_http,
                # Concurrency is bounded by the caller (batch workers), not by
                # httpx's default pool of 100, which would silently cap -j 256.
                limits=httpx.Limits(max_connections=None, max_keepalive_connections=None),
                transport=mounted,
            )
        except (httpx.InvalidURL, ValueError) as exc:
            message = redact(
                f"invalid base URL {public_url(base_url)!r}: {one_line(exc)}", url_secrets(base_url)
            )
            raise UsageError(message) from None

    async def __aenter__(self) -> HttpxTransport:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.client.aclose()

    @asynccontextmanager
    async def stream(
        self, method: str, path: str, body: bytes | None = None, headers: Headers = ()
    ) -> AsyncIterator[Response]:
        try:
            async with self.client.stream(
                method, path.lstrip("/"), content=body, headers=list(headers)
            ) as response:
                yield Response(
                    response.status_code,
                    response.reason_phrase or "",
                    response.headers.multi_items(),
                    _pieces(response),
                )
        except httpx.HTTPError as exc:
            raise _mapped(exc) from exc


async def _pieces(response: httpx.Response) -> AsyncIterator[bytes]:
    try:
        async for data in response.aiter_bytes():
            yield data
    except httpx.HTTPError as exc:
        raise _mapped(exc) from exc


def _mapped(exc: httpx.HTTPError) -> transport.TransportError:
    name = type(exc).__name__
    name = _RENAMED.get(name, name if name in _SAME_NAME else "TransportError")
    return getattr(transport, name)(str(exc))
