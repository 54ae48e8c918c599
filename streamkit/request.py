"""What to generate: a chat or completion request, independent of producer.

Commands build a ``GenerationRequest``; every producer (remote server, local
model) takes the same value, so options are parsed and checked in one place.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


class Message(msgspec.Struct, frozen=True):
    """One chat message."""

    role: str
    content: str


class GenerationOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """Sampling and length options; ``None`` leaves the producer's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # top alternatives per token; 0 = sampled token only


class GenerationRequest(msgspec.Struct, frozen=True):
    """A chat (``messages``) or completion (``prompt``) request for ``model``."""

    kind: Literal["chat", "completion"]
    model: str | None
    options: GenerationOptions = GenerationOptions()
    messages: tuple[Message, ...] = ()
    prompt: str = ""


def openai_body(request: GenerationRequest) -> tuple[str, dict[str, Any]]:
    """The endpoint path (relative to the base URL) and JSON body for a request."""
    opts = request.options
    body: dict[str, Any] = {"stream": True, "stream_options": {"include_usage": True}}
    if request.model:
        body["model"] = request.model
    for name in ("max_tokens", "temperature", "top_p", "seed"):
        value = getattr(opts, name)
        if value is not None:
            body[name] = value
    if opts.stop:
        body["stop"] = list(opts.stop)
    if request.kind == "chat":
        body["messages"] = [{"role": m.role, "content": m.content} for m in request.messages]
        if opts.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = opts.logprobs
        return "chat/completions", body
    body["prompt"] = request.prompt
    if opts.logprobs is not None:
        body["logprobs"] = opts.logprobs
    return "completions", body
