"""Prompt log-probabilities echoed by a completions endpoint, and a check of them.

A server scores text when asked for ``/completions`` with ``echo``,
``logprobs`` and one generated token: the answer's ``logprobs`` then covers
the prompt's own tokens (``tokens``, ``text_offset``, ``token_logprobs``,
``top_logprobs``), followed by the generated one. Entry *i* must describe
the distribution the model gives token *i* after tokens ``0..i-1``.

Not every server gets that right (llama-cpp-python's server reads each entry
from the logits of the *same* position, which predict token *i + 1*), and the
answer looks self-consistent either way. ``check_position`` therefore compares
one echoed entry with what the same server says about the same position when
asked the ordinary way: the prompt cut just before that token, one greedy
token generated, its ``top_logprobs``.
"""

from __future__ import annotations

import math
from typing import Any

import msgspec

from streamkit.errors import ProtocolError

# Why a server that answered without the prompt's entries cannot score, and what
# can (llama.cpp's own llama-server is such a server: it ignores ``echo``).
NO_ECHO = (
    "this server cannot score prompts: it does not echo their log-probabilities; "
    "the local model can (no base URL), or a server that echoes them, such as "
    "`python -m llama_cpp.server`"
)

# Two evaluations of one position on one server differ by batch-size rounding
# (float32 logits); an off-by-one position differs by whole nats.
CONSISTENCY_TOLERANCE = 0.05


class CannotScore(ProtocolError):
    """The server answered, but without the prompt log-probabilities scoring needs."""


class EchoedPrompt(msgspec.Struct, frozen=True):
    """The prompt's tokens as the server saw them, with their log-probabilities."""

    tokens: list[str]
    offsets: list[int]  # character offset of each token in the prompt
    logprobs: list[float | None]  # None where nothing predicts the token (the first)
    top: list[dict[str, float] | None]


def completion_logprobs(payload: Any) -> dict[str, Any]:
    """The ``choices[0].logprobs`` object of a completions answer."""
    try:
        found = payload["choices"][0]["logprobs"]
    except (KeyError, IndexError, TypeError):
        raise ProtocolError("unexpected /completions answer: no choices[0].logprobs") from None
    if not isinstance(found, dict):
        raise CannotScore(
            "the server returned no log-probabilities: it cannot score text "
            "(needs /completions with logprobs)"
        )
    return found


def parse_echo(payload: Any, prompt: str) -> EchoedPrompt:
    """The entries of an ``echo`` answer that belong to ``prompt`` (not the generated token).

    An answer in another form (llama-server's: the chat completions form,
    ``content``, the generated token's entries only) echoed nothing.
    """
    found = completion_logprobs(payload)
    if "tokens" not in found and "token_logprobs" not in found:
        raise CannotScore(NO_ECHO)
    try:
        tokens = list(found["tokens"])
        offsets = [int(v) for v in found["text_offset"]]
        logprobs = [None if v is None else float(v) for v in found["token_logprobs"]]
        top = list(found.get("top_logprobs") or [None] * len(tokens))
    except (KeyError, TypeError, ValueError):
        raise ProtocolError(
            "unexpected /completions answer: logprobs lacks tokens, text_offset or token_logprobs"
        ) from None
    if not len(tokens) == len(offsets) == len(logprobs) == len(top):
        raise ProtocolError("unexpected /completions answer: logprobs lists of unequal length")
    keep = sum(1 for offset in offsets if offset < len(prompt))
    if keep == 0:
        raise CannotScore(NO_ECHO)
    return EchoedPrompt(tokens[:keep], offsets[:keep], logprobs[:keep], top[:keep])


def first_continuation_token(echo: EchoedPrompt, context_length: int) -> int:
    """Index of the first token ending past the context: a straddling token counts in."""
    for index, (token, offset) in enumerate(zip(echo.tokens, echo.offsets, strict=True)):
        if offset + len(token) > context_length:
            return index
    return len(echo.tokens)


def generated_top(payload: Any) -> dict[str, float]:
    """The ``top_logprobs`` of the single token a non-echo answer generated."""
    found = completion_logprobs(payload)
    try:
        top = found["top_logprobs"][0]
    except (KeyError, IndexError, TypeError):
        top = None
    if not isinstance(top, dict) or not top:
        raise CannotScore(
            "the server returned no top_logprobs for a generated token: it "
            "cannot score text (needs /completions with logprobs)"
        )
    return {str(k): float(v) for k, v in top.items()}


def check_position(echo: EchoedPrompt, index: int, reference: dict[str, float]) -> str | None:
    """Why echoed entry ``index`` disagrees with ``reference``, or None when it agrees.

    ``reference`` is the server's own next-token distribution for the prompt
    cut before token ``index``. Its likeliest token must appear in the echoed
    alternatives with the same log-probability, and so must the echoed token
    itself when the reference lists it.
    """
    echoed_top = echo.top[index] or {}
    token = echo.tokens[index]
    best = max(reference, key=reference.__getitem__)
    pairs = [(best, echoed_top.get(best), reference[best])]
    if token in reference:
        pairs.append((token, echo.logprobs[index], reference[token]))
    for name, echoed, expected in pairs:
        if echoed is None or not math.isclose(echoed, expected, abs_tol=CONSISTENCY_TOLERANCE):
            shown = "missing" if echoed is None else f"{echoed:.4f}"
            return (
                f"echoed log-probability of {name!r} at token {index} is {shown}, "
                f"but the server gives {expected:.4f} for that position when asked "
                "for the next token"
            )
    return None
