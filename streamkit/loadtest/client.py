"""One timed request: every timestamp is taken when its bytes arrive, before parsing.

A ``Measurement`` is filled in as the response arrives, so that a request
cut short (the caller's ``--timeout`` cancel scope, a broken connection)
still tells what it received. bench never retries a failure: it is
recorded with its type -- ``http_<status>``, ``connection``, ``timeout``,
``protocol``, ``model`` -- and the run goes on. (A request the server
dropped unanswered on a kept-alive connection is sent again, once: see
rawhttp.py.)

Three targets share the measurement: ``RawHTTPTarget`` (rawhttp.py: an
OpenAI-compatible server at a plain ``http://`` URL, read with trio sockets
and h11), ``HTTPTarget`` (one at an ``https://`` URL, read over the httpx
transport), both decoded by the sans-IO ``OpenAIStreamDecoder``, and
``BackendTarget`` (the local model, whose event batches are timed as they
leave the model thread).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Protocol

import trio

from streamkit.errors import StreamkitError
from streamkit.events import (
    Batch,
    Event,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.workload import Item
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.wire import openai_body
from streamkit.providers.llama.tokenizer import Tokenizer

if TYPE_CHECKING:
    from collections.abc import Callable

    from streamkit.providers.backend import Backend
    from streamkit.providers.openai_http import OpenAIHTTPProducer
    from streamkit.providers.transport import Transport

_CONTENT = (TextDelta, ToolCallDelta, ReasoningDelta)  # output of any kind: TTFT
_ANSWER = (TextDelta, ToolCallDelta)
_HEADERS = (("Accept", "text/event-stream"), ("Content-Type", "application/json"))


def error_type(kind: str, status: int | None) -> str:
    """The key a failure is counted under: ``http_503``, ``timeout``, ..."""
    return f"http_{status}" if kind == "http" and status else kind


class Measurement:
    """What one request received, and when (``trio.current_time()`` seconds)."""

    __slots__ = (
        "chunks",
        "end",
        "error",
        "first",
        "first_answer",
        "itl",
        "last",
        "message",
        "reasoning",
        "reasoning_chunks",
        "sent",
        "text",
        "usage",
    )

    def __init__(self, sent: float) -> None:
        self.sent = sent
        self.first: float | None = None  # output of any kind, thinking included
        self.first_answer: float | None = None  # the answer's first (text or tool call)
        self.reasoning: list[str] = []
        self.reasoning_chunks = 0
        self.last = sent
        self.end: float | None = None
        self.itl: list[float] = []
        self.chunks = 0
        self.text: list[str] = []
        self.usage: Usage | None = None
        self.error: str | None = None
        self.message: str | None = None

    def feed(self, events: list[Event], at: float) -> None:
        """Events decoded from the bytes that arrived at ``at``."""
        for event in events:
            if isinstance(event, _CONTENT):
                if self.first is None:
                    self.first = at
                else:
                    self.itl.append(at - self.last)
                self.last = at
                self.chunks += 1
                if type(event) is ReasoningDelta:
                    self.reasoning.append(event.text)
                    self.reasoning_chunks += 1
                    continue
                if self.first_answer is None:
                    self.first_answer = at
                if type(event) is TextDelta:
                    self.text.append(event.text)
            elif type(event) is Usage:
                self.usage = event
            elif type(event) is StreamError:
                self.fail(error_type(event.kind, event.status), event.message)

    def timed_from(self, at: float) -> None:
        """The request is timed from ``at``, nothing of its answer received yet.

        rawhttp.py's: the moment its bytes go to the kernel on a kept-alive
        connection (building them is the client's time, not the server's),
        or, on a connection opened for it (its first sending, or its second
        after a kept-alive one closed under it), the moment the connect
        began: a connect is in its TTFT.
        """
        self.sent = self.last = at

    def fail(self, kind: str, message: str) -> None:
        if self.error is None:
            self.error, self.message = kind, message

    def sample(
        self,
        index: int,
        origin: float,
        *,
        item: Item,
        tokenizer: Tokenizer | None,
        scheduled_at: float | None = None,
        end: float | None = None,
    ) -> Sample:
        """The finished measurement as a ``Sample``, times relative to ``origin``."""
        end = end if end is not None else self.end if self.end is not None else self.last
        usage = self.usage
        prompt = usage.prompt_tokens if usage and usage.prompt_tokens else item.prompt_tokens
        if usage is not None and usage.completion_tokens is not None:
            output, source = usage.completion_tokens, "usage"
        elif tokenizer is not None:
            output, source = tokenizer.count("".join(self.text)), "tokenizer"
        else:
            output, source = self.chunks, "chunks"
        thinking: int | None = None
        if usage is not None and usage.reasoning_tokens is not None:
            thinking = usage.reasoning_tokens
        elif self.reasoning_chunks:
            thinking = (
                tokenizer.count("".join(self.reasoning))
                if tokenizer is not None
                else self.reasoning_chunks
            )
        return Sample(
            index=index,
            sent_at=self.sent - origin,
            end_at=end - origin,
            scheduled_at=scheduled_at,
            first_at=None if self.first is None else self.first - origin,
            first_answer_at=None if self.first_answer is None else self.first_answer - origin,
            reasoning_tokens=thinking,
            itl=self.itl,
            prompt_tokens=prompt,
            output_tokens=output,
            tokens_source=source,
            error=self.error,
            message=self.message,
        )


class Target(Protocol):
    """Where requests go; ``send`` fills ``measurement`` and never raises for a failure.

    ``timing_source`` says what stamps the reads, for the report: ``clock``
    (the Trio clock as each read returns) or ``kernel`` (rawhttp.py).
    ``connections_opened``: the TCP connections opened so far, or None when
    the target cannot count them; the runner takes the difference over a
    run's measured phase, because a connect there is inside a TTFT.
    """

    @property
    def timing_source(self) -> str: ...

    @property
    def connections_opened(self) -> int | None: ...

    async def send(self, item: Item, measurement: Measurement) -> None: ...


class HTTPTarget:
    """An OpenAI-compatible server over a ``Transport``, with the producer's error mapping.

    bench uses it for ``https://`` base URLs (the httpx transport); a plain
    ``http://`` one goes to ``RawHTTPTarget`` (rawhttp.py), whose reads are
    timed before any parsing.

    Each request in flight has a transport of its own, taken from a free
    list and put back when it ends, so its keep-alive connection serves the
    next request (after warm-up, no TCP connect inside a TTFT). One shared
    httpx client would do the same through httpcore's pool, whose bookkeeping
    grows with the square of the connections: at 256 requests in flight that
    cost seconds of TTFT (bench/bench_accuracy.py).
    """

    timing_source = "clock"
    connections_opened = None  # inside httpcore's pools, out of sight

    def __init__(
        self, producer: OpenAIHTTPProducer, new_transport: Callable[[], Transport]
    ) -> None:
        self.producer = producer
        self._new_transport = new_transport
        self._idle = [producer.transport]
        self._transports = [producer.transport]

    async def aclose(self) -> None:
        for transport in self._transports:
            await transport.aclose()

    async def send(self, item: Item, measurement: Measurement) -> None:
        if self._idle:
            transport = self._idle.pop()
        else:
            transport = self._new_transport()
            self._transports.append(transport)
        try:
            await self._send(transport, item, measurement)
        finally:
            self._idle.append(transport)

    async def _send(self, transport: Transport, item: Item, measurement: Measurement) -> None:
        from streamkit.providers.transport import TransportError

        path, body = openai_body(item.request)
        body.update(item.extra_body())
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        clock = trio.current_time
        decoder = OpenAIStreamDecoder()
        try:
            async with transport.stream("POST", path, raw, _HEADERS) as response:
                if response.status >= 400:
                    error = await self.producer._status_error(response, path)
                    measurement.end = clock()
                    measurement.fail(error_type("http", error.status), error.message)
                    return
                async for data in response.body:
                    at = clock()
                    if measurement.end is not None:
                        continue  # after [DONE]: read to the body's end, so that the
                        # connection goes back to the pool for the next request
                    measurement.feed(decoder.feed(data), at)
                    if decoder.chunks.done:
                        measurement.end = at
                if measurement.end is None:
                    measurement.feed(decoder.close(), clock())
                if measurement.end is None:
                    measurement.end = clock()
        except (TransportError, OSError) as exc:
            measurement.end = clock()
            error = self.producer._translate(exc, measurement.first is not None)
            measurement.fail(error.kind, error.message)
        except StreamkitError as exc:  # an undecodable event stream
            measurement.end = clock()
            measurement.fail(exc.kind, exc.message)


class BackendTarget:
    """Any ``Backend`` (the local model): event batches timed as they arrive."""

    timing_source = "clock"
    connections_opened = None  # no network

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    async def send(self, item: Item, measurement: Measurement) -> None:
        send, receive = trio.open_memory_channel[Batch](16)

        async def produce() -> None:
            async with send:
                await self.backend.stream(item.request, send)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(produce)
            async with receive:
                async for batch in receive:
                    measurement.feed(batch, trio.current_time())
        measurement.end = trio.current_time()
