"""A scripted server that counts requests by ``Idempotency-Key``, for the Ray tests.

Every chat or completion request is answered (after ``delay`` seconds) with a
short stream whose text is ``re: <the prompt>``; the server remembers, per
idempotency key, how often it was asked and for what prompt. Control:

- ``GET /stats``: ``{"requests": n, "keys": {key: [count, prompt]},
  "times": [each request's time on the server's clock], "auth": [every distinct
  Authorization header]}``;
- ``POST /admin`` with ``{"delay": s}`` sets the answer delay, ``{"throttle": s}``
  answers the next request with 429 and ``Retry-After: s``, ``{"reset": true}``
  forgets every count.

Run as a program, it prints ``PORT <n>``.
"""

from __future__ import annotations

import contextlib
import json

import trio

import scripted_http
from fault_server import DONE
from scripted_http import read_request, send_json, stream_pieces

state: dict = {
    "delay": 0.0,
    "throttle": None,
    "keys": {},
    "times": [],
    "throttled_at": None,
    "auth": [],
}


def _prompt(body: dict) -> str:
    if "messages" in body:
        return body["messages"][-1]["content"]
    return body.get("prompt", "")


def _chunks(text: str, chat: bool) -> list[bytes]:
    choice: dict = {"index": 0, "finish_reason": None}
    if chat:
        choice["delta"] = {"content": text}
    else:
        choice["text"] = text
    end = {"index": 0, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
    return [b"data: " + json.dumps({"choices": [c]}).encode() + b"\n\n" for c in (choice, end)] + [
        DONE
    ]


async def handle(stream: trio.SocketStream) -> None:
    """One request; a client killed mid-answer (a worker the test killed) ends only it."""
    with contextlib.suppress(trio.BrokenResourceError):
        await _answer(stream)


async def _answer(stream: trio.SocketStream) -> None:
    async with stream:
        request = await read_request(stream)
        if request is None:
            return
        now = trio.current_time()
        if request.target == "/stats":
            await send_json(
                stream,
                "200 OK",
                {
                    "requests": len(state["times"]),
                    "keys": state["keys"],
                    "times": state["times"],
                    "throttled_at": state["throttled_at"],
                    "auth": state["auth"],
                },
            )
            return
        if request.target == "/admin":
            order = json.loads(request.body)
            if order.get("reset"):
                state.update(keys={}, times=[], throttled_at=None, auth=[])
            for name in ("delay", "throttle"):
                if name in order:
                    state[name] = order[name]
            await send_json(stream, "200 OK", {"ok": True})
            return
        if request.target.endswith("/models"):
            await send_json(stream, "200 OK", {"data": [{"id": "scripted"}]})
            return
        body = json.loads(request.body)
        state["times"].append(now)
        if state["throttle"] is not None:
            seconds, state["throttle"] = state["throttle"], None
            state["throttled_at"] = now
            await send_json(
                stream,
                "429 Too Many Requests",
                {"error": {"message": "slow down"}},
                {"Retry-After": str(seconds)},
            )
            return
        auth = request.headers.get("authorization")
        if auth not in state["auth"]:
            state["auth"].append(auth)
        key = request.headers.get("idempotency-key", "")
        seen = state["keys"].setdefault(key, [0, _prompt(body)])
        seen[0] += 1
        await trio.sleep(state["delay"])
        chat = request.target.endswith("/chat/completions")
        await stream_pieces(stream, _chunks("re: " + _prompt(body), chat))


if __name__ == "__main__":
    scripted_http.run_program(handle)
