"""The exact bytes a request is sent as, and what the response says about it, sans-IO.

One encoding serves the remote producer and the failed-request log, so a
replay sends byte for byte what was sent the first time. From a response,
only the headers worth keeping are kept -- the request id a provider asks for
in a support ticket, rate limits, ``retry-after``, server time -- never
cookies or anything that could carry a credential.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from streamkit.protocol.structured import response_format, schema_instruction, server_schema
from streamkit.request import GenerationOptions, GenerationRequest, Message

KEPT_HEADERS = frozenset({"x-request-id", "request-id", "retry-after", "openai-processing-ms"})
KEPT_PREFIXES = ("x-ratelimit-",)

_encode = msgspec.json.Encoder().encode


def request_bytes(
    request: GenerationRequest, schema_form: str = "json_schema"
) -> tuple[str, bytes]:
    """The endpoint path (relative to the base URL) and the JSON body, as sent."""
    path, body = openai_body(request, schema_form)
    return path, _encode(body)


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The response headers that matter for debugging and rate limits, lower-cased."""
    kept = {}
    for name, value in headers:
        name = name.lower()
        if name in KEPT_HEADERS or name.startswith(KEPT_PREFIXES):
            kept[name] = value
    return kept


def describe_headers(headers: dict[str, str]) -> str:
    """``x-request-id=abc x-ratelimit-remaining-requests=99`` (request id first)."""
    names = sorted(headers, key=lambda n: (n not in ("x-request-id", "request-id"), n))
    return " ".join(f"{name}={headers[name]}" for name in names)


def openai_body(
    request: GenerationRequest, schema_form: str = "json_schema"
) -> tuple[str, dict[str, Any]]:
    """The endpoint path (relative to the base URL) and JSON body for a request.

    With a schema, ``schema_form`` (one of ``structured.SCHEMA_FORMS``) says how
    it is put in ``response_format``, bounded for the reply's budget where the
    form allows (``structured.server_schema``).
    """
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
    body.update(server_sampling_fields(opts))
    schema = None
    if opts.schema is not None:
        schema, _ = server_schema(schema_form, opts.schema, opts.max_tokens)
        body["response_format"] = response_format(schema_form, schema)
    if request.kind == "chat":
        messages = request.messages
        if schema is not None and schema_form == "json_object+prompt":
            messages = (Message("system", schema_instruction(schema)), *messages)
        body["messages"] = [m.to_openai() for m in messages]
        if request.tools:
            body["tools"] = list(request.tools)
            if request.tool_choice in (None, "auto", "none", "required"):
                body["tool_choice"] = request.tool_choice or "auto"
            else:
                body["tool_choice"] = {
                    "type": "function",
                    "function": {"name": request.tool_choice},
                }
        if opts.logprobs is not None:
            body["logprobs"] = True
            body["top_logprobs"] = opts.logprobs
        return "chat/completions", {**body, **opts.extra}
    body["prompt"] = list(request.prompt_ids) if request.prompt_ids else request.prompt
    if opts.logprobs is not None:
        body["logprobs"] = opts.logprobs
    return "completions", {**body, **opts.extra}


def server_sampling_fields(opts: GenerationOptions) -> dict[str, Any]:
    """The sampling fields beyond the OpenAI set, by the names vLLM and llama.cpp use."""
    fields: dict[str, Any] = {
        name: getattr(opts, name)
        for name in ("top_k", "min_p", "repetition_penalty", "priority")
        if getattr(opts, name) is not None
    }
    if opts.stop_token_ids:
        fields["stop_token_ids"] = list(opts.stop_token_ids)
    if opts.return_token_ids:
        fields["return_token_ids"] = True
    return fields
