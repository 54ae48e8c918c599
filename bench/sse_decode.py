"""Decoding speed of an OpenAI chat stream, in memory: no sockets, no event loop.

Why: at a few thousand tokens per second (fast local servers, batch jobs,
relays) the per-chunk decoding cost is what limits a streaming client, and
it is the part streamkit implements itself. This script isolates it.

One realistic response body is built in memory: ``--events`` (default 50,000)
``chat.completion.chunk`` events with the fields OpenAI sends (id, object,
created, model, system_fingerprint, choices[0].delta.content of 1-8
characters of varied text -- ASCII, accents, CJK, emoji, newlines, quotes),
the last one with an empty delta and ``finish_reason: "stop"``, then
``data: [DONE]``. It is cut into 16 KiB reads (cutting lines and UTF-8
sequences wherever they fall), as a socket would deliver it.

(a) Raw SSE decoding, bytes -> events:

* streamkit: ``streamkit.protocol.sse.SSEDecoder.feed`` on each read;
* httpx-sse: its real path, ``EventSource.iter_sse()`` over an
  ``httpx.Response`` whose body is the same reads -- httpx's incremental
  UTF-8 text decoding, httpx-sse's ``SSELineDecoder`` and ``SSEDecoder``
  (``iter_sse`` is the synchronous twin of ``aiter_sse``: the same line
  splitting and decoding, without async-generator overhead);
* openai SDK: ``openai._streaming.SSEDecoder().iter_bytes(reads)``, the
  decoder the SDK's ``Stream`` uses.

(b) Bytes -> text deltas, what a client actually needs:

* streamkit: ``OpenAIStreamDecoder.feed`` (SSE + typed msgspec chunk
  decoding into ``TextDelta`` events);
* openai SDK: a real ``openai.Stream[ChatCompletionChunk]`` over an
  ``httpx2.Response`` whose body is the same reads, so the SDK's own
  ``__stream__`` runs: SSE decoding, ``json.loads``, the error check, and
  ``_process_response_data`` -> ``construct_type`` into pydantic models.
  The text is then read as ``chunk.choices[i].delta.content``.

Each measurement is repeated (decoders interleaved within each round) and the
best (minimum) time is used for the rates and ratios; the median is printed
too. All decoders must produce the same events and the same text, which is
asserted before anything is printed.

Run: ``python bench/sse_decode.py`` (about 30 s), ``--quick`` (a few seconds).
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import httpx2
import httpx_sse
import openai
from openai import OpenAI, Stream
from openai._streaming import SSEDecoder as OpenAISSEDecoder
from openai.types.chat import ChatCompletionChunk

from streamkit.events import TextDelta
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.sse import SSEDecoder

READ_SIZE = 16 * 1024
SOURCE_TEXT = (
    "The quick brown fox jumps over the lazy dog. Streaming clients decode "
    "Server-Sent Events one line at a time, so every token costs a few "
    'microseconds of "bookkeeping" before it reaches the screen.\n\n'
    "```python\ndef f(x: int) -> int:\n    return x * 2  # doubled\n```\n"
    "Café, naïve, Straße, smørrebrød, déjà vu; 東京は晴れです。日本語のテキスト。"
    " Emoji too: 🚀✨🙂 and math: ∑ x² ≤ ∞.\n- item one\n- item two\n"
    "Numbers 3.14159, 2,718 and 1e-9; a tab\there and a backslash \\ there.\n"
)

Decoder = Callable[[list[bytes]], list[Any]]


def build_body(count: int, seed: int = 20240601) -> tuple[bytes, str]:
    """The response body with ``count`` chunk events plus ``[DONE]``, and its text."""
    rng = random.Random(seed)
    pieces: list[str] = []
    position = 0
    source = SOURCE_TEXT * 2  # so a slice may wrap around the end
    for _ in range(count - 1):
        size = rng.randint(1, 8)
        piece = source[position : position + size]
        position = (position + size) % len(SOURCE_TEXT)
        pieces.append(piece)
    created = 1_718_000_000
    base: dict[str, Any] = {
        "id": "chatcmpl-9Zk3xQe7WbY2pVnL0sRt8uFhJcD1a",
        "object": "chat.completion.chunk",
        "created": created,
        "model": "gpt-4o-mini-2024-07-18",
        "system_fingerprint": "fp_0ba0d124f1",
    }
    out: list[bytes] = []
    for i, piece in enumerate(pieces):
        delta: dict[str, str] = {"content": piece}
        if i == 0:
            delta = {"role": "assistant", "content": piece}
        payload = {
            **base,
            "created": created + i // 40,
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": None}],
        }
        out.append(_event(payload))
    last = {
        **base,
        "created": created + count // 40,
        "choices": [{"index": 0, "delta": {}, "logprobs": None, "finish_reason": "stop"}],
    }
    out.append(_event(last))
    out.append(b"data: [DONE]\n\n")
    return b"".join(out), "".join(pieces)


def _event(payload: dict[str, Any]) -> bytes:
    data = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    return b"data: " + data.encode() + b"\n\n"


def split_reads(body: bytes, size: int = READ_SIZE) -> list[bytes]:
    return [body[i : i + size] for i in range(0, len(body), size)]


# (a) bytes -> SSE events ---------------------------------------------------


def streamkit_sse(reads: list[bytes]) -> list[Any]:
    decoder = SSEDecoder()
    events: list[Any] = []
    for data in reads:
        events.extend(decoder.feed(data))
    decoder.close()
    return events


def httpx_sse_events(reads: list[bytes]) -> list[Any]:
    response = httpx.Response(
        200, headers={"content-type": "text/event-stream"}, content=iter(reads)
    )
    return list(httpx_sse.EventSource(response).iter_sse())


def openai_sse(reads: list[bytes]) -> list[Any]:
    return list(OpenAISSEDecoder().iter_bytes(iter(reads)))


# (b) bytes -> text deltas --------------------------------------------------


def streamkit_deltas(reads: list[bytes]) -> list[Any]:
    decoder = OpenAIStreamDecoder()
    texts: list[str] = []
    append = texts.append
    for data in reads:
        for event in decoder.feed(data):
            if type(event) is TextDelta:
                append(event.text)
    assert not decoder.close(), "streamkit reported an incomplete stream"
    return texts


def make_openai_deltas(client: OpenAI) -> Decoder:
    request = httpx2.Request("POST", "http://127.0.0.1:9/v1/chat/completions")

    def openai_deltas(reads: list[bytes]) -> list[Any]:
        response = httpx2.Response(
            200,
            headers={"content-type": "text/event-stream"},
            content=iter(reads),
            request=request,
        )
        stream = Stream(cast_to=ChatCompletionChunk, response=response, client=client)
        texts: list[str] = []
        append = texts.append
        for chunk in stream:
            for choice in chunk.choices:
                if choice.delta.content:
                    append(choice.delta.content)
        return texts

    return openai_deltas


# measurement ----------------------------------------------------------------


def measure(
    decoders: dict[str, Decoder], reads: list[bytes], repeats: int
) -> tuple[dict[str, list[float]], dict[str, list[Any]]]:
    """Times per decoder (interleaved rounds) and each decoder's last output."""
    times: dict[str, list[float]] = {name: [] for name in decoders}
    outputs: dict[str, list[Any]] = {}
    for _ in range(repeats):
        for name, decode in decoders.items():
            gc.collect()
            start = time.perf_counter()
            result = decode(reads)
            times[name].append(time.perf_counter() - start)
            outputs[name] = result
            del result
    return times, outputs


