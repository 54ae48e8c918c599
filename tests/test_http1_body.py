"""The body decoder against h11 itself: the same body, the same end, the same words.

Each answer is read twice: by h11 alone (head and body, as the httpx
transport reads it) and by h11 for the head then ``BodyDecoder`` for the
body (as the lean transport reads it), cut into pieces at every position.
Both must give the same body bytes, end at the same place, keep or drop the
connection alike, and fail with the same message.
"""

from __future__ import annotations

import itertools
import re

import h11
import pytest

from streamkit.protocol.http1_body import (
    CHUNKED,
    UNTIL_CLOSE,
    BodyDecoder,
    BodyError,
    body_framing,
    keeps_alive,
)

CHUNKED_HEAD = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
ANSWERS = {
    "chunked": CHUNKED_HEAD + b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\n",
    "chunked with a trailer": CHUNKED_HEAD + b"3\r\nabc\r\n0\r\nX-Checksum: 1\r\n\r\n",
    "chunk size padded": CHUNKED_HEAD + b"3  \r\nabc\r\n0\r\n\r\n",
    "chunk size in capitals": CHUNKED_HEAD + b"A\r\n0123456789\r\n0\r\n\r\n",
    "length": b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
    "empty by length": b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
    "no content": b"HTTP/1.1 204 No Content\r\n\r\n",
    "close": b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
    "http/1.0": b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
    "until close": b"HTTP/1.1 200 OK\r\n\r\nall of it until the end",
    "cut chunk": CHUNKED_HEAD + b"a\r\nhello",
    "cut before the last chunk": CHUNKED_HEAD + b"5\r\nhello\r\n",
    "cut length": b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello",
    "illegal chunk header": CHUNKED_HEAD + b"zz\r\nhello\r\n0\r\n\r\n",
    "malformed chunk footer": CHUNKED_HEAD + b"5\r\nhelloXY0\r\n\r\n",
    "more than framed": b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA",
}

Outcome = tuple[bytes, bool, bool, str | None]  # body, ended, reusable, error


def _h11_head(answer: bytes) -> tuple[h11.Connection, h11.Response]:
    http = h11.Connection(h11.CLIENT)
    http.send(h11.Request(method="POST", target="/", headers=[("Host", "x")]))
    http.send(h11.EndOfMessage())
    http.receive_data(answer[: answer.index(b"\r\n\r\n") + 4])
    head = http.next_event()
    assert type(head) is h11.Response
    return http, head


def read_with_h11(answer: bytes) -> Outcome:
    """Read by h11 alone; the server closes after what it sent, and a body that only
    the close ended leaves no connection to reuse."""
    http, _ = _h11_head(answer)
    http.receive_data(answer[answer.index(b"\r\n\r\n") + 4 :])
    body, closed = b"", False
    try:
        while True:
            event = http.next_event()
            if event is h11.NEED_DATA and not closed:
                http.receive_data(b"")
                closed = True
            elif type(event) is h11.Data:
                body += event.data
            elif type(event) is h11.EndOfMessage:
                reusable = http.their_state is h11.DONE and not http.trailing_data[0]
                return body, True, reusable and not closed, None
            else:
                return body, False, False, None
    except h11.RemoteProtocolError as exc:
        return body, False, False, str(exc)


def read_with_decoder(answer: bytes, cuts: list[int]) -> Outcome:
    """The same, the body decoded from the pieces between ``cuts``."""
    _, head = _h11_head(answer)
    decoder = BodyDecoder(body_framing("POST", head.status_code, head.headers))
    alive = keeps_alive(head.http_version, head.headers)
    rest = answer[answer.index(b"\r\n\r\n") + 4 :]
    body = b""
    try:
        for start, end in itertools.pairwise([0, *cuts, len(rest)]):
            body += decoder.feed(rest[start:end])
        if decoder.ended:
            return body, True, alive and not decoder.leftover, None
        body += decoder.close()
        return body, decoder.ended, False, None
    except BodyError as exc:
        return body, False, False, str(exc)


def _footer_unquoted(outcome: Outcome) -> Outcome:
    """A bad chunk footer is quoted as far as it had arrived, by h11 too: not compared."""
    body, ended, reusable, error = outcome
    return body, ended, reusable, error and re.sub(r"footer: .* \(expected", "footer: (", error)


@pytest.mark.parametrize("name", ANSWERS)
def test_every_answer_reads_as_h11_reads_it_however_it_is_cut(name):
    answer = ANSWERS[name]
    expected = _footer_unquoted(read_with_h11(answer))
    rest = len(answer) - answer.index(b"\r\n\r\n") - 4
    for cut in range(rest + 1):
        assert _footer_unquoted(read_with_decoder(answer, [cut])) == expected, cut
    one_by_one = read_with_decoder(answer, list(range(1, rest)))
    assert _footer_unquoted(one_by_one) == expected


def test_the_framings_are_told_apart():
    assert body_framing("POST", 200, [(b"transfer-encoding", b"chunked")]) == CHUNKED
    assert body_framing("POST", 200, [(b"content-length", b"12")]) == 12
    assert body_framing("POST", 304, [(b"content-length", b"12")]) == 0
    assert body_framing("HEAD", 200, [(b"content-length", b"12")]) == 0
    assert body_framing("POST", 200, []) == UNTIL_CLOSE


def test_a_chunk_header_that_never_ends_is_refused():
    decoder = BodyDecoder(CHUNKED)
    with pytest.raises(BodyError, match="Receive buffer too long"):
        for _ in range(20):
            decoder.feed(b"f" * 1024)
