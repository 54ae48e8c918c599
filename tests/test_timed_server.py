"""The timed server's truth over sockets: a TTFT counts from the request's arrival.

A request sent in two writes (head, then body after a gap) arrived when its
last byte did: with kernel stamps, the stamp of the second segment (taken
in the client's ``send`` on loopback, so between the times the client read
before and after it); on a ``MockClock``, when the server's read of it
returned, which is exactly the second write's time.
"""

from __future__ import annotations

import json
import uuid

import pytest
import timed_server
import trio
from arrivals import arrival_clock

PLAN = "ttft=0.05,itl=0.01,tokens=2"


async def post_in_two_writes(port: int, key: str, gap: float) -> tuple[float, float]:
    """Head, ``gap``, body; the answer read to its end. The clock before and after the
    body's write."""
    body = json.dumps({"model": "m", "prompt": "number 7.", "stream": True}).encode()
    head = (
        f"POST /{PLAN}/{key}/v1/completions HTTP/1.1\r\nHost: x\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        await stream.send_all(head)
        await trio.sleep(gap)
        before = trio.current_time()
        await stream.send_all(body)
        after = trio.current_time()
        answer = b""
        while not answer.endswith(b"0\r\n\r\n"):
            answer += await stream.receive_some(65536)
    assert b"data: [DONE]" in answer
    return before, after


async def truth_of_one_request(
    nursery: trio.Nursery, log: str, gap: float
) -> tuple[dict, dict, float, float]:
    port = await nursery.start(timed_server.serve)
    key = uuid.uuid4().hex
    before, after = await post_in_two_writes(port, key, gap)
    [received] = timed_server.counters[f"{PLAN}/{key}"].received
    [record] = [json.loads(line) for line in (await trio.Path(log).read_text()).splitlines()]
    return received, record, before, after


async def test_truth_starts_at_the_kernel_stamp_of_the_last_segment(nursery, tmp_path, monkeypatch):
    if arrival_clock() is None:
        pytest.skip("no kernel receive stamps here")
    log = tmp_path / "truth.jsonl"
    monkeypatch.setenv("TIMED_SERVER_LOG", str(log))
    received, record, before, after = await truth_of_one_request(nursery, str(log), gap=0.02)
    error = arrival_clock().error
    # the second segment's stamp: the first one's was before ``before``, by the gap
    assert before - error <= received["at"] <= after + error
    # read no earlier than it arrived; the plan counts from the read
    assert record["ttft"] >= record["ttft_from_read"] >= 0.05
    assert record["prompt"] == "number 7." and record["connection"] >= 1
    assert len(record["gaps"]) == 1


async def test_without_kernel_stamps_truth_starts_at_the_read(
    nursery, tmp_path, monkeypatch, autojump_clock
):
    log = tmp_path / "truth.jsonl"
    monkeypatch.setenv("TIMED_SERVER_LOG", str(log))
    received, record, before, after = await truth_of_one_request(nursery, str(log), gap=0.5)
    assert received["at"] == before == after  # the read that completed it, at once
    assert record["ttft"] == record["ttft_from_read"] == pytest.approx(0.05, abs=1e-9)
    assert record["gaps"] == [pytest.approx(0.01, abs=1e-9)]


async def test_a_token_sent_late_is_timed_when_it_left(nursery, tmp_path, monkeypatch):
    """A server held up between building a token and sending it (as a preempted one
    is): the truth is the kernel's transmit stamp of the send, so the gap holds the
    delay, which the clock read before the send would leave out."""
    if arrival_clock() is None:
        pytest.skip("no kernel stamps here")
    log = tmp_path / "truth.jsonl"
    monkeypatch.setenv("TIMED_SERVER_LOG", str(log))
    send_piece = timed_server.send_piece

    async def second_token_late(stream, data: bytes) -> None:
        if b"tok1 " in data:
            await trio.sleep(0.03)
        await send_piece(stream, data)

    monkeypatch.setattr(timed_server, "send_piece", second_token_late)
    _, record, _, _ = await truth_of_one_request(nursery, str(log), gap=0)
    [gap] = record["gaps"]
    assert 0.01 + 0.03 <= gap < 0.01 + 0.03 + 0.02
