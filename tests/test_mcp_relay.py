"""Tools on the relay's side: a relayed chat request's MCP calls, results as frames."""

from __future__ import annotations

import json
import sys
from functools import partial

import trio
from test_mcp import SERVER, ask
from test_relay import chat, frames_until_end, running_relay
from trio_websocket import open_websocket_url

from streamkit.config import McpServerSpec
from streamkit.pipeline.tool_hops import ToolHops
from streamkit.tools.confirm import approved_in_advance
from streamkit.tools.dispatch import Dispatcher
from streamkit.tools.mcp_servers import open_servers


def hops(servers, *, yes: bool = False) -> ToolHops:
    return ToolHops(Dispatcher({}, approve=partial(approved_in_advance, yes), sources=[servers]))


async def test_a_relayed_request_gets_its_tool_results_and_the_answer():
    spec = McpServerSpec(command=sys.executable, args=[SERVER, "stdio"], confirm=["shout"])
    warnings: list[str] = []
    async with (
        open_servers({"test": spec}, warn=warnings.append) as servers,
        running_relay("tools", tools=hops(servers)) as (url, _),
        open_websocket_url(url) as ws,
    ):
        await ws.send_message(
            chat(
                1,
                ask(
                    {"name": "add", "arguments": {"a": 1, "b": 2}},
                    {"name": "shout", "arguments": {"word": "a"}},
                ),
            )
        )
        frames = await frames_until_end(ws, {1})
    results = [frame["result"] for frame in frames if frame["type"] == "tool_result"]
    assert [(r["source"], r["status"], r["content"]) for r in results] == [
        ("test/add", "ok", "3"),
        ("test/shout", "refused", "the user did not approve this tool call"),
    ]
    text = "".join(frame["text"] for frame in frames if frame["type"] == "delta")
    assert text == "Let me check. Results: 3 | the user did not approve this tool call"
    assert frames[-1] == {"type": "finish", "id": 1, "finish_reason": "stop"}
    assert warnings == []


async def test_a_cancel_frame_cancels_the_running_mcp_call(tmp_path):
    marker = tmp_path / "marker"
    spec = McpServerSpec(
        command=sys.executable, args=[SERVER, "stdio"], env={"STREAMKIT_TEST_MARKER": str(marker)}
    )
    async with (
        open_servers({"test": spec}, warn=print) as servers,
        running_relay("tools", tools=hops(servers)) as (url, _),
        open_websocket_url(url) as ws,
    ):
        await ws.send_message(chat(7, ask({"name": "slow", "arguments": {"seconds": 60}})))
        with trio.fail_after(30):
            while not marker.exists():  # noqa: ASYNC110 (the server's own file)
                await trio.sleep(0.05)
        await ws.send_message(json.dumps({"type": "cancel", "id": 7}))
        frames = await frames_until_end(ws, {7})
        with trio.fail_after(10):
            while marker.read_text() != "cancelled":  # noqa: ASYNC110
                await trio.sleep(0.05)
    assert frames[-1] == {"type": "finish", "id": 7, "finish_reason": "cancelled"}
    assert not [frame for frame in frames if frame["type"] == "tool_result"]
