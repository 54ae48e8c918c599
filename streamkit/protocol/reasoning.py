"""A reasoning model's thoughts in the wire forms servers stream them in, sans-IO.

- ``delta.reasoning_content``: DeepSeek, vLLM, SGLang, llama.cpp's server;
- ``delta.reasoning``: OpenRouter, Groq, vLLM's newer form, Ollama;
- ``delta.reasoning_details``: OpenRouter's typed parts, sent *beside*
  ``reasoning`` with the same thought, so their text counts only when no
  plain field came; encrypted parts are opaque data a later turn may have
  to send back, kept as they came and never shown.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

_TEXT_FIELDS = {"reasoning.text": "text", "reasoning.summary": "summary"}


def reasoning_of(
    reasoning_content: str | None, reasoning: str | None, details: Sequence[Any] | None
) -> tuple[str, tuple[dict[str, Any], ...]]:
    """The thought's text in one delta, and its opaque parts (encrypted reasoning)."""
    text = (reasoning_content or "") + (reasoning or "")
    opaque: list[dict[str, Any]] = []
    from_details: list[str] = []
    for part in details or ():
        if not isinstance(part, dict):
            continue
        field = _TEXT_FIELDS.get(part.get("type", ""))
        if field is None:
            opaque.append(part)
        elif isinstance(part.get(field), str):
            from_details.append(part[field])
    if not text:
        text = "".join(from_details)
    return text, tuple(opaque)
