"""A scripted OpenAI-compatible streaming server whose timing is exactly known.

The plan is in the URL: ``http://HOST:PORT/<plan>/<key>/v1`` where ``<plan>``
is ``ttft=0.2,itl=0.05,tokens=8,usage=1,fail=3:503`` (seconds; every field
optional): the first content chunk goes ``ttft`` after the server read the request,
then one token every ``itl``; ``tokens`` content chunks (default: the
request's ``max_tokens``, else 16), then a ``usage`` chunk when ``usage=1``
and the client asked for it; ``think=N``: the first N of those chunks are a
reasoning model's thinking (``reasoning_content``), the rest its answer;
``fail=K:STATUS`` answers every K-th request
with that HTTP status, ``fail=K:break`` cuts every K-th stream after its first
token; ``slots=C``: at most C requests are served at once, the others wait
for a slot (their TTFT counts from when they get one, as a real server's
queue would make it); ``tag=1``: every token says which request it answers
(``tok3.r12``), so a test can tell which reply a later request carries;
``cached=0.03``: a prefix cache -- a request whose first message (a chat's
system prompt) this key has seen before gets that TTFT instead of ``ttft``.
``<key>`` separates the counters of different tests: ``GET
/<plan>/<key>/stats`` returns ``{"requests", "in_flight", "max_in_flight"}``,
``GET /<plan>/<key>/requests`` every request received, ``{"at", "body"}``
(``at``: when it arrived, on the server's clock, seconds), and ``GET
/<plan>/<key>/metrics`` Prometheus metrics in the exposition format under
vLLM's names: requests running and waiting for a slot, KV-cache use (running
over slots) and a histogram of the TTFTs it served.

Each chunk carries ``t``, the server's own seconds since it read the
request (or got its slot), taken just before the chunk is written. When the
environment variable ``TIMED_SERVER_LOG`` names a file, each request's truth
is appended to it as a JSON line: its prompt; ``ttft``, from the request's
arrival to the first token's write; ``ttft_from_read``, from when the server
had read it (their difference: the server's own lateness in reading);
``connection``, the number of the accepted connection that carried it; and
``gaps``, between token writes. Over sockets "arrived" is the kernel's
receive stamp of the request's last segment (``arrivals.py`` says exactly
what the kernel stamps), so that a server slow to read under load counts
the wait in its TTFT, as a serving team does; and a token's write is the
kernel's transmit stamp of its send (``departures.py``), so that a server
preempted between building a token and sending it does not put the delay
into the truth. In-process, and wherever there are no kernel stamps, they
are when the server's read returned and its clock just before the send.

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
from dataclasses import dataclass, field

import httpx
import trio
from arrivals import StampedReceiver
from departures import StampedSender

import scripted_http
from scripted_http import (
    end_chunked,
    read_request,
    send_head,
    send_json,
    send_piece,
    start_sse,
)

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
    slots: int = 0
    tag: bool = False
    cached: float | None = None

    @classmethod
    def parse(cls, text: str) -> Plan:
        fields: dict = {}
        for item in filter(None, text.split(",")):
            name, _, value = item.partition("=")
            if name in ("ttft", "itl", "cached"):
                fields[name] = float(value)
            elif name in ("tokens", "prompt_tokens", "think", "slots"):
                fields[name] = int(value)
            elif name in ("usage", "tag"):
                fields[name] = value == "1"
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
    received: list = field(default_factory=list)  # {"at", "body"} of every request
    prefixes: set = field(default_factory=set)  # first messages seen (cached=)
    waiting: int = 0  # for a slot (slots=)
    ttfts: list = field(default_factory=list)  # from arrival to the first token, as served
    slots: trio.Semaphore | None = None

    def stats(self) -> dict:
        return {
            "requests": self.requests,
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
        }


counters: dict[str, Counters] = {}


def _counters(key: str) -> Counters:
    return counters.setdefault(key, Counters())


def _payload(
    chat: bool, text: str | None, finish: str | None, t: float, thought: bool = False
) -> bytes:
    if chat:
        delta = {} if text is None else {"reasoning_content" if thought else "content": text}
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
    else:
        choice = {"index": 0, "text": text or "", "finish_reason": finish}
    return b"data: " + json.dumps({"choices": [choice], "t": round(t, 6)}).encode() + b"\n\n"


class Exchange:
    """One request's answer: a status, and (for 200) the timed chunks."""

    def __init__(
        self,
        plan: Plan,
        key: str,
        body: dict,
        path: str,
        arrived: float,
        connection: int | None = None,
    ) -> None:
        self.plan = plan
        self.counters = _counters(key)
        self.body = body
        self.arrived = arrived
        self.connection = connection  # which accepted connection carried it (over sockets)
        self.chat = path.endswith("chat/completions")
        self.counters.requests += 1
        self.counters.received.append({"at": arrived, "body": body})
        number = self.number = self.counters.requests
        failing = plan.fail_every and number % plan.fail_every == 0
        self.status = int(plan.fail) if failing and plan.fail.isdigit() else 200
        self.cut = bool(failing and plan.fail == "break")
        self.written: list[float] = []  # each token's write, on the Trio clock
        self._token_out = False  # the piece last yielded is a token's

    def sent(self, at: float | None) -> None:
        """When the piece last yielded left (its kernel transmit stamp; None: not
        known): a token's truth is then that, not the clock read before its send."""
        if at is not None and self._token_out:
            self.written[-1] = at

    def error(self) -> dict:
        return {"error": {"message": f"scripted failure {self.status}"}}

    def error_body(self) -> bytes:
        return json.dumps(self.error()).encode()

    async def chunks(self, started: float) -> AsyncIterator[bytes]:
        """The response body, each piece yielded at its scheduled time.

        ``started``: when the server had read the request (its plan's times
        count from then, or from getting a slot); the TTFTs it serves and
        logs count from ``arrived``.
        """
        plan, counters = self.plan, self.counters
        counters.in_flight += 1
        counters.max_in_flight = max(counters.max_in_flight, counters.in_flight)
        tokens = plan.tokens or self.body.get("max_tokens") or 16
        ttft = plan.ttft
        if plan.cached is not None:
            first = json.dumps((self.body.get("messages") or [None])[0])
            ttft = plan.cached if first in counters.prefixes else plan.ttft
            counters.prefixes.add(first)
        written = self.written
        slots = None
        read_at = started
        if plan.slots:
            slots = counters.slots = counters.slots or trio.Semaphore(plan.slots)
            counters.waiting += 1
            try:
                await slots.acquire()
            finally:
                counters.waiting -= 1
            started = trio.current_time()
        try:
            for k in range(tokens):
                await trio.sleep_until(started + ttft + k * plan.itl)
                now = trio.current_time() - started
                text = f"tok{k}.r{self.number} " if plan.tag else f"tok{k} "
                piece = _payload(self.chat, text, None, now, thought=k < plan.think)
                # the write's time: the piece built (its JSON took ~0.1 ms here), its
                # send next, with no checkpoint between
                at = trio.current_time()
                if not written:
                    counters.ttfts.append(at - self.arrived)
                written.append(at)
                self._token_out = True
                yield piece
                self._token_out = False
                if self.cut:
                    return
            tail = _payload(self.chat, None, "length", trio.current_time() - started)
            wants_usage = (self.body.get("stream_options") or {}).get("include_usage")
            if plan.usage and wants_usage:
                usage = {
                    "prompt_tokens": plan.prompt_tokens,
                    "completion_tokens": tokens,
                    "total_tokens": plan.prompt_tokens + tokens,
                }
                if plan.think:
                    usage["completion_tokens_details"] = {"reasoning_tokens": plan.think}
                tail += b"data: " + json.dumps({"choices": [], "usage": usage}).encode() + b"\n\n"
        finally:
            counters.in_flight -= 1
            if slots is not None:
                slots.release()
            self._log_truth(written, read_at)
        yield tail + DONE

    def _log_truth(self, written: list[float], read_at: float) -> None:
        """The truth of one answer (``TIMED_SERVER_LOG``): its token writes' times.

        ``ttft`` counts from the request's arrival (the kernel's stamp),
        ``ttft_from_read`` from when the server had read it: the two differ
        by the server's own lateness in reading.
        """
        path = os.environ.get("TIMED_SERVER_LOG")
        if not path or not written:
            return
        messages = self.body.get("messages")
        prompt = messages[-1]["content"] if messages else self.body.get("prompt", "")
        record = {
            "prompt": prompt,
            "ttft": written[0] - self.arrived,
            "ttft_from_read": written[0] - read_at,
            "connection": self.connection,
            "gaps": [b - a for a, b in itertools.pairwise(written)],
        }
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps(record) + "\n")


