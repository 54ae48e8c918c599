"""A scripted OpenAI-compatible streaming server whose timing is exactly known.

The plan is in the URL: ``http://HOST:PORT/<plan>/<key>/v1`` where ``<plan>``
is ``ttft=0.2,itl=0.05,tokens=8,usage=1,fail=3:503`` (seconds; every field
optional): the first content chunk goes ``ttft`` after the request arrived,
then one token every ``itl``; ``tokens`` content chunks (default: the
request's ``max_tokens``, else 16), then a ``usage`` chunk when ``usage=1``
and the client asked for it; ``think=N``: the first N of those chunks are a
reasoning model's thinking (``reasoning_content``), the rest its answer;
``fail=K:STATUS`` answers every K-th request
with that HTTP status, ``fail=K:break`` cuts every K-th stream after its first
token. ``<key>`` separates the counters of different tests: ``GET
/<plan>/<key>/stats`` returns ``{"requests", "in_flight", "max_in_flight"}``.

Each chunk carries ``t``, the server's own seconds since the request
arrived, taken just before the chunk is written. When the environment
variable ``TIMED_SERVER_LOG`` names a file, each request's truth (its prompt,
and its TTFT and gaps as sent) is appended to it as a JSON line.

Used two ways: in-process as an httpx transport (``transport()``), where
under ``trio.testing.MockClock`` every time is exact; and as a program
(``python tests/timed_server.py`` prints ``PORT <n>``) over real sockets,
with keep-alive connections.
"""

from __future__ import annotations

import itertools
import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import trio

import scripted_http
from scripted_http import end_chunked, read_request, send_json, send_piece, start_sse

DONE = b"data: [DONE]\n\n"


@dataclass(frozen=True)
class Plan:
    ttft: float = 0.1
    itl: float = 0.02
    tokens: int | None = None
    usage: bool = True
    fail_every: int = 0
    fail: str = ""
    prompt_tokens: int = 7
    think: int = 0

    @classmethod
    def parse(cls, text: str) -> Plan:
        fields: dict = {}
        for item in filter(None, text.split(",")):
            name, _, value = item.partition("=")
            if name in ("ttft", "itl"):
                fields[name] = float(value)
            elif name in ("tokens", "prompt_tokens", "think"):
                fields[name] = int(value)
            elif name == "usage":
                fields["usage"] = value == "1"
            elif name == "fail":
                every, _, what = value.partition(":")
                fields["fail_every"], fields["fail"] = int(every), what
            else:
                raise ValueError(f"unknown plan field {name!r}")
        return cls(**fields)


@dataclass
class Counters:
    requests: int = 0
    in_flight: int = 0
    max_in_flight: int = 0


counters: dict[str, Counters] = {}


def _counters(key: str) -> Counters:
    return counters.setdefault(key, Counters())


def _payload(chat: bool, text: str | None, finish: str | None, t: float,
             thought: bool = False) -> bytes:
    if chat:
        delta = {} if text is None else {"reasoning_content" if thought else "content": text}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice], "t": round(t, 6)}).encode() + b"\n\n"


class Exchange:
    """One request's answer: a status, and (for 200) the timed chunks."""

    def __init__(self, plan: Plan, key: str, body: dict, path: str) -> None:
        self.plan = plan
        self.counters = _counters(key)
        self.body = body
        self.chat = path.endswith("chat/completions")
        self.counters.requests += 1
        number = self.counters.requests
        failing = plan.fail_every and number % plan.fail_every == 0
        self.status = int(plan.fail) if failing and plan.fail.isdigit() else 200
        self.cut = bool(failing and plan.fail == "break")

    def error(self) -> dict:
        return {"error": {"message": f"scripted failure {self.status}"}}

    def error_body(self) -> bytes:
        return json.dumps(self.error()).encode()

    async def chunks(self, started: float) -> AsyncIterator[bytes]:
        """The response body, each piece yielded at its scheduled time."""
        plan, counters = self.plan, self.counters
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        tokens = plan.tokens or self.body.get("max_tokens") or 16
        sent: list[float] = []
        try:
            for k in range(tokens):
                await trio.sleep_until(started + plan.ttft + k * plan.itl)
                now = trio.current_time() - started
                sent.append(now)
                yield _payload(self.chat, f"tok{k} ", None, now, thought=k < plan.think)
                if self.cut:
                    return
            tail = _payload(self.chat, None, "length", trio.current_time() - started)
            wants_usage = (self.body.get("stream_options") or {}).get("include_usage")
            if plan.usage and wants_usage:
                usage = {"prompt_tokens": plan.prompt_tokens, "completion_tokens": tokens,
                         "total_tokens": plan.prompt_tokens + tokens}
                if plan.think:
                    usage["completion_tokens_details"] = {"reasoning_tokens": plan.think}
                tail += b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
        finally:
            counters.in_flight -= 1
            _log_truth(self.body, sent)
        yield tail + DONE


def _log_truth(body: dict, sent: list[float]) -> None:
    path = os.environ.get("TIMED_SERVER_LOG")
    if not path or not sent:
        return
    messages = body.get("messages")
    prompt = messages[-1]["content"] if messages else body.get("prompt", "")
    record = {"prompt": prompt, "ttft": sent[0],
              "gaps": [b - a for a, b in itertools.pairwise(sent)]}
    with open(path, "a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")


def route(path: str) -> tuple[Plan, str, str]:
    """``/<plan>/<key>/v1/...``: the plan, the counters' key, and the rest."""
    parts = path.strip("/").split("/")
    return Plan.parse(parts[0]), f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


# -- in-process: an httpx transport --------------------------------------------------------


def transport() -> httpx.MockTransport:
    """An httpx transport answering as the server would, on Trio's clock."""

    async def handle(request: httpx.Request) -> httpx.Response:
        plan, key, rest = route(request.url.path)
        if rest == "stats":
            return httpx.Response(200, json=vars(_counters(key)))
        exchange = Exchange(plan, key, json.loads(request.content), rest)
        if exchange.status != 200:
            return httpx.Response(exchange.status, content=exchange.error_body())
        started = trio.current_time()
        return httpx.Response(200, headers={"content-type": "text/event-stream"},
                              content=exchange.chunks(started))

    return httpx.MockTransport(handle)


# -- as a program: HTTP/1.1 over sockets, keep-alive ----------------------------------------


connections_accepted = 0  # as a program or under ``serve``: TCP connections so far


async def _handle(stream: trio.SocketStream) -> None:
    global connections_accepted
    connections_accepted += 1
    buffer = bytearray()
    async with stream:
        try:
            while True:
                request = await read_request(stream, buffer)
                if request is None:
                    return
                started = trio.current_time()
                plan, key, rest = route(request.target)
                if rest == "stats":
                    await send_json(stream, "200 X", vars(_counters(key)), close=False)
                    continue
                exchange = Exchange(plan, key, json.loads(request.body or b"{}"), rest)
                if exchange.status != 200:
                    await send_json(stream, f"{exchange.status} X", exchange.error(),
                                    close=False)
                    continue
                await start_sse(stream, "200 X", close=False)
                async for piece in exchange.chunks(started):
                    await send_piece(stream, piece)
                if exchange.cut:
                    return  # no terminating chunk: the stream breaks
                await end_chunked(stream)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass


async def serve(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    await scripted_http.serve(_handle, backlog=1024, task_status=task_status)


if __name__ == "__main__":
    scripted_http.run_program(_handle, backlog=1024)