def table(title: str, unit: str, count: int, times: dict[str, list[float]]) -> None:
    print(title)
    print(f"  {'decoder':<40}{'best s':>9}{'median s':>10}{unit + '/s':>14}")
    for name, values in times.items():
        best = min(values)
        print(f"  {name:<40}{best:>9.4f}{statistics.median(values):>10.4f}{count / best:>14,.0f}")


def ratio_line(label: str, ours: float, others: Iterable[float], goal: float) -> None:
    fastest = min(others)
    ratio = fastest / ours
    verdict = "meets" if ratio >= goal else "BELOW"
    print(f"  {label}: {ratio:.2f}x  (goal >= {goal:g}x: {verdict})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="5,000 events, 2 rounds")
    parser.add_argument("--events", type=int, help="chunk events in the body")
    parser.add_argument("--repeats", type=int, help="measurement rounds")
    args = parser.parse_args(argv)
    count = args.events or (5_000 if args.quick else 50_000)
    repeats = args.repeats or (2 if args.quick else 5)

    body, text = build_body(count)
    reads = split_reads(body)
    client = OpenAI(api_key="x", base_url="http://127.0.0.1:9/v1", max_retries=0)

    sse_decoders: dict[str, Decoder] = {
        "streamkit SSEDecoder": streamkit_sse,
        "httpx-sse EventSource.iter_sse": httpx_sse_events,
        "openai SDK SSEDecoder.iter_bytes": openai_sse,
    }
    delta_decoders: dict[str, Decoder] = {
        "streamkit OpenAIStreamDecoder": streamkit_deltas,
        "openai SDK Stream[ChatCompletionChunk]": make_openai_deltas(client),
    }

    sse_times, sse_out = measure(sse_decoders, reads, repeats)
    delta_times, delta_out = measure(delta_decoders, reads, repeats)

    # Same events, same text, from every decoder.
    datas = {name: [event.data for event in events] for name, events in sse_out.items()}
    reference = datas["streamkit SSEDecoder"]
    assert len(reference) == count + 1, len(reference)
    assert reference[-1] == "[DONE]"
    for name, values in datas.items():
        assert values == reference, f"{name} decoded different events"
    for name, texts in delta_out.items():
        assert len(texts) == count - 1, (name, len(texts))
        assert "".join(texts) == text, f"{name} produced different text"

    events = count + 1
    deltas = count - 1
    print(
        f"Python {sys.version.split()[0]}; openai {openai.__version__}, "
        f"httpx-sse {_version('httpx-sse')}, httpx {httpx.__version__}"
    )
    print(
        f"Body: {events:,} SSE events ({count:,} chunks + [DONE]), {len(body) / 1e6:.2f} MB, "
        f"{len(reads):,} reads of {READ_SIZE // 1024} KiB; best of {repeats} rounds "
        "(median shown too); outputs verified identical."
    )
    print()
    table("(a) raw SSE decoding, bytes -> events", "events", events, sse_times)
    ours = min(sse_times["streamkit SSEDecoder"])
    others = [min(v) for k, v in sse_times.items() if k != "streamkit SSEDecoder"]
    ratio_line("streamkit / faster of httpx-sse and openai SDK", ours, others, 1.5)
    print()
    table("(b) bytes -> text deltas", "deltas", deltas, delta_times)
    ours = min(delta_times["streamkit OpenAIStreamDecoder"])
    others = [min(delta_times["openai SDK Stream[ChatCompletionChunk]"])]
    ratio_line("streamkit / openai SDK", ours, others, 5)
    return 0


def _version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


if __name__ == "__main__":
    sys.exit(main())
