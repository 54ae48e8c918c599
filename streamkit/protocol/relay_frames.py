"""The relay's JSON frame protocol, sans-IO: client frames in, checked values out.

Client to relay (text frames, one JSON object each)::

    {"type": "chat", "id": "r1", "messages": [{"role": "user", "content": "Hi"}],
     "max_tokens": 64, "temperature": 0.7, "top_p": 0.9, "seed": 1, "stop": "\\n",
     "model": "..."}
    {"type": "complete", "id": "r2", "prompt": "Once upon a time", ...options}
    {"type": "cancel", "id": "r1"}

Relay to client, every frame with the request ``id``: ``reasoning`` (``text``:
a reasoning model's thinking, before its answer), ``delta`` (``text``),
``tool_call_delta`` (``call``: a fragment), ``tool_call`` (``call``: the whole
call, as in ``--events``), ``usage`` (``usage``), ``queued`` (``position``),
then exactly one ``finish`` (``finish_reason``) or ``error`` (``error``:
``{"type", "message"}``), which is the request's last frame.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from streamkit.protocol.records import GenerationFields, RecordProblem, build_request
from streamkit.protocol.reply import Reply
from streamkit.protocol.structured import check_reply
from streamkit.request import GenerationOptions, GenerationRequest


class _Generate(GenerationFields, forbid_unknown_fields=True, kw_only=True):
    type: Literal["chat", "complete"]
    id: str | int


class _Cancel(msgspec.Struct, forbid_unknown_fields=True):
    type: Literal["cancel"]
    id: str | int


class GenerateFrame(msgspec.Struct, frozen=True):
    id: str | int
    request: GenerationRequest


class CancelFrame(msgspec.Struct, frozen=True):
    id: str | int


class BadFrame(msgspec.Struct, frozen=True):
    """A frame that cannot be acted on; ``id`` is None when it had none."""

    id: str | int | None
    message: str


def parse_frame(
    data: str | bytes, *, default_model: str | None, max_tokens: int | None
) -> GenerateFrame | CancelFrame | BadFrame:
    try:
        raw = msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        return BadFrame(None, f"not valid JSON: {exc}")
    if not isinstance(raw, dict):
        return BadFrame(None, "a frame must be a JSON object")
    frame_id = raw.get("id")
    if not isinstance(frame_id, str | int) or isinstance(frame_id, bool):
        return BadFrame(None, "a frame needs an `id` (string or integer)")
    kind = raw.get("type")
    try:
        if kind == "cancel":
            return CancelFrame(msgspec.convert(raw, _Cancel).id)
        frame = msgspec.convert(raw, _Generate)
    except msgspec.ValidationError as exc:
        return BadFrame(frame_id, str(exc))
    if max_tokens is not None and frame.max_tokens is not None and frame.max_tokens > max_tokens:
        return BadFrame(frame_id, f"max_tokens is limited to {max_tokens} here")
    kind = "chat" if frame.type == "chat" else "completion"
    request = build_request(
        kind, frame, model=default_model, defaults=GenerationOptions(max_tokens=max_tokens)
    )
    if isinstance(request, RecordProblem):
        return BadFrame(frame_id, request.reason)
    return GenerateFrame(frame_id, request)


def error_frame(frame_id: Any, kind: str, message: str) -> dict[str, Any]:
    return {"type": "error", "id": frame_id, "error": {"type": kind, "message": message}}


def origin_allowed(origin: str, own: tuple[str, int], allowed: tuple[str, ...]) -> bool:
    """Whether a browser page at ``origin`` may connect to the relay listening at ``own``.

    Any web page the user visits could otherwise drive a local relay, so
    without ``--allowed-origin`` only the relay's own origin may (a page
    whose host and port are the relay's address and port; ``localhost``
    for a loopback address); ``--allowed-origin`` lists the others (``null``
    for a page opened from a file), ``*`` allows all. Clients that send no
    Origin (not browsers) are not asked.
    """
    if "*" in allowed or origin in allowed:
        return True
    scheme, _, netloc = origin.partition("://")
    host, _, port = netloc.rpartition(":")
    address, own_port = own
    names = {address.lower(), f"[{address.lower()}]"}
    if address in ("127.0.0.1", "::1"):
        names |= {"localhost", "127.0.0.1", "[::1]"}
    return scheme in ("http", "https") and port == str(own_port) and host.lower() in names


def finish_frame(frame_id: Any, reply: Reply, schema: dict[str, Any] | None) -> dict[str, Any]:
    """A request's last frame; with a ``schema``, the reply is checked first: valid, the
    frame carries its ``json`` value; not, it is a ``schema`` error frame."""
    finish = {"type": "finish", "id": frame_id, "finish_reason": reply.finish_reason or "stop"}
    if schema is None or reply.finish_reason == "cancelled":
        return finish
    value, mismatch = check_reply(reply.text, schema)
    if mismatch is not None:
        return error_frame(frame_id, "schema", mismatch)
    return {**finish, "json": value}
