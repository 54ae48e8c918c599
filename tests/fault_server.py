"""A scripted OpenAI-compatible streaming server, for faults a real one won't produce.

The scenario is chosen by the URL: ``http://HOST:PORT/<scenario>/<key>/v1``.
Every answer closes its connection (``Connection: close``), but those of
``delayed-keepalive``, which keep it open for the next request, as most
servers do.
``<key>`` separates the state of scenarios that change over successive
requests (``429-then-ok``): tests use a fresh key each.

Run as a program (``python tests/fault_server.py``) it prints ``PORT <n>`` on
stdout and serves until killed; tests in the same process use ``serve``
with ``nursery.start``.
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable

import trio

import scripted_http
from scripted_http import (
    Request,
    end_chunked,
    read_request,
    send_head,
    send_json,
    send_piece,
    start_sse,
    stream_pieces,
)

Handler = Callable[[trio.SocketStream, str, dict], Awaitable[None]]

_attempts: Counter[tuple[str, str]] = Counter()
arrivals: list[tuple[str, float]] = []  # (scenario, trio time) of each request, in-process
_released: defaultdict[str, trio.Event] = defaultdict(trio.Event)  # "held" streams, by key


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {
        "id": "x",
        "object": "chat.completion.chunk",
        "model": "scripted",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def reasoning_chunk(thought: str) -> bytes:
    payload = {
        "choices": [{"index": 0, "delta": {"reasoning_content": thought}, "finish_reason": None}]
    }
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def completion_chunk(text: str, finish: str | None = None) -> bytes:
    payload = {"choices": [{"index": 0, "text": text, "finish_reason": finish}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


DONE = b"data: [DONE]\n\n"
HELLO = [chunk("Hello"), chunk(", world"), chunk(finish="stop"), DONE]


def tool_scenario(body: dict) -> list[bytes]:
    """Ask for the tool calls the first user message describes, then answer with results.

    The first user message is JSON: ``{"calls": [{"name", "arguments"} or
    {"name", "arguments_raw"}], "always": false, "no_ids": false}``. After tool
    results, the answer quotes them -- unless ``always``, which asks again (hop
    limit). ``no_ids``: the calls come without ids, as some servers send them.
    """
    messages = body["messages"]
    spec = json.loads(next(m["content"] for m in messages if m["role"] == "user"))
    if messages[-1]["role"] == "tool" and not spec.get("always"):
        results = []
        for message in reversed(messages):
            if message["role"] != "tool":
                break
            results.insert(0, message["content"])
        return [chunk("Results: "), chunk(" | ".join(results)), chunk(finish="stop"), DONE]
    hop = sum(1 for m in messages if m["role"] == "assistant")
    fragments = []
    for index, call in enumerate(spec["calls"]):
        raw = call.get("arguments_raw", json.dumps(call.get("arguments", {})))
        thirds = [
            raw[: len(raw) // 3],
            raw[len(raw) // 3 : 2 * len(raw) // 3],
            raw[2 * len(raw) // 3 :],
        ]
        fragments.append(
            [(index, call.get("name"), f"call_{hop}_{index}", part) for part in thirds]
        )
    pieces = [chunk("Let me check. ")]
    for step in range(3):  # interleave the calls' fragments
        for frags in fragments:
            index, call_name, call_id, part = frags[step]
            delta: dict = {"index": index, "function": {"arguments": part}}
            if step == 0:
                delta["type"] = "function"
                if not spec.get("no_ids"):
                    delta["id"] = call_id
                if call_name:
                    delta["function"]["name"] = call_name
            payload = {
                "choices": [{"index": 0, "delta": {"tool_calls": [delta]}, "finish_reason": None}]
            }
            pieces.append(b"data: " + json.dumps(payload).encode() + b"\n\n")
    pieces += [chunk(finish="tool_calls"), DONE]
    return pieces


def echo_scores(body: dict) -> dict:
    """Prompt log-probabilities as a correct server gives them, over one-word tokens.

    At position ``n`` the likeliest next token is " the" (-0.5 - n/100), then
    " a" (-2); any other word gets -3 - n/100. With ``echo`` the prompt's
    tokens come first (the first one without a log-probability), then the one
    generated token, as OpenAI's API answers.
    """
    prompt = body["prompt"]
    words = re.findall(r"\s*\S+", prompt)

    def top(n: int) -> dict[str, float]:
        return {" the": -0.5 - n / 100, " a": -2.0}

    def logprob(n: int, word: str) -> float:
        return top(n).get(word, -3.0 - n / 100)

    entries = []
    if body.get("echo"):
        offset = 0
        for n, word in enumerate(words):
            entries.append(
                (
                    word,
                    offset,
                    None if n == 0 else logprob(n, word),
                    None if n == 0 else {**top(n), word: logprob(n, word)},
                )
            )
            offset += len(word)
    entries.append((" the", len(prompt), logprob(len(words), " the"), top(len(words))))
    tokens, offsets, logprobs, tops = (list(column) for column in zip(*entries, strict=True))
    return {
        "choices": [
            {
                "index": 0,
                "text": "".join(tokens),
                "finish_reason": "length",
                "logprobs": {
                    "tokens": tokens,
                    "text_offset": offsets,
                    "token_logprobs": logprobs,
                    "top_logprobs": tops,
                },
            }
        ]
    }


async def scenario(stream: trio.SocketStream, name: str, key: str, request: Request) -> None:
    if name == "by-model":  # the request's model names the scenario (mixed batches)
        name = json.loads(request.body).get("model", "ok")
        key = f"{key}/{json.loads(request.body).get('prompt', '')}"
    attempt = _attempts[name, key]
    _attempts[name, key] += 1
    arrivals.append((name, trio.current_time()))
    auth = request.headers.get("authorization", "")
    if name == "ok":
        await stream_pieces(stream, HELLO)
    elif name == "tools":
        await stream_pieces(stream, tool_scenario(json.loads(request.body)))
    elif name == "delayed":  # a short stream after 200 ms, like a busy server
        await trio.sleep(0.2)
        await stream_pieces(stream, HELLO)
    elif name == "completion":
        await stream_pieces(
            stream, [completion_chunk(" Paris"), completion_chunk(".", "stop"), DONE]
        )
    elif name == "crlf":
        await stream_pieces(stream, [b"".join(HELLO).replace(b"\n", b"\r\n")])
    elif name == "odd-split":
        body = b": comment\r\n\r\n" + b"".join(HELLO)
        await start_sse(stream)
        for i in range(0, len(body), 3):
            await send_piece(stream, body[i : i + 3])
        await end_chunked(stream)
    elif name == "drop":
        await start_sse(stream)
        await send_piece(stream, chunk("partial ") + chunk("text"))
        await trio.sleep(0.05)
        # Close without the terminating zero-length chunk.
    elif name == "stall":
        await start_sse(stream)
        await send_piece(stream, chunk("before the stall"))
        await trio.sleep_forever()
    elif name == "slow":  # one token every 20 ms, for a long time
        await start_sse(stream)
        for i in range(100_000):
            await send_piece(stream, chunk(f"t{i} "))
            await trio.sleep(0.02)
        await end_chunked(stream)
    elif name == "held" and attempt > 0:  # any later request under the key releases it
        _released[key].set()
        await send_json(stream, "200 OK", {"released": True})
    elif name == "held":  # "before ", then nothing until released; then "after" and the end
        await start_sse(stream)
        await send_piece(stream, chunk("before "))
        await _released[key].wait()
        await send_piece(stream, chunk("after") + chunk(finish="stop") + DONE)
        await end_chunked(stream)
    elif name == "429-then-ok" and attempt == 0:
        await send_json(
            stream,
            "429 Too Many Requests",
            {"error": {"message": "slow down"}},
            {"Retry-After": "2"},
        )
    elif name == "500-then-ok" and attempt == 0:
        await send_json(stream, "500 Internal Server Error", {"error": {"message": "oops"}})
    elif name in ("429-then-ok", "500-then-ok"):
        await stream_pieces(stream, HELLO)
    elif name == "always-500":
        await send_json(stream, "500 Internal Server Error", {"error": {"message": "down"}})
    elif name == "401":
        token = auth.removeprefix("Bearer ")
        await send_json(
            stream,
            "401 Unauthorized",
            {"error": {"message": f"Incorrect API key provided: {token}"}},
        )
    elif name == "malformed":
        await stream_pieces(
            stream,
            [
                chunk("good "),
                b"data: {not json\n\n",
                chunk("still good"),
                chunk(finish="stop"),
                DONE,
            ],
        )
    elif name == "error-event":
        await stream_pieces(
            stream, [chunk("partial"), b'data: {"error": {"message": "model crashed"}}\n\n']
        )
    elif name == "no-done":
        await stream_pieces(stream, [chunk("no "), chunk("ending")])
    elif name == "named-done":  # the sentinel under a named event, then a stray chunk
        await stream_pieces(
            stream, [*HELLO[:-1], b"event: done\ndata: [DONE]\n\n", chunk(" -- sent after the end")]
        )
    elif name == "thinks":  # a reasoning model: reasoning_content, then the answer
        await stream_pieces(
            stream,
            [
                reasoning_chunk("Two and "),
                reasoning_chunk("two."),
                chunk("4"),
                chunk(finish="stop"),
                DONE,
            ],
        )
    elif name == "thinks-inline":  # the same, as <think> text inside content
        await stream_pieces(
            stream,
            [
                chunk("<think>Two and"),
                chunk(" two.</th"),
                chunk("ink>\n\n4"),
                chunk(finish="stop"),
                DONE,
            ],
        )
    elif name == "thinks-then-fails":  # thinking, then the server gives up
        await stream_pieces(
            stream,
            [reasoning_chunk("Let me see"), b'data: {"error": {"message": "model crashed"}}\n\n'],
        )
    elif name.startswith("many-"):  # many-N: N one-word chunks, as fast as possible
        count = int(name.split("-")[1])
        await start_sse(stream)
        piece = chunk("tok ")
        batch = 256
        for start in range(0, count, batch):
            await send_piece(stream, piece * min(batch, count - start))
        await send_piece(stream, chunk(finish="stop") + DONE)
        await end_chunked(stream)
    elif name == "echo-scores":
        await send_json(stream, "200 OK", echo_scores(json.loads(request.body)))
    elif name == "no-echo":  # a server that ignores ``echo``
        await send_json(stream, "200 OK", echo_scores({**json.loads(request.body), "echo": False}))
    elif name in REPLY_SHAPES:
        await REPLY_SHAPES[name](stream, request)
    else:
        await send_json(stream, "404 Not Found", {"error": {"message": f"no scenario {name}"}})


async def echo_target(stream: trio.SocketStream, request: Request) -> None:
    """The request's target and whether it came with credentials, as the reply's text."""
    auth = request.headers.get("authorization", "").split(" ")[0] or "none"
    await stream_pieces(
        stream, [chunk(request.target), chunk(f" auth={auth}"), chunk(finish="stop"), DONE]
    )


WHOLE_USAGE = {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}


async def whole_chat(stream: trio.SocketStream, request: Request) -> None:
    """A server that ignores ``stream``: one ``chat.completion`` object."""
    await send_json(
        stream,
        "200 OK",
        {
            "id": "x",
            "object": "chat.completion",
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "stop",
                    "message": {"role": "assistant", "content": "Hello, world"},
                }
            ],
            "usage": WHOLE_USAGE,
        },
    )


async def whole_completion(stream: trio.SocketStream, request: Request) -> None:
    """The same for ``/completions``: one ``text_completion`` object, with logprobs."""
    await send_json(
        stream,
        "200 OK",
        {
            "id": "x",
            "object": "text_completion",
            "model": "scripted",
            "choices": [
                {
                    "index": 0,
                    "text": " Paris.",
                    "finish_reason": "stop",
                    "logprobs": {
                        "tokens": [" Paris", "."],
                        "token_logprobs": [-0.5, -0.1],
                        "top_logprobs": [{" Paris": -0.5}, {".": -0.1}],
                    },
                }
            ],
            "usage": WHOLE_USAGE,
        },
        {"Content-Type": "application/json; charset=utf-8"},
    )


async def whole_tools(stream: trio.SocketStream, request: Request) -> None:
    """A whole message asking for two tool calls (listed, not indexed, as they are)."""
    calls = [
        {
            "id": f"call_{n}",
            "type": "function",
            "function": {"name": name, "arguments": json.dumps({"n": n})},
        }
        for n, name in enumerate(["first", "second"])
    ]
    await send_json(
        stream,
        "200 OK",
        {
            "object": "chat.completion",
            "choices": [
                {
                    "index": 0,
                    "finish_reason": "tool_calls",
                    "message": {"role": "assistant", "content": None, "tool_calls": calls},
                }
            ],
        },
    )


async def html_page(stream: trio.SocketStream, request: Request) -> None:
    """A web page where the API should be (a wrong base URL, a login portal)."""
    page = b"<!doctype html><html><head><title>Sign in</title></head><body></body></html>"
    await send_head(
        stream,
        "200 OK",
        {
            "Content-Type": "text/html; charset=utf-8",
            "Content-Length": str(len(page)),
            "Connection": "close",
        },
    )
    await stream.send_all(page)


async def endless(stream: trio.SocketStream, request: dict) -> None:
    """A stream that never ends: chunks of 1000 "x" until the client goes away."""
    await start_sse(stream)
    piece = chunk("x" * 1000) * 16
    while True:
        await send_piece(stream, piece)


async def whole_large(stream: trio.SocketStream, request: dict) -> None:
    """A whole JSON reply of 256 KiB of text (larger than a small reply cap)."""
    await send_json(
        stream,
        "200 OK",
        {
            "choices": [
                {"index": 0, "finish_reason": "stop", "message": {"content": "y" * (256 << 10)}}
            ]
        },
    )


# Scenarios about what a 200 answer carries, by name (``scenario`` dispatches to them).
REPLY_SHAPES: dict[str, Callable[[trio.SocketStream, Request], Awaitable[None]]] = {
    "echo-target": echo_target,
    "whole-chat": whole_chat,
    "whole-completion": whole_completion,
    "whole-tools": whole_tools,
    "html": html_page,
    "endless": endless,
    "whole-large": whole_large,
}


async def handle(stream: trio.SocketStream) -> None:
    buffer = bytearray()  # what arrived after one request, for the next
    async with stream:
        while (request := await read_request(stream, buffer)) is not None:
            parts = request.target.strip("/").split("/")
            try:
                if parts[-1] == "models":
                    await send_json(stream, "200 OK", {"data": [{"id": "scripted"}]})
                    return
                if parts[0] == "delayed-keepalive":  # "delayed", on a kept-alive connection
                    arrivals.append((parts[0], trio.current_time()))
                    await trio.sleep(0.2)
                    await stream_pieces(stream, HELLO, close=False)
                    continue
                await scenario(stream, parts[0], parts[1], request)
            except trio.BrokenResourceError:
                pass  # the client went away: that is what some tests do
            return


async def serve(*, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
    await scripted_http.serve(handle, task_status=task_status)


if __name__ == "__main__":
    scripted_http.run_program(handle)
