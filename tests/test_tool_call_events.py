"""Whole tool calls next to their fragments, from a real server."""

from __future__ import annotations

import json


def test_real_server_forced_call_is_assembled_once_in_events(run_cli, llama_server):
    """llama.cpp sends each fragment twice (``tool_calls`` and ``function_call``) and
    repeats id and name on every delta: still one whole call, its text the fragments'."""
    result = run_cli("chat", "What is 12 times 12?", "--tool", "calculate", "--tool-choice",
                     "calculate", "--max-hops", "1", "--base-url", llama_server, "-n", "48",
                     "--events", "--no-log")
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
