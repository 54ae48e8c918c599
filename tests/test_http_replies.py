"""What a 200 answer may carry besides a well-formed event stream: a whole JSON reply
(a server that ignored ``stream``), a web page, a stream that never ends."""

from __future__ import annotations

import json

import pytest
from test_faults_cli import assert_one_error_line

from streamkit.events import Finish, StreamError, TextDelta, ToolCallDelta, Usage
from streamkit.pipeline.stream import run_stream
from streamkit.protocol.openai_json import body_kind, completion_events
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport
from streamkit.request import GenerationOptions, GenerationRequest, Message

import fault_server


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


# -- the sans-IO pieces ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "kind"),
    [
        ("text/event-stream", "event-stream"),
        ("text/event-stream; charset=utf-8", "event-stream"),
        (None, "event-stream"),
        ("", "event-stream"),
        ("application/json", "json"),
        ("Application/JSON; charset=utf-8", "json"),
        ("application/vnd.api+json", "json"),
        ("text/html; charset=utf-8", "other"),
        ("text/plain", "other"),
    ],
)
def test_body_kind_by_media_type(content_type, kind):
    assert body_kind(content_type) == kind


def test_a_whole_chat_completion_is_the_events_of_its_stream():
    raw = json.dumps(
        {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hi"},
                },
            ],
            "usage": {"prompt_tokens": 2, "completion_tokens": 1, "total_tokens": 3},
        }
    ).encode()
    assert completion_events(raw) == [TextDelta("Hi"), Finish("stop"), Usage(2, 1, 3)]


def test_whole_tool_calls_keep_their_order_and_ids():
    calls = [
        {"id": "a", "type": "function", "function": {"name": "f", "arguments": "{}"}},
        {"id": "b", "type": "function", "function": {"name": "g", "arguments": "[1]"}},
    ]
    raw = json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"content": None, "tool_calls": calls},
                }
            ]
        }
    ).encode()
    assert completion_events(raw) == [
        ToolCallDelta(0, "a", "f", "{}"),
        ToolCallDelta(1, "b", "g", "[1]"),
        Finish("tool_calls"),
    ]


def test_a_whole_text_completion_keeps_its_logprobs():
    raw = json.dumps(
        {
            "choices": [
                {
                    "index": 0,
                    "text": " Paris",
                    "finish_reason": "length",
                    "logprobs": {
                        "tokens": [" Paris"],
                        "token_logprobs": [-0.5],
                        "top_logprobs": [{" Paris": -0.5}],
                    },
                }
            ]
        }
    ).encode()
    delta, finish = completion_events(raw)
    assert delta.text == " Paris" and delta.logprobs[0].logprob == -0.5
    assert finish == Finish("length")


def test_an_error_object_and_a_stranger_body():
    (error,) = completion_events(b'{"error": {"message": "quota\\nexceeded", "code": 429}}')
    assert error == StreamError("http", "the server reported an error: quota exceeded", 429)
    for raw, reason in [
        (b"[1, 2]", "not a completion object"),
        (b'{"data": 1}', "no choices"),
        (b"{not json", "not valid JSON"),
        (b'{"choices": [{"message": {"content": 5}}]}', "expected shape"),
    ]:
        with pytest.raises(Exception, match=reason):
            completion_events(raw)


# -- through the CLI and the producer ----------------------------------------------------


def test_a_whole_json_chat_reply_is_accepted(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("whole-chat"), "--no-log")
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    assert result.stderr == ""
    events = run_cli("chat", "hi", "--base-url", fault_url("whole-chat"), "--no-log", "--events")
    assert events.code == 0, events.stderr
    delta, finish, usage = lines(events.stdout)
    assert (delta["type"], delta["text"]) == ("delta", "Hello, world")
    assert finish == {"type": "finish", "reason": "stop", "choice": 0}
    assert usage == {
        "type": "usage",
        "prompt_tokens": 5,
        "completion_tokens": 3,
        "total_tokens": 8,
        "reasoning_tokens": None,
    }


def test_a_whole_json_completion_reply_is_accepted(run_cli, fault_url):
    result = run_cli(
        "complete",
        "The capital of France is",
        "--base-url",
        fault_url("whole-completion"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert result.stdout == " Paris.\n"


@pytest.mark.parametrize("lean", [True, False], ids=["h11", "httpx"])
async def test_whole_tool_calls_reach_the_reply(nursery, lean):
    port = await nursery.start(fault_server.serve)
    request = GenerationRequest(
        "chat", None, GenerationOptions(), messages=(Message("user", "call them"),)
    )
    async with build_transport(
        f"http://127.0.0.1:{port}/whole-tools/k/v1",
        None,
        connect_timeout=5,
        idle_timeout=5,
        lean=lean,
    ) as client:
        producer = OpenAIHTTPProducer(client)
        reply = await run_stream(lambda send: producer.stream(request, send), [])
    assert reply.error is None
    assert reply.finish_reason == "tool_calls"
    assert [(c.id, c.name, c.arguments) for c in reply.tool_calls] == [
        ("call_0", "first", '{"n": 0}'),
        ("call_1", "second", '{"n": 1}'),
    ]


def test_an_html_page_is_named_in_one_line(run_cli, fault_url):
    url = fault_url("html")
    result = run_cli("chat", "hi", "--base-url", url, "--no-log")
    assert result.code == 6
    assert result.stdout == ""
    assert_one_error_line(
        result.stderr, f"the server at {url} answered with text/html, not an event stream"
    )
    assert "retrying" not in result.stderr
