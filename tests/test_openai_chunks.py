"""OpenAI stream bytes to streamkit events, sans-IO, split at every position."""

from __future__ import annotations

import json
import re

import pytest

from streamkit.events import (
    AssembledToolCall,
    Finish,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
    encode_event_line,
)
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.reply import Reply
from streamkit.protocol.toolcalls import ToolCall, ToolCallAccumulator, ToolCallAssembler


def sse(*payloads: object) -> bytes:
    out = b""
    for payload in payloads:
        data = payload if isinstance(payload, str) else json.dumps(payload)
        out += b"data: " + data.encode() + b"\n\n"
    return out


def chat_delta(content=None, finish=None, index=0, **delta):
    if content is not None:
        delta["content"] = content
    return {"choices": [{"index": index, "delta": delta, "finish_reason": finish}]}


def decode(body: bytes) -> list:
    decoder = OpenAIStreamDecoder()
    return decoder.feed(body) + decoder.close()


def decode_every_split(body: bytes) -> list:
    expected = decode(body)
    for cut in range(len(body) + 1):
        decoder = OpenAIStreamDecoder()
        got = decoder.feed(body[:cut]) + decoder.feed(body[cut:]) + decoder.close()
        assert got == expected, f"split at {cut}"
    return expected


def test_chat_stream_text_finish_usage():
    body = sse(
        chat_delta(role="assistant", content=""),
        chat_delta("Hel"),
        chat_delta("lo"),
        chat_delta(finish="stop"),
        {"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 2, "total_tokens": 7}},
        "[DONE]",
    )
    events = decode_every_split(body)
    assert events == [
        TextDelta("Hel"),
        TextDelta("lo"),
        Finish("stop"),
        Usage(5, 2, 7),
    ]


def test_completions_stream_with_logprobs():
    body = sse(
        {
            "choices": [
                {
                    "index": 0,
                    "text": " Paris",
                    "logprobs": {
                        "tokens": [" Paris"],
                        "token_logprobs": [-0.25],
                        "top_logprobs": [{" Paris": -0.25, " Lyon": -3.0}],
                    },
                    "finish_reason": None,
                }
            ]
        },
        {"choices": [{"index": 0, "text": "", "finish_reason": "length"}]},
        "[DONE]",
    )
    events = decode_every_split(body)
    assert events[0].text == " Paris"
    assert events[0].logprobs[0].logprob == -0.25
    assert events[0].logprobs[0].top == {" Paris": -0.25, " Lyon": -3.0}
    assert events[1] == Finish("length")


def test_chat_logprobs_content_shape():
    chunk = chat_delta("Hi")
    chunk["choices"][0]["logprobs"] = {
        "content": [
            {"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": "Hi", "logprob": -0.1}]}
        ]
    }
    events = decode(sse(chunk, chat_delta(finish="stop"), "[DONE]"))
    assert events[0].logprobs[0].token == "Hi"
    assert events[0].logprobs[0].top == {"Hi": -0.1}


def test_malformed_chunk_is_skipped_counted_and_reported():
    body = sse(chat_delta("a"), "{not json", chat_delta("b"), chat_delta(finish="stop"), "[DONE]")
    events = decode_every_split(body)
    assert [e.text for e in events if isinstance(e, TextDelta)] == ["a", "b"]
    assert isinstance(events[-1], StreamError)
    assert events[-1].kind == "protocol"
    assert "1 malformed" in events[-1].message


def test_error_object_inside_the_stream():
    body = sse(chat_delta("partial"), {"error": {"message": "model\ncrashed", "code": 500}})
    body += sse(chat_delta("ignored after the error"))
    events = decode_every_split(body)
    assert events[0] == TextDelta("partial")
    assert events[1] == StreamError(
        "http", "the server reported an error mid-stream: model crashed", 500
    )
    assert len(events) == 2


def test_error_event_type_inside_the_stream():
    body = sse(chat_delta("x")) + b'event: error\ndata: {"message": "overloaded"}\n\n'
    events = decode_every_split(body)
    assert events[-1].kind == "http"
    assert "overloaded" in events[-1].message


def test_stream_without_done_and_without_finish_is_incomplete():
    events = decode_every_split(sse(chat_delta("cut")))
    assert events[-1] == StreamError("protocol", "the stream ended before it was complete")