def _report(key: str, what: str) -> object:
    counters = _counters(key)
    return counters.stats() if what == "stats" else counters.received


TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, float("inf"))


def exposition(key: str, plan: Plan) -> str:
    """The key's state as a vLLM server would expose it to Prometheus."""
    counters = _counters(key)
    running = counters.in_flight - counters.waiting
    label = '{model_name="timed"}'
    lines = [
        "# HELP vllm:num_requests_running Requests being served.",
        "# TYPE vllm:num_requests_running gauge",
        f"vllm:num_requests_running{label} {running}",
        "# TYPE vllm:num_requests_waiting gauge",
        f"vllm:num_requests_waiting{label} {counters.waiting}",
        "# TYPE vllm:kv_cache_usage_perc gauge",
        f"vllm:kv_cache_usage_perc{label} {running / plan.slots if plan.slots else 0.0}",
        "# TYPE vllm:time_to_first_token_seconds histogram",
    ]
    for bound in TTFT_BUCKETS:
        le = "+Inf" if bound == float("inf") else repr(bound)
        count = sum(1 for t in counters.ttfts if t <= bound)
        lines.append(
            f'vllm:time_to_first_token_seconds_bucket{{le="{le}",model_name="timed"}} {count}'
        )
    lines.append(f"vllm:time_to_first_token_seconds_count{label} {len(counters.ttfts)}")
    lines.append(f"vllm:time_to_first_token_seconds_sum{label} {sum(counters.ttfts)}")
    return "\n".join(lines) + "\n"


