"""The SSE decoder against the WHATWG rules, fed whole and split at every byte."""

from __future__ import annotations

import pytest

from streamkit.protocol.sse import ServerSentEvent, SSEDecoder, SSEError


def decode_whole(data: bytes) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    events = decoder.feed(data)
    decoder.close()
    return events


def decode_split_everywhere(data: bytes) -> list[ServerSentEvent]:
    """Decode ``data`` in two pieces at every split point and in single bytes.

    Asserts every way of splitting gives the same events, and returns them.
    """
    expected = decode_whole(data)
    for cut in range(len(data) + 1):
        decoder = SSEDecoder()
        events = decoder.feed(data[:cut]) + decoder.feed(data[cut:])
        assert events == expected, f"split at {cut}"
    decoder = SSEDecoder()
    one_by_one = [e for i in range(len(data)) for e in decoder.feed(data[i : i + 1])]
    assert one_by_one == expected
    return expected


def test_basic_event():
    events = decode_split_everywhere(b"data: hello\n\n")
    assert events == [ServerSentEvent("message", "hello", "", None)]


@pytest.mark.parametrize("end", [b"\n", b"\r", b"\r\n"])
def test_all_line_endings(end: bytes):
    body = b"event: add" + end + b"data: a" + end + b"data: b" + end + end
    assert decode_split_everywhere(body) == [ServerSentEvent("add", "a\nb")]


def test_cr_at_chunk_end_then_lf_is_one_line_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    # The LF belongs to the CR before it: it must not count as a blank line.
    assert decoder.feed(b"\n") == []
    assert decoder.feed(b"\r\n") == [ServerSentEvent("message", "x")]


def test_cr_then_cr_is_two_line_ends():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: x\r") == []
    assert decoder.feed(b"\r") == [ServerSentEvent("message", "x")]


def test_bom_stripped_once_even_when_split():
    body = b"\xef\xbb\xbfdata: a\n\n"
    assert decode_split_everywhere(body) == [ServerSentEvent("message", "a")]
    # A second BOM is part of the field name, which then is not "data".
    assert decode_whole(b"\xef\xbb\xbf\xef\xbb\xbfdata: a\n\n") == []


def test_comments_and_unknown_fields_are_ignored():
    body = b": keepalive\n:\nfoo: bar\ndata: x\n\n"
    assert decode_split_everywhere(body) == [ServerSentEvent("message", "x")]


def test_field_without_colon():
    # "data" alone is a data line with an empty value: it dispatches "".
    assert decode_split_everywhere(b"data\n\n") == [ServerSentEvent("message", "")]
    assert decode_split_everywhere(b"data\ndata\n\n") == [ServerSentEvent("message", "\n")]
    # "event" alone sets an empty type, which dispatches as "message".
    assert decode_split_everywhere(b"event\ndata: x\n\n") == [ServerSentEvent("message", "x")]


def test_only_one_leading_space_stripped():
    assert decode_split_everywhere(b"data:  two\n\n") == [ServerSentEvent("message", " two")]
    assert decode_split_everywhere(b"data:none\n\n") == [ServerSentEvent("message", "none")]


def test_no_dispatch_without_data_and_event_type_reset():
    body = b"event: lonely\n\ndata: x\n\n"
    assert decode_split_everywhere(body) == [ServerSentEvent("message", "x")]


def test_id_persists_and_nul_id_is_ignored():
    body = b"id: 1\ndata: a\n\ndata: b\n\nid: 2\x003\ndata: c\n\nid\ndata: d\n\n"
    events = decode_split_everywhere(body)
    assert [(e.data, e.id) for e in events] == [("a", "1"), ("b", "1"), ("c", "1"), ("d", "")]


def test_id_without_data_still_sets_last_event_id():
    decoder = SSEDecoder()
    decoder.feed(b"id: 7\n\n")
    assert decoder.last_event_id == "7"
    assert decoder.feed(b"data: x\n\n")[0].id == "7"


def test_retry_digits_only():
    decoder = SSEDecoder()
    events = decoder.feed(b"retry: 1500\ndata: a\n\nretry: 12x\nretry: -1\nretry:\ndata: b\n\n")
    assert [e.retry for e in events] == [1500, 1500]
    assert decoder.retry == 1500
    assert SSEDecoder().feed(b"data: a\n\n")[0].retry is None


def test_unterminated_event_is_discarded_at_end():
    decoder = SSEDecoder()
    assert decoder.feed(b"data: a\n\ndata: partial\n") == [ServerSentEvent("message", "a")]
    assert decoder.close() is True
    assert SSEDecoder().close() is False


def test_invalid_utf8_becomes_replacement_character():
    events = decode_split_everywhere(b"data: caf\xc3\xa9 \xff\n\n")
    assert events[0].data == "café \ufffd"


def test_multibyte_characters_split_across_chunks():
    body = "data: 日本語 🎉\n\n".encode()
    assert decode_split_everywhere(body)[0].data == "日本語 🎉"


def test_line_longer_than_limit_is_an_error_however_split():
    body = b"data: " + b"x" * 100 + b"\n\n"
    with pytest.raises(SSEError):
        SSEDecoder(max_line_bytes=64).feed(body)
    decoder = SSEDecoder(max_line_bytes=64)
    with pytest.raises(SSEError):
        for i in range(0, len(body), 7):
            decoder.feed(body[i : i + 7])
    # Exactly at the limit is fine.
    ok = b"data: " + b"x" * 58 + b"\n\n"
    assert SSEDecoder(max_line_bytes=64).feed(ok)[0].data == "x" * 58


def test_realistic_openai_stream_split_everywhere():
    body = (
        b": ping\r\n\r\n"
        b'data: {"choices":[{"delta":{"content":"Hel"}}]}\r\n\r\n'
        b'data: {"choices":[{"delta":{"content":"lo"}}]}\n\n'
        b'event: error\ndata: {"error": {"message": "boom"}}\r\r'
        b"data: [DONE]\n\n"
    )
    events = decode_split_everywhere(body)
    assert [e.event for e in events] == ["message", "message", "error", "message"]
    assert events[-1].data == "[DONE]"


def test_done_sentinel_under_a_named_event_keeps_its_name_however_split():
    """The decoder hands ``event: done`` + ``data: [DONE]`` on as it came; recognising
    the sentinel whatever the name is the chunk parser's job."""
    body = b'data: {"x": 1}\n\nevent: done\r\ndata: [DONE]\r\n\r\ndata: {"x": 2}\n\n'
    events = decode_split_everywhere(body)
    assert events[1] == ServerSentEvent("done", "[DONE]")
    assert [e.event for e in events] == ["message", "done", "message"]