def test_finished_stream_without_done_is_accepted():
    events = decode_every_split(sse(chat_delta("ok"), chat_delta(finish="stop")))
    assert events == [TextDelta("ok"), Finish("stop")]


@pytest.mark.parametrize("name", ["done", "message", "end"])
def test_done_sentinel_ends_the_stream_whatever_the_event_name(name):
    """Some servers and proxies send ``event: done`` before ``data: [DONE]``; like
    openai-python, the sentinel ends the stream: nothing after it is read."""
    body = sse(chat_delta("Hello"), chat_delta(finish="stop"))
    body += f"event: {name}\ndata: [DONE]\n\n".encode() + sse(chat_delta(" after the end"))
    assert decode_every_split(body) == [TextDelta("Hello"), Finish("stop")]


def test_named_done_before_every_choice_finished_is_still_the_end():
    body = sse(chat_delta("cut")) + b"event: done\ndata: [DONE]\n\n" + sse(chat_delta("x"))
    assert decode_every_split(body) == [TextDelta("cut")]  # as a plain [DONE]: no error


def test_keepalive_comments_and_other_event_types_ignored():
    body = b": keepalive\n\nevent: ping\ndata: {}\n\n"
    body += sse(chat_delta("x", finish="stop"), "[DONE]")
    assert decode_every_split(body) == [TextDelta("x"), Finish("stop")]


def test_tool_call_deltas_and_llama_cpp_duplicate_function_call():
    """llama.cpp repeats id and name on every delta and sends the fragment twice."""
    fragments = ['{"ci', 'ty": "Paris"}']
    chunks = [
        chat_delta(
            tool_calls=[
                {
                    "index": 0,
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "weather", "arguments": frag},
                }
            ],
            function_call={"name": "weather", "arguments": frag},
        )
        for frag in fragments
    ]
    events = decode_every_split(sse(*chunks, chat_delta(finish="tool_calls"), "[DONE]"))
    deltas = [e for e in events if isinstance(e, ToolCallDelta)]
    assert len(deltas) == 2
    reply = Reply()
    reply.add(events)
    assert reply.tool_calls == [ToolCall(0, "call_1", "weather", '{"city": "Paris"}')]
    assert reply.finish_reason == "tool_calls"


def test_legacy_function_call_alone():
    body = sse(
        chat_delta(function_call={"name": "f", "arguments": "{}"}),
        chat_delta(finish="function_call"),
        "[DONE]",
    )
    reply = Reply()
    reply.add(decode(body))
    (call,) = reply.tool_calls
    assert (call.index, call.name, call.arguments) == (0, "f", "{}")
    assert re.fullmatch(r"call_[0-9a-f]{8}_0", call.id)  # made up: the legacy form has none


def test_accumulator_interleaved_parallel_calls_and_late_name():
    acc = ToolCallAccumulator()
    acc.add(ToolCallDelta(1, "b", None, '{"x"'))
    acc.add(ToolCallDelta(2, "c", "g", "{"))
    acc.add(ToolCallDelta(1, "b", "f", ": 1}"))  # name arrives late; id repeated
    acc.add(ToolCallDelta(2, None, "g", "}"))
    assert acc.calls() == [ToolCall(1, "b", "f", '{"x": 1}'), ToolCall(2, "c", "g", "{}")]


def decode_and_assemble_every_split(body: bytes) -> list:
    """Decoder then assembler, fed the body in two pieces at every position."""
    expected = None
    for cut in range(len(body) + 1):
        decoder, assembler = OpenAIStreamDecoder(), ToolCallAssembler()
        got = []
        for events in (decoder.feed(body[:cut]), decoder.feed(body[cut:]), decoder.close()):
            got += assembler.feed(events)
        got += assembler.close()
        if expected is None:
            expected = got
        assert got == expected, f"split at {cut}"
    return expected


def call_fragment(index, arguments, call_id=None, name=None):
    function = {"arguments": arguments} | ({"name": name} if name else {})
    return chat_delta(
        tool_calls=[
            {"index": index, "function": function}
            | ({"id": call_id, "type": "function"} if call_id else {})
        ]
    )


def event_types(events) -> list[str]:
    return [json.loads(encode_event_line(e))["type"] for e in events]


