"""What to generate: a chat or completion request, independent of producer.

Commands build a ``GenerationRequest``; every producer (remote server, local
model) takes the same value, so options are parsed and checked in one place.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec


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
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
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
    # Sent as the ``Idempotency-Key`` header (not in the body): a batch line sent again
    # after a lost worker carries the same key, so a server that honours it answers once.
    idempotency_key: str | None = None
