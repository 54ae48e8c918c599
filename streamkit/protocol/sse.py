"""Server-Sent Events decoding, sans-IO.

``SSEDecoder.feed(bytes)`` returns the events completed by those bytes,
following the WHATWG HTML "interpreting an event stream" rules exactly:

* the stream is UTF-8; one leading BOM is ignored; invalid bytes become U+FFFD;
* lines end with CRLF, LF or CR -- including a CR at the end of one chunk and
  the LF at the start of the next, which are *one* line end;
* a line starting with ``:`` is a comment; a line without a colon is a field
  with an empty value; one space after the colon is stripped;
* ``data`` lines are joined with ``\\n``; an event with no data line is not
  dispatched (its type is reset);
* ``id`` containing NUL is ignored; ``retry`` is honoured only when it is all
  ASCII digits; unknown fields are ignored;
* an event not terminated by a blank line when the stream ends is discarded.

The output is the same however the input is split into chunks. A line longer
than ``max_line_bytes`` (default 1 MiB) raises ``SSEError`` rather than
buffering without bound.

Speed: splitting happens on ``bytes`` (a line end is always ASCII, so UTF-8
sequences are never cut), CR-free input takes a fast path with one
``bytes.split`` per chunk, and only the data of dispatched events is decoded.
"""

from __future__ import annotations

from typing import NamedTuple

from streamkit.errors import ProtocolError

DEFAULT_MAX_LINE_BYTES = 1 << 20
_BOM = b"\xef\xbb\xbf"


class SSEError(ProtocolError):
    """The byte stream cannot be decoded as Server-Sent Events."""


class ServerSentEvent(NamedTuple):
    """One dispatched event.

    ``id`` is the last event ID in force when the event was dispatched and
    ``retry`` the reconnection time (ms) in force, or ``None`` if never set.
    """

    event: str = "message"
    data: str = ""
    id: str = ""
    retry: int | None = None


class SSEDecoder:
    """Incremental WHATWG event-stream decoder: bytes in, events out."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        self.max_line_bytes = max_line_bytes
        self.last_event_id = ""
        self.retry: int | None = None
        self._tail = b""  # an incomplete line carried to the next feed
        self._bom_checked = False
        self._after_cr = False  # the previous chunk ended with CR
        self._event_type = ""
        self._data: list[bytes] = []

    def feed(self, data: bytes) -> list[ServerSentEvent]:
        """Decode ``data`` and return the events it completes, in order."""
        if not self._bom_checked:
            data = self._tail + data
            self._tail = b""
            if len(data) < 3 and _BOM.startswith(data):
                self._tail = data  # could still be the start of a BOM
                return []
            self._bom_checked = True
            if data.startswith(_BOM):
                data = data[3:]
        if not data:
            return []
        if self._after_cr:
            self._after_cr = False
            if data[:1] == b"\n":
                data = data[1:]
        if b"\r" in data:
            self._after_cr = data[-1:] == b"\r"
            data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._tail:
            data = self._tail + data
        lines = data.split(b"\n")
        self._tail = tail = lines.pop()
        limit = self.max_line_bytes
        if len(data) > limit and (len(tail) > limit or (lines and max(map(len, lines)) > limit)):
            self._tail = b""
            raise SSEError(f"an event-stream line is longer than {limit} bytes")
        if not lines:
            return []
        return self._process(lines)

    def close(self) -> bool:
        """End of stream: discard any incomplete event.

        Returns ``True`` when something was discarded (an unterminated line or
        an event without its blank line), which callers may report.
        """
        dropped = bool(self._tail or self._data)
        self._tail = b""
        self._data = []
        self._event_type = ""
        return dropped

    def _process(self, lines: list[bytes]) -> list[ServerSentEvent]:
        # The hot loop: one iteration per line, the common "data:" line and
        # blank-line dispatch handled inline with locals; rarer fields go
        # through _field. Events are built with tuple.__new__, skipping the
        # NamedTuple's Python-level __new__.
        events: list[ServerSentEvent] = []
        append = events.append
        new = tuple.__new__
        data = self._data
        for line in lines:
            if not line:
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    append(
                        new(
                            ServerSentEvent,
                            (
                                self._event_type or "message",
                                raw.decode("utf-8", "replace"),
                                self.last_event_id,
                                self.retry,
                            ),
                        )
                    )
                    data = self._data = []
                self._event_type = ""
            elif line[:5] == b"data:":
                data.append(line[6:] if line[5:6] == b" " else line[5:])
            elif line[0] != 0x3A:  # not a ":" comment
                self._field(line, data)
        return events

    def _field(self, line: bytes, data: list[bytes]) -> None:
        name, colon, value = line.partition(b":")
        if colon and value[:1] == b" ":
            value = value[1:]
        if name == b"event":
            self._event_type = value.decode("utf-8", "replace")
        elif name == b"data":  # "data" with no colon: an empty data line
            data.append(value)
        elif name == b"id":
            if b"\0" not in value:
                self.last_event_id = value.decode("utf-8", "replace")
        elif name == b"retry" and value.isdigit():
            self.retry = int(value)