def test_assembled_tool_calls_come_just_before_the_finish_however_split():
    body = sse(
        chat_delta("Let me check. "),
        call_fragment(0, '{"ci', "call_a", "weather"),
        call_fragment(1, '{"expr', "call_b", "calculate"),
        call_fragment(2, "[1, ", "call_c", "list"),
        call_fragment(0, 'ty": "Paris"}'),
        call_fragment(1, 'ession": '),  # cut short: not valid JSON
        call_fragment(2, "2]"),  # valid JSON, not an object
        chat_delta(finish="tool_calls"),
        "[DONE]",
    )
    events = decode_and_assemble_every_split(body)
    assert event_types(events) == ["delta", *["tool_call_delta"] * 6, *["tool_call"] * 3, "finish"]
    weather, calculate, listing = events[7:10]
    assert weather == AssembledToolCall(0, "call_a", "weather", '{"city": "Paris"}', True)
    assert (calculate.id, calculate.name, calculate.arguments) == (
        "call_b",
        "calculate",
        '{"expression": ',
    )
    assert not calculate.valid and calculate.reason.startswith("the arguments are not valid JSON")
    assert (listing.arguments, listing.valid, listing.reason) == (
        "[1, 2]",
        False,
        "the arguments are not a JSON object",
    )
    record = json.loads(encode_event_line(weather))
    assert record == {
        "type": "tool_call",
        "index": 0,
        "id": "call_a",
        "name": "weather",
        "arguments": '{"city": "Paris"}',
        "valid": True,
        "reason": None,
        "choice": 0,
    }
    reply = Reply()
    reply.add(events)  # the reply's calls are the assembled ones, not counted twice
    assert [(c.id, c.arguments) for c in reply.tool_calls] == [
        (e.id, e.arguments) for e in (weather, calculate, listing)
    ]


def test_open_calls_are_assembled_before_an_error_or_at_the_end():
    assembler = ToolCallAssembler()
    fragment = ToolCallDelta(0, "c1", "f", '{"a": ')
    error = StreamError("timeout", "too slow")
    out = assembler.feed([fragment]) + assembler.feed([TextDelta("x"), error])
    assert out[:2] == [fragment, TextDelta("x")]
    assert out[3] == error  # the error stays the last event
    assert (out[2].id, out[2].arguments, out[2].valid) == ("c1", '{"a": ', False)
    assert assembler.close() == []
    assembler.feed([ToolCallDelta(0, "c2", "g", "{}", choice=1), Finish("stop")])
    assert assembler.close() == [AssembledToolCall(0, "c2", "g", "{}", True, choice=1)]


def test_batches_without_tool_calls_pass_through_untouched():
    assembler = ToolCallAssembler()
    batch = [TextDelta("a"), Finish("stop")]
    assert assembler.feed(batch) is batch
    assert assembler.close() == []


def test_reply_keeps_partial_text_and_error():
    reply = Reply()
    reply.add([TextDelta("par"), TextDelta("tial")])
    reply.add([StreamError("timeout", "too slow")])
    assert reply.text == "partial"
    assert reply.exception().exit_code == 5


def test_stop_filter_holds_back_partial_stops_however_split():
    from streamkit.protocol.stops import StopFilter

    text = "one two STOP three"
    for pieces in ([text], list(text), ["one tw", "o ST", "OP th", "ree"]):
        stop = StopFilter(["STOP", "xyz"])
        out = "".join(stop.feed(p) for p in pieces) + stop.flush()
        assert out == "one two "
        assert stop.stopped
    stop = StopFilter(["STOP"])
    assert stop.feed("a ST") == "a "  # "ST" could begin "STOP": held back
    assert stop.feed("ep") == "STep"
    assert stop.feed("x S") == "x "
    assert stop.flush() == "S" and not stop.stopped


def test_retry_after_seconds_date_and_caps():
    from streamkit.protocol.retry import RETRY_AFTER_CAP, backoff_delay, parse_retry_after

    now = 1_700_000_000.0
    assert parse_retry_after("2", now) == 2.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:30 GMT", now) == 10.0
    assert parse_retry_after("Tue, 14 Nov 2023 22:13:10 GMT", now) == 0.0  # in the past
    assert parse_retry_after("99999", now) == RETRY_AFTER_CAP
    assert parse_retry_after("soon", now) is None
    assert parse_retry_after(None, now) is None
    assert backoff_delay(3, 1.5) == 1.5
    assert backoff_delay(0, uniform=lambda lo, hi: hi) == 0.5
    assert backoff_delay(10, uniform=lambda lo, hi: hi) == 8.0  # capped
