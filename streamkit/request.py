"""What to generate: a chat or completion request, independent of producer.

Commands build a ``GenerationRequest``; every producer (remote server, local
model) takes the same value, so options are parsed and checked in one place.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from streamkit.structured import response_format, schema_instruction


class ToolCallRef(msgspec.Struct, frozen=True):
    """A tool call as it appears in an assistant message of the history."""

    id: str
    name: str
    arguments: str


class Message(msgspec.Struct, frozen=True):
    """One chat message: ``tool_calls`` on an assistant turn that asked for
    tools, ``tool_call_id`` on the ``tool`` message answering one of them."""

    role: str
    content: str
    tool_calls: tuple[ToolCallRef, ...] = ()
    tool_call_id: str | None = None

    def to_openai(self) -> dict[str, Any]:
        out: dict[str, Any] = {"role": self.role, "content": self.content}
        if self.tool_calls:
            out["tool_calls"] = [
                {"id": c.id, "type": "function",
                 "function": {"name": c.name, "arguments": c.arguments}}
                for c in self.tool_calls
            ]
        if self.tool_call_id is not None:
            out["tool_call_id"] = self.tool_call_id
        return out


class GenerationOptions(msgspec.Struct, frozen=True, omit_defaults=True):
    """Sampling and length options; ``None`` leaves the producer's default."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: int | None = None  # top alternatives per token; 0 = sampled token only
    top_k: int | None = None
    min_p: float | None = None
    repetition_penalty: float | None = None
    stop_token_ids: tuple[int, ...] = ()
    priority: int | None = None  # scheduling priority (vLLM: lower runs first)
    return_token_ids: bool = False  # ask for the ids of each generated piece
    extra: dict[str, Any] = {}  # any other body field (-o / --extra), merged last
    schema: dict[str, Any] | None = None  # JSON Schema the reply must validate against


class GenerationRequest(msgspec.Struct, frozen=True):
    """A chat (``messages``) or completion (``prompt``) request for ``model``."""

    kind: Literal["chat", "completion"]
    model: str | None
    options: GenerationOptions = GenerationOptions()
    messages: tuple[Message, ...] = ()
    prompt: str = ""
    tools: tuple[dict[str, Any], ...] = ()  # OpenAI "function" tool definitions
    tool_choice: str | None = None  # a tool name to force, or "auto" / "none"
    prompt_ids: tuple[int, ...] = ()  # a completion prompt given as token ids


def openai_body(
    request: GenerationRequest, schema_form: str = "json_schema"
) -> tuple[str, dict[str, Any]]:
    """The endpoint path (relative to the base URL) and JSON body for a request.

    With a schema, ``schema_form`` (one of ``structured.SCHEMA_FORMS``) says how
    it is put in ``response_format``.
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
    if opts.schema is not None:
        body["response_format"] = response_format(schema_form, opts.schema)
    if request.kind == "chat":
        messages = request.messages
        if opts.schema is not None and schema_form == "json_object+prompt":
            messages = (Message("system", schema_instruction(opts.schema)), *messages)
        body["messages"] = [m.to_openai() for m in messages]
        if request.tools:
            body["tools"] = list(request.tools)
            if request.tool_choice in (None, "auto", "none", "required"):
                body["tool_choice"] = request.tool_choice or "auto"
            else:
                body["tool_choice"] = {
                    "type": "function", "function": {"name": request.tool_choice}
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
