"""A whole, non-streamed OpenAI answer to streamkit events, sans-IO.

Some servers (and proxies in front of them) ignore ``"stream": true`` and
answer with one ``chat.completion`` or ``text_completion`` object. That is a
complete reply, not a broken stream: ``completion_events`` turns it into the
events its stream would have carried -- text, tool calls, finish reason,
logprobs, usage -- by rewriting it as one chunk (``message`` as ``delta``,
each tool call given its index) for the same ``ChunkParser``, so both
shapes are read by one set of rules.

``body_kind`` says from a response's ``Content-Type`` which decoder its body
needs; an HTML page (a wrong base URL, a login portal) is neither.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from streamkit.errors import ProtocolError, one_line
from streamkit.events import Event, StreamError
from streamkit.protocol.openai import ChunkParser
from streamkit.protocol.sse import ServerSentEvent

BodyKind = Literal["event-stream", "json", "other"]


def body_kind(content_type: str | None) -> BodyKind:
    """What a 200 answer's body is, by its media type. None or empty counts as an event
    stream (servers that leave the header out stream anyway)."""
    media = media_type(content_type)
    if not media or media == "text/event-stream":
        return "event-stream"
    if media == "application/json" or media.endswith("+json"):
        return "json"
    return "other"


def media_type(content_type: str | None) -> str:
    """``text/html; charset=utf-8`` -> ``text/html``."""
    return (content_type or "").split(";", 1)[0].strip().lower()


def not_a_stream_message(content_type: str | None, url: str) -> str:
    """The one line for an answer that is neither an event stream nor JSON."""
    return (
        f"the server at {url} answered with {media_type(content_type)}, not an event "
        "stream (is that the base URL of an OpenAI-compatible API?)"
    )


def completion_events(raw: bytes) -> list[Event]:
    """The events of a whole ``chat.completion`` / ``text_completion`` body.

    An ``{"error": ...}`` body is one ``StreamError``; a body that is not a
    completion raises ``ProtocolError``.
    """
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"the server's JSON answer is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise ProtocolError("the server's JSON answer is not a completion object")
    if payload.get("error") is not None and not payload.get("choices"):
        return [_error(payload["error"])]
    choices = payload.get("choices")
    if not isinstance(choices, list) or not all(isinstance(c, dict) for c in choices):
        raise ProtocolError("the server's JSON answer is not a completion: it has no choices")
    chunk = {
        "choices": [_as_chunk_choice(choice) for choice in choices],
        "usage": payload.get("usage"),
    }
    parser = ChunkParser()
    events = parser.feed([ServerSentEvent(data=msgspec.json.encode(chunk).decode())])
    if parser.malformed:
        raise ProtocolError("the server's JSON answer is not a completion of the expected shape")
    return events


def _as_chunk_choice(choice: dict[str, Any]) -> dict[str, Any]:
    """A whole choice as the one stream chunk that would carry all of it."""
    out: dict[str, Any] = {
        key: choice[key]
        for key in ("index", "finish_reason", "logprobs", "text", "token_ids")
        if key in choice
    }
    message = choice.get("message")
    if isinstance(message, dict):
        delta: dict[str, Any] = {"content": message.get("content")}
        calls = message.get("tool_calls")
        if isinstance(calls, list):
            # A stream numbers its calls; a whole message just lists them.
            delta["tool_calls"] = [
                {**call, "index": call.get("index", position)}
                for position, call in enumerate(calls)
                if isinstance(call, dict)
            ]
        if isinstance(message.get("function_call"), dict):
            delta["function_call"] = message["function_call"]
        out["delta"] = delta
    return out


def _error(error: Any) -> StreamError:
    status = None
    message = error
    if isinstance(error, dict):
        message = error.get("message") or msgspec.json.encode(error).decode()
        code = error.get("code")
        status = code if isinstance(code, int) else None
    return StreamError("http", f"the server reported an error: {one_line(message)}", status)
