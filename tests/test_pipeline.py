"""The pipeline, printer and remote producer in-process, on a mock clock."""

from __future__ import annotations

import io
import json
import uuid

import pytest
import trio
import trio.testing

from streamkit.events import Finish, TextDelta, ToolCallDelta
from streamkit.pipeline.stream import run_stream
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport
from streamkit.request import GenerationRequest, Message
from streamkit.sinks.printer import FLUSH_CHUNKS, Printer

from fault_server import serve


class RecordingOut(io.BytesIO):
    """A binary stdout that records each write with the (mock) time it happened."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, bytes]] = []

    def write(self, data: bytes) -> int:
        self.writes.append((trio.current_time(), bytes(data)))
        return super().write(data)


def tokens_producer(count: int, gap: float, then_sleep: float = 0.0):
    async def produce(send):
        for i in range(count):
            await send.send([TextDelta(f"t{i} ")])
            await trio.sleep(gap)
        await trio.sleep(then_sleep)
        await send.send([Finish("stop")])

    return produce


async def test_printer_writes_first_token_at_once_then_coalesces(autojump_clock):
    out = RecordingOut()
    reply = await run_stream(tokens_producer(200, 0.001), [Printer(out)])
    assert out.writes[0][1] == b"t0 "
    assert out.getvalue().decode() == reply.text == "".join(f"t{i} " for i in range(200))
    sizes = [data.count(b" ") for _, data in out.writes]
    assert max(sizes) <= FLUSH_CHUNKS
    assert len(out.writes) <= 200 // FLUSH_CHUNKS + 200 * 0.001 / 0.05 + 3


async def test_printer_flushes_pending_text_after_50ms_of_silence(autojump_clock):
    out = RecordingOut()
    start = trio.current_time()
    await run_stream(tokens_producer(2, 0.0, then_sleep=10.0), [Printer(out)])
    times = [t - start for t, _ in out.writes]
    assert [data for _, data in out.writes] == [b"t0 ", b"t1 "]
    assert times[0] == 0.0
    assert 0.0 < times[1] <= 0.05 + 1e-9  # not held until the stream ends at 10 s


async def test_every_consumer_sees_every_batch():
    seen: list[list] = [[], []]

    def collector(into):
        async def consume(receive):
            async with receive:
                async for batch in receive:
                    into.extend(batch)

        return consume

    reply = await run_stream(tokens_producer(50, 0.0), [collector(seen[0]), collector(seen[1])])
    assert seen[0] == seen[1]
    assert len(seen[0]) == 51
    assert reply.finish_reason == "stop"


async def test_timeout_keeps_partial_text_and_reports_timeout(autojump_clock):
    out = RecordingOut()
    start = trio.current_time()
    stop = trio.CancelScope(relative_deadline=5.0)
    reply = await run_stream(tokens_producer(3, 1.0, then_sleep=100.0), [Printer(out)], stop=stop)
    assert trio.current_time() - start == 5.0
    assert reply.text == out.getvalue().decode() == "t0 t1 t2 "
    assert reply.error.kind == "timeout"
    assert reply.exception().exit_code == 5


async def test_cancelled_stop_scope_ends_with_cancelled_finish(autojump_clock):
    stop = trio.CancelScope()
    events = []

    async def consume(receive):
        async with receive:
            async for batch in receive:
                events.extend(batch)
                if len(events) == 3:
                    stop.cancel()

    reply = await run_stream(tokens_producer(100, 0.5), [consume], stop=stop)
    assert events[:3] == [TextDelta("t0 "), TextDelta("t1 "), TextDelta("t2 ")]
    assert events[-1] == Finish("cancelled")
    assert reply.finish_reason == "cancelled"
    assert reply.error is None


def tool_call_producer(*, finish: bool):
    async def produce(send):
        await send.send([ToolCallDelta(0, "c1", "f", '{"a"')])
        await send.send([ToolCallDelta(0, None, None, ": 1}"), TextDelta("")])
        if finish:
            await send.send([Finish("tool_calls")])
        else:
            await trio.sleep_forever()

    return produce


async def test_events_show_fragments_then_the_assembled_call_before_the_finish():
    out = io.BytesIO()
    reply = await run_stream(tool_call_producer(finish=True), [Printer(out, events=True)])
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in records] == [
        "tool_call_delta",
        "tool_call_delta",
        "delta",
        "tool_call",
        "finish",
    ]
    assert records[3] == {
        "type": "tool_call",
        "index": 0,
        "id": "c1",
        "name": "f",
        "arguments": '{"a": 1}',
        "valid": True,
        "reason": None,
        "choice": 0,
    }
    assert [c.arguments for c in reply.tool_calls] == ['{"a": 1}']


async def test_a_call_cut_short_by_the_timeout_is_shown_before_the_error(autojump_clock):
    out = io.BytesIO()
    stop = trio.CancelScope(relative_deadline=5.0)
    await run_stream(tool_call_producer(finish=False), [Printer(out, events=True)], stop=stop)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [r["type"] for r in records][-2:] == ["tool_call", "error"]
    assert (records[-2]["arguments"], records[-2]["valid"]) == ('{"a": 1}', True)
    assert records[-1]["kind"] == "timeout"


@pytest.fixture(params=[True, False], ids=["h11", "httpx"])
def lean(request) -> bool:
    """Which transport the producer gets: each behaviour holds over both."""
    return request.param


async def _stream_from(scenario: str, nursery, lean: bool, *, idle: float = 60.0, retries: int = 2):
    port = await nursery.start(serve)
    url = f"http://127.0.0.1:{port}/{scenario}/{uuid.uuid4().hex}/v1"
    retries_seen = []
    async with build_transport(
        url, "key-1234", connect_timeout=5, idle_timeout=idle, lean=lean
    ) as client:
        producer = OpenAIHTTPProducer(
            client,
            api_key="key-1234",
            max_retries=retries,
            on_retry=lambda error, delay: retries_seen.append((error.status, delay)),
        )
        request = GenerationRequest("chat", "m", messages=(Message("user", "hi"),))
        out = RecordingOut()

        async def produce(send):
            await producer.stream(request, send)

        reply = await run_stream(produce, [Printer(out)])
    nursery.cancel_scope.cancel()
    return reply, retries_seen


async def test_retry_after_is_honoured(autojump_clock, lean):
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        reply, retries = await _stream_from("429-then-ok", nursery, lean)
    assert retries == [(429, 2.0)]
    assert trio.current_time() - start >= 2.0
    assert reply.text == "Hello, world"
    assert reply.error is None


async def test_idle_timeout_on_a_stalled_stream(autojump_clock, lean):
    async with trio.open_nursery() as nursery:
        start = trio.current_time()
        reply, retries = await _stream_from("stall", nursery, lean, idle=30.0)
    assert trio.current_time() - start >= 30.0
    assert reply.text == "before the stall"
    assert reply.error.kind == "timeout"
    assert retries == []


async def test_status_error_without_retries_left_is_an_error_event(lean):
    async with trio.open_nursery() as nursery:
        reply, retries = await _stream_from("always-500", nursery, lean, retries=0)
    assert reply.error.kind == "http"
    assert reply.error.status == 500
    assert reply.error.message.startswith("HTTP 500 Internal Server Error from POST /always-500/")
    assert reply.error.message.endswith("/v1/chat/completions: down")
    assert retries == []


async def test_a_429_pauses_every_request_of_the_producer(autojump_clock, lean):
    """One request's 429 + Retry-After holds back the others (a batch slows as a whole)."""
    from fault_server import arrivals

    async with trio.open_nursery() as nursery:
        port = await nursery.start(serve)
        url = f"http://127.0.0.1:{port}/429-then-ok/{uuid.uuid4().hex}/v1"
        async with build_transport(
            url, None, connect_timeout=5, idle_timeout=60, lean=lean
        ) as client:
            producer = OpenAIHTTPProducer(client)
            request = GenerationRequest("chat", "m", messages=(Message("user", "hi"),))
            start = trio.current_time()
            arrivals.clear()
            replies = []

            async def one(delay: float) -> None:
                await trio.sleep(delay)
                replies.append(await run_stream(lambda send: producer.stream(request, send), []))

            async with trio.open_nursery() as requests:
                requests.start_soon(one, 0.0)  # gets the 429, Retry-After: 2
                requests.start_soon(one, 0.5)  # must wait for the pause too
        nursery.cancel_scope.cancel()
    times = [round(t - start, 3) for _, t in arrivals]
    assert times[0] == 0.0
    assert all(t >= 2.0 for t in times[1:]), times  # nobody went before the pause ended
    assert len(times) == 3
    assert [r.text for r in replies] == ["Hello, world", "Hello, world"]