def route(path: str) -> tuple[Plan, str, str]:
    """``/<plan>/<key>/v1/...``: the plan, the counters' key, and the rest."""
    parts = path.strip("/").split("/")
    return Plan.parse(parts[0]), f"{parts[0]}/{parts[1]}", "/".join(parts[2:])


# -- in-process: an httpx transport --------------------------------------------------------


def transport() -> httpx.MockTransport:
    """An httpx transport answering as the server would, on Trio's clock."""

    async def handle(request: httpx.Request) -> httpx.Response:
        plan, key, rest = route(request.url.path)
        if rest in ("stats", "requests"):
            return httpx.Response(200, json=_report(key, rest))
        if rest == "metrics":
            return httpx.Response(200, text=exposition(key, plan))
        exchange = Exchange(plan, key, json.loads(request.content), rest, trio.current_time())
        if exchange.status != 200:
            return httpx.Response(exchange.status, content=exchange.error_body())
        started = trio.current_time()
        return httpx.Response(
            200, headers={"content-type": "text/event-stream"}, content=exchange.chunks(started)
        )

    return httpx.MockTransport(handle)


# -- as a program: HTTP/1.1 over sockets, keep-alive ----------------------------------------


connections_accepted = 0  # as a program or under ``serve``: TCP connections so far


async def _handle(stream: trio.SocketStream) -> None:
    global connections_accepted
    connections_accepted += 1
    connection = connections_accepted
    buffer = bytearray()
    receiver = StampedReceiver(stream)
    sender = StampedSender(stream)  # every byte out goes through it: its stamps are keyed so
    async with stream:
        try:
            while True:
                request = await read_request(receiver, buffer)
                if request is None:
                    return
                started = trio.current_time()
                plan, key, rest = route(request.target)
                if rest in ("stats", "requests"):
                    await send_json(sender, "200 X", _report(key, rest), close=False)
                    continue
                if rest == "metrics":
                    text = exposition(key, plan).encode()
                    await send_head(
                        sender,
                        "200 X",
                        {"Content-Type": "text/plain; version=0.0.4", "Content-Length": len(text)},
                        text,
                    )
                    continue
                body = json.loads(request.body or b"{}")
                exchange = Exchange(plan, key, body, rest, receiver.arrived, connection)
                if exchange.status != 200:
                    await send_json(sender, f"{exchange.status} X", exchange.error(), close=False)
                    continue
                await start_sse(sender, "200 X", close=False)
                async for piece in exchange.chunks(started):
                    await send_piece(sender, piece)
                    exchange.sent(sender.last_sent)
                if exchange.cut:
                    return  # no terminating chunk: the stream breaks
                await end_chunked(sender)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            sender.close()


async def serve(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    await scripted_http.serve(_handle, backlog=1024, task_status=task_status)


if __name__ == "__main__":
    scripted_http.run_program(_handle, backlog=1024)
