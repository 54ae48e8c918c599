"""One HTTP exchange, timed: the ``--debug`` line and the ``ResponseInfo`` event.

The remote producer opens one per attempt and marks when the headers, the
first body byte and the end arrived. ``--debug`` prints its line on stderr;
the response's status and kept headers travel to the consumers (log,
``--stats``) as a ``ResponseInfo`` event.
"""

from __future__ import annotations

import trio

from streamkit.errors import one_line
from streamkit.events import ResponseInfo
from streamkit.protocol.urls import public_url
from streamkit.protocol.wire import describe_headers, kept_headers
from streamkit.providers.transport import Response


class Exchange:
    def __init__(self, method: str, url: str) -> None:
        self.method = method
        self.url = public_url(url)
        self.started = trio.current_time()
        self.headers_at: float | None = None
        self.first_byte_at: float | None = None
        self.ended_at: float | None = None
        self.status: int | None = None
        self.reason = ""
        self.headers: dict[str, str] = {}
        self.failure: str | None = None

    def answered(self, response: Response, sent: tuple[str, bytes]) -> ResponseInfo:
        """The response's head arrived (to the request ``sent``: path and body): the
        event that tells the consumers."""
        self.headers_at = trio.current_time()
        self.status = response.status
        self.reason = response.reason
        self.headers = kept_headers(response.headers)
        return ResponseInfo(self.status, self.headers, sent)

    def received(self) -> None:
        if self.first_byte_at is None:
            self.first_byte_at = trio.current_time()

    def failed(self, exc: BaseException) -> None:
        self.failure = f"{type(exc).__name__}: {one_line(exc)}"

    def end(self) -> None:
        self.ended_at = trio.current_time()

    def line(self) -> str:
        """``POST URL -> 200 OK; headers 3 ms, first byte 40 ms, end 900 ms; x-request-id=..``"""

        def ms(at: float | None) -> str:
            return "-" if at is None else f"{(at - self.started) * 1000:.0f} ms"

        outcome = f"{self.status} {self.reason}".strip() if self.status else "no response"
        line = (
            f"{self.method} {self.url} -> {outcome}; headers {ms(self.headers_at)}, "
            f"first byte {ms(self.first_byte_at)}, end {ms(self.ended_at)}"
        )
        if self.headers:
            line += "; " + describe_headers(self.headers)
        if self.failure:
            line += f"; {self.failure}"
        return line
