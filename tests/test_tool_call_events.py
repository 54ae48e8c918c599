"""Whole tool calls next to their fragments, from a real server and through the relay."""

from __future__ import annotations

import json

from test_relay import chat, frames_until_end, running_relay
from trio_websocket import open_websocket_url


def test_real_server_forced_call_is_assembled_once_in_events(run_cli, llama_server):
    """llama.cpp sends each fragment twice (``tool_calls`` and ``function_call``) and
    repeats id and name on every delta: still one whole call, its text the fragments'."""
    result = run_cli(
        "chat",
        "What is 12 times 12?",
        "--tool",
        "calculate",
        "--tool-choice",
        "calculate",
        "--max-hops",
        "1",
        "--base-url",
        llama_server,
        "-n",
        "48",
        "--events",
        "--no-log",
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    first_hop = records[: next(i for i, r in enumerate(records) if r["type"] == "finish") + 1]
    fragments = [r for r in first_hop if r["type"] == "tool_call_delta"]
    (call,) = [r for r in first_hop if r["type"] == "tool_call"]
    assert fragments, result.stdout + result.stderr
    assert first_hop[-2] is call  # just before the finish
    assert call["name"] == "calculate"
    assert call["arguments"] == "".join(f["arguments"] for f in fragments)
    try:
        is_object = isinstance(json.loads(call["arguments"]), dict)
    except ValueError:
        is_object = False
    assert call["valid"] is is_object
    assert (call["reason"] is None) is is_object
    (tool_result,) = [r for r in records if r["type"] == "tool_result"]
    assert tool_result["call_id"] == call["id"]


async def test_relay_sends_fragments_and_whole_calls_under_the_events_names():
    spec = {
        "calls": [
            {"name": "calculate", "arguments": {"expression": "6*7"}},
            {"name": "weather", "arguments_raw": '{"city": '},
        ]
    }
    async with running_relay("tools") as (url, _), open_websocket_url(url) as ws:
        await ws.send_message(chat("r1", json.dumps(spec)))
        frames = await frames_until_end(ws, {"r1"})
    kinds = [f["type"] for f in frames if f["type"] != "delta"]
    assert kinds == [*["tool_call_delta"] * 6, "tool_call", "tool_call", "finish"]
    deltas = [f["call"] for f in frames if f["type"] == "tool_call_delta"]
    assert {d["type"] for d in deltas} == {"tool_call_delta"}
    whole = [f["call"] for f in frames if f["type"] == "tool_call"]
    assert [(c["type"], c["name"], c["valid"]) for c in whole] == [
        ("tool_call", "calculate", True),
        ("tool_call", "weather", False),
    ]
    assert whole[0]["arguments"] == '{"expression": "6*7"}'
    assert frames[-1] == {"type": "finish", "id": "r1", "finish_reason": "tool_calls"}
