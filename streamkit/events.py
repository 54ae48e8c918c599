"""The one event vocabulary every producer emits and every consumer reads.

Events are small frozen ``msgspec`` structs: cheap to build on the hot path,
immutable once made, and encodable as JSON lines with a ``type`` tag for
``--events`` output. Producers (a remote server, a local model) never emit
anything else, so a consumer (printer, store, tool dispatch) never needs to
know which producer is running.

Events travel in *batches* (``list[Event]``): one network read can carry
dozens of chunks, and moving them as one channel item keeps the per-event
cost of the pipeline near zero.
"""

from __future__ import annotations

from typing import Any, Protocol

import msgspec


class TokenLogprob(msgspec.Struct, frozen=True):
    """One sampled token with its log-probability and the top alternatives."""

    token: str
    logprob: float | None
    top: dict[str, float] | None = None


class TextDelta(msgspec.Struct, frozen=True, tag="delta", tag_field="type"):
    """A piece of generated text for one choice."""

    text: str
    choice: int = 0
    logprobs: tuple[TokenLogprob, ...] | None = None
    token_ids: tuple[int, ...] | None = None  # the tokens of ``text``, when asked for


class ReasoningDelta(msgspec.Struct, frozen=True, tag="reasoning", tag_field="type"):
    """A piece of a reasoning model's thinking, which comes before (and is never part of)
    the answer. ``opaque``: parts a provider sends sealed (encrypted reasoning), kept
    as they came so a later turn can send them back."""

    text: str
    choice: int = 0
    opaque: tuple[dict[str, Any], ...] = ()


class ToolCallDelta(msgspec.Struct, frozen=True, tag="tool_call_delta", tag_field="type"):
    """A fragment of a tool call, as the producer received it; fragments with the
    same ``choice`` and ``index`` form one call (see ``AssembledToolCall``)."""

    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""
    choice: int = 0


class AssembledToolCall(msgspec.Struct, frozen=True, tag="tool_call", tag_field="type"):
    """One whole tool call, made from its fragments when its choice finished.

    Producers emit fragments only; the pipeline adds this event (see
    ``streamkit.protocol.toolcalls.ToolCallAssembler``) just before the choice's
    ``Finish`` -- or before the ``StreamError`` of a stream that failed -- so
    that a consumer of ``--events`` can run the calls without reassembling them.
    ``arguments`` is the complete JSON text as the model sent it; ``valid`` says
    whether the call can be run (it has a name and its arguments are a JSON
    object), and ``reason`` why not when it cannot.
    """

    index: int
    id: str | None
    name: str | None
    arguments: str
    valid: bool
    reason: str | None = None
    choice: int = 0


class Usage(msgspec.Struct, frozen=True, tag="usage", tag_field="type"):
    """Token counts reported by the producer (absent counts stay ``None``)."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    reasoning_tokens: int | None = None  # of completion_tokens, where the server says


class Finish(msgspec.Struct, frozen=True, tag="finish", tag_field="type"):
    """A choice ended: ``stop``, ``length``, ``tool_calls``, ``cancelled``, ..."""

    reason: str
    choice: int = 0


class StreamError(msgspec.Struct, frozen=True, tag="error", tag_field="type"):
    """The stream failed; ``kind`` names the error class (see ``streamkit.errors``).

    It is the last event of a stream. Everything received before it stays
    valid: consumers keep and show the partial text.
    """

    kind: str
    message: str
    status: int | None = None


class ToolResult(msgspec.Struct, frozen=True, tag="tool_result", tag_field="type"):
    """What a tool call produced (or why it did not run), as fed back to the model.

    ``status``: ``ok``, ``error`` (the tool failed), ``invalid`` (bad call or
    arguments), ``refused`` (not approved), ``timeout``.
    """

    call_id: str | None
    name: str | None
    status: str
    content: str
    duration_s: float = 0.0
    hop: int = 1
    source: str | None = None  # an MCP tool's ``SERVER/TOOL``: what ``name`` stands for
    record: str | None = None  # what the log keeps instead of ``content`` (binary data)


class ResponseInfo(msgspec.Struct, frozen=True, tag="response", tag_field="type"):
    """A server's answer to one request, besides the text: HTTP status and the kept
    headers (request id, rate limits; see ``streamkit.wire``).

    It describes the exchange, not the reply, so ``--events`` output leaves it
    out (``is_reply_event``); the log and ``--stats`` keep it.
    """

    status: int
    headers: dict[str, str] = {}
    # What was sent, exactly (a schema's ``response_format`` form is chosen by
    # the producer), so that a failure is kept as sent: path, body bytes.
    sent: tuple[str, bytes] | None = None


class JsonPartial(msgspec.Struct, frozen=True, tag="json_partial", tag_field="type"):
    """With a schema, under ``--events``: the JSON value parsed so far (see
    ``streamkit.protocol.json_parse`` for what an unfinished value shows)."""

    value: Any


Event = (
    TextDelta
    | ReasoningDelta
    | ToolCallDelta
    | AssembledToolCall
    | Usage
    | Finish
    | StreamError
    | ToolResult
    | ResponseInfo
    | JsonPartial
)
Batch = list[Event]

_encoder = msgspec.json.Encoder()


def encode_event_line(event: Event) -> bytes:
    """One event as a JSON line (``\\n``-terminated), for ``--events`` output."""
    return _encoder.encode(event) + b"\n"


def is_reply_event(event: Event) -> bool:
    """Whether ``--events`` shows the event (all but the exchange's ``ResponseInfo``)."""
    return type(event) is not ResponseInfo


class BatchSend(Protocol):
    """Where a producer sends its batches: a Trio memory channel, or ``run_stream``'s
    inline sender, which hands each batch to its consumers without a channel hop."""

    async def send(self, value: Batch) -> None: ...
