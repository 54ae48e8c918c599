"""Telling an error answer that says "the prompt is longer than the context", sans-IO.

Servers word it their own way in an HTTP error: OpenAI, vLLM and
llama-cpp-python's server say "maximum context length is N tokens",
llama.cpp's own server "exceeds the available context size", OpenAI's code
is ``context_length_exceeded``. Locally the same condition is a
``ModelError``; an answer read here is one too, so it has one exit code.
"""

from __future__ import annotations

_PHRASES = (
    "maximum context length",
    "context_length_exceeded",
    "exceeds the available context size",
    "exceed_context_size",
    "context window",
)


def exceeds_context(message: str) -> bool:
    """Whether an error message says the prompt does not fit the model's context."""
    lowered = message.lower()
    return any(phrase in lowered for phrase in _PHRASES)
