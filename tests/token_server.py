"""A scripted server that keeps every request body, for tests that assert bodies.

URLs are ``http://HOST:PORT/<scenario>/<key>/v1``; ``GET .../<key>/bodies``
returns the bodies received under ``<key>``, byte for byte (as latin-1
strings). Scenarios:

- ``echo``: a short completion or chat stream; with ``return_token_ids`` in
  the body, each text chunk carries ``token_ids`` like vLLM's.
- ``fail-once``: the first request under a key gets HTTP 500, later ones
  ``echo``.
- ``no-json-schema``: HTTP 400 for a ``response_format`` of type
  ``json_schema`` (as servers without structured outputs answer), else
  ``echo``.

Any scenario answers a body with ``scripted_status`` (an int) with that
HTTP status, and streams the body's ``scripted_reply`` (a string, else its JSON),
four characters a chunk every ``PACE`` seconds (a model's pace: each chunk a
network read of its own), instead of "Hello, world" when the body has one; a
body's ``scripted_usage`` (an object) is sent as the stream's last chunk's
``usage``.

Every answer carries the response headers ``--debug`` and the log keep
(``x-request-id``, ``x-ratelimit-*``, ``openai-processing-ms``) and one they
must not (``set-cookie``). Run as a program, it prints ``PORT <n>``.
"""

from __future__ import annotations

import json
from collections import defaultdict

import trio

import scripted_http
from fault_server import DONE
from scripted_http import end_chunked, read_request, send_json, send_piece, start_sse, stream_pieces

bodies: defaultdict[str, list[bytes]] = defaultdict(list)

PIECES = [("Hello", [9906]), (",", [11]), (" world", [1917])]
PACE = 0.02  # seconds between the chunks of a scripted reply


def _headers(key: str, number: int) -> dict[str, str]:
    return {
        "x-request-id": f"req-{key[:8]}-{number}",
        "x-ratelimit-remaining-requests": "99",
        "x-ratelimit-limit-tokens": "5000",
        "openai-processing-ms": "7",
        "set-cookie": "session=secret-cookie",
    }


def _pieces(body: dict) -> list[tuple[str, list[int]]]:
    reply = body.get("scripted_reply")
    if reply is None:
        return PIECES
    text = reply if isinstance(reply, str) else json.dumps(reply)
    return [(text[i : i + 4], [i]) for i in range(0, len(text), 4)]


def _chunks(body: dict, chat: bool) -> list[bytes]:
    out = []
    for text, ids in _pieces(body):
        choice: dict = {"index": 0, "finish_reason": None}
        if chat:
            choice["delta"] = {"content": text}
        else:
            choice["text"] = text
        if body.get("return_token_ids"):
            choice["token_ids"] = ids
        out.append(b"data: " + json.dumps({"choices": [choice]}).encode() + b"\n\n")
    end = {"index": 0, "finish_reason": "stop", **({"delta": {}} if chat else {"text": ""})}
    out.append(b"data: " + json.dumps({"choices": [end]}).encode() + b"\n\n")
    if "scripted_usage" in body:
        usage = {"choices": [], "usage": body["scripted_usage"]}
        out.append(b"data: " + json.dumps(usage).encode() + b"\n\n")
    return [*out, DONE]


async def handle(stream: trio.SocketStream) -> None:
    async with stream:
        request = await read_request(stream)
        if request is None:
            return
        parts = request.target.strip("/").split("/")
        if parts[-1] == "models":
            await send_json(stream, "200 OK", {"data": [{"id": "scripted"}]})
            return
        name, key = parts[0], parts[1]
        if parts[-1] == "bodies":
            await send_json(stream, "200 OK", [b.decode("latin-1") for b in bodies[key]])
            return
        bodies[key].append(request.body)
        number = len(bodies[key])
        headers = _headers(key, number)
        if name == "fail-once" and number == 1:
            await send_json(
                stream,
                "500 Internal Server Error",
                {"error": {"message": "the scripted server failed"}},
                headers,
            )
            return
        body = json.loads(request.body)
        if name == "no-json-schema" and body.get("response_format", {}).get("type") == (
            "json_schema"
        ):
            await send_json(
                stream,
                "400 Bad Request",
                {"error": {"message": "response_format: json_schema is not supported"}},
            )
            return
        if "scripted_status" in body:
            await send_json(
                stream,
                f"{body['scripted_status']} Scripted",
                {"error": {"message": "the scripted status"}},
            )
            return
        chat = parts[-1] == "completions" and parts[-2] == "chat"
        if "scripted_reply" not in body:
            await stream_pieces(stream, _chunks(body, chat), headers)
            return
        await start_sse(stream, headers=headers)
        for piece in _chunks(body, chat):
            await send_piece(stream, piece)
            await trio.sleep(PACE)
        await end_chunked(stream)


if __name__ == "__main__":
    scripted_http.run_program(handle)
