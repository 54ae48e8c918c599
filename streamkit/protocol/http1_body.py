"""An HTTP/1.1 answer's body, decoded sans-IO: chunked, by length, or until the close.

Why not h11 for the body as well (it still reads the answer's head, and
checks the head's framing headers): h11 turns every network read into
events through its connection state machine, about a tenth of a short batch
line's client CPU at 256 in flight, where the body needs only its framing
undone. The rules are h11's (RFC 9112 section 6.3), and so are the words
of every failure, so that an answer reads, and fails, the same over the lean
transport and over httpx (which speaks h11).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

CHUNKED = "chunked"
UNTIL_CLOSE = "until-close"
MAX_LINE = 16 * 1024  # h11's limit on a head or chunk line still incomplete

# h11's chunk header: the size in hex (at most 20 digits), extensions
# ignored, trailing whitespace tolerated.
_CHUNK_HEADER = re.compile(rb"(?P<size>[0-9A-Fa-f]{1,20})(;.*)?[ \t]*\r\n")
_BLANK_LINE = re.compile(rb"\n\r?\n")

Framing = int | str  # a length, CHUNKED or UNTIL_CLOSE


class BodyError(ValueError):
    """The body broke its framing (h11's words): the connection cannot be trusted."""


def body_framing(method: str, status: int, headers: Iterable[tuple[bytes, bytes]]) -> Framing:
    """How the body of an answer with this head ends (h11's ``_body_framing``).

    ``headers`` as h11 gives them (lower-case names); h11 has already refused
    a head whose framing headers it does not accept.
    """
    if status in (204, 304) or method == "HEAD":
        return 0
    lengths: list[bytes] = []
    for name, value in headers:
        if name == b"transfer-encoding" and b"chunked" in value.lower():
            return CHUNKED
        if name == b"content-length":
            lengths.append(value)
    if lengths:
        return int(lengths[0].split(b",")[0])
    return UNTIL_CLOSE


def keeps_alive(http_version: bytes, headers: Iterable[tuple[bytes, bytes]]) -> bool:
    """Whether the server keeps the connection after this answer (h11's ``_keep_alive``)."""
    if http_version < b"1.1":
        return False
    return not any(name == b"connection" and b"close" in value.lower() for name, value in headers)


class BodyDecoder:
    """Feed it what the network gives; it returns the body's bytes and says when it ended.

    ``leftover`` holds bytes that came after the body's end (a server that
    sent more than it framed): a connection with any is not reused.
    """

    def __init__(self, framing: Framing) -> None:
        self.framing = framing
        self.ended = framing == 0
        self.leftover = b""
        self._remaining = framing if isinstance(framing, int) else 0  # of the length or chunk
        self._received = 0  # of a length-framed body, for the message if it is cut short
        self._buffer = bytearray()
        self._footer = b""  # the CRLF still to come after a chunk's data
        self._trailer = False  # past the last chunk: reading trailer lines
        self._error: BodyError | None = None  # met after body bytes, raised at the next call

    def feed(self, data: bytes) -> bytes:
        """The body's bytes in ``data`` (after what was fed before)."""
        if self._error is not None:
            raise self._error
        if self.ended:
            self.leftover += data
            return b""
        if self.framing == UNTIL_CLOSE:
            return data
        if self.framing != CHUNKED:
            return self._by_length(data)
        self._buffer += data
        return self._chunks()

    def close(self) -> bytes:
        """The connection closed: the end of a body read until the close, else an error."""
        if self._error is not None:
            raise self._error
        if self.ended:
            return b""
        if self.framing == UNTIL_CLOSE:
            self.ended = True
            return b""
        if self.framing == CHUNKED:
            raise BodyError(
                "peer closed connection without sending complete message body "
                "(incomplete chunked read)"
            )
        raise BodyError(
            "peer closed connection without sending complete message body "
            f"(received {self._received} bytes, expected {self.framing})"
        )

    def _by_length(self, data: bytes) -> bytes:
        body, rest = data[: self._remaining], data[self._remaining :]
        self._remaining -= len(body)
        self._received += len(body)
        if self._remaining == 0:
            self.ended = True
            self.leftover = rest
        return body

    def _chunks(self) -> bytes:
        """The chunks' data so far; a framing error after some data waits for the next
        call, so that what came before it is not lost."""
        out: list[bytes] = []
        try:
            self._read_chunks(out)
        except BodyError as exc:
            if not out:
                raise
            self._error = exc
        return b"".join(out)

    def _read_chunks(self, out: list[bytes]) -> None:
        buffer = self._buffer
        while not self.ended:
            if self._trailer:
                if not self._end_of_trailer():
                    break
            elif self._footer:
                piece = bytes(buffer[: len(self._footer)])
                if not piece:
                    break
                if piece != self._footer[: len(piece)]:
                    raise BodyError(
                        f"malformed chunk footer: {bytearray(piece)!r} (expected {self._footer!r})"
                    )
                del buffer[: len(piece)]
                self._footer = self._footer[len(piece) :]
            elif self._remaining == 0:
                end = buffer.find(b"\r\n")
                if end < 0:
                    if len(buffer) > MAX_LINE:
                        raise BodyError("Receive buffer too long")
                    break
                line = buffer[: end + 2]
                del buffer[: end + 2]
                match = _CHUNK_HEADER.fullmatch(line)
                if match is None:
                    raise BodyError(f"illegal chunk header: {line!r}")
                self._remaining = int(match["size"], 16)
                self._trailer = self._remaining == 0
            else:
                if not buffer:
                    break
                piece = bytes(buffer[: self._remaining])
                del buffer[: len(piece)]
                self._remaining -= len(piece)
                if self._remaining == 0:
                    self._footer = b"\r\n"
                out.append(piece)
        if self.ended:
            self.leftover = bytes(buffer)
            buffer.clear()

    def _end_of_trailer(self) -> bool:
        """Past the trailer's blank line (its fields are not kept), if it has come."""
        buffer = self._buffer
        if buffer[:2] == b"\r\n" or buffer[:1] == b"\n":
            del buffer[: 2 if buffer[:1] == b"\r" else 1]
        else:
            match = _BLANK_LINE.search(buffer)
            if match is None:
                if len(buffer) > MAX_LINE:
                    raise BodyError("Receive buffer too long")
                return False
            del buffer[: match.end()]
        self.ended = True
        return True
