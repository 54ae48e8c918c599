"""What a score is, sans-IO: the result value, character ranges, and the sums over them.

Both scorers (the local model, a server's echoed log-probabilities) fill the
same ``ScoreResult`` through ``build_result``, so their numbers compare.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec

from streamkit.errors import UsageError


class ScoreResult(msgspec.Struct, omit_defaults=True):
    """The JSON result of one scored text."""

    id: Any
    logprob: float
    n_tokens: int
    is_greedy: bool
    perplexity: float
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None = None
    ranges: list[dict[str, Any]] | None = None
    trusted: bool | None = None  # remote only: did the server pass the consistency check


def parse_range(value: str) -> tuple[int, int]:
    """``START:END`` character offsets (END exclusive)."""
    start, colon, end = value.partition(":")
    try:
        first, last = int(start), int(end)
    except ValueError:
        raise UsageError(f"--range {value!r}: expected START:END, e.g. 0:12") from None
    if not colon or first < 0 or last <= first:
        raise UsageError(f"--range {value!r}: expected 0 <= START < END")
    return first, last


def build_result(
    record_id: Any,
    pieces: list[bytes],
    token_logprobs: list[float],
    *,
    is_greedy: bool,
    top_logprobs: list[dict[str, float]] | None,
    continuation: str,
    ranges: Sequence[tuple[int, int]] = (),
    trusted: bool | None = None,
) -> ScoreResult:
    """The result of the scored tokens ``pieces`` (UTF-8 bytes, ending the text)."""
    total = math.fsum(token_logprobs)
    return ScoreResult(
        id=record_id,
        logprob=total,
        n_tokens=len(pieces),
        is_greedy=is_greedy,
        perplexity=math.exp(-total / len(pieces)),
        tokens=[p.decode("utf-8", "replace") for p in pieces],
        token_logprobs=token_logprobs,
        top_logprobs=top_logprobs,
        ranges=_sum_ranges(pieces, token_logprobs, continuation, ranges) if ranges else None,
        trusted=trusted,
    )


def _sum_ranges(
    pieces: list[bytes],
    logprobs: list[float],
    continuation: str,
    ranges: Sequence[tuple[int, int]],
) -> list[dict[str, Any]]:
    """Sum the tokens overlapping each character range of the continuation.

    Token spans are found in the UTF-8 bytes of the scored tokens, which end
    exactly where the text ends; a token straddling a range edge counts in.
    """
    text = continuation.encode()
    scored_bytes = b"".join(pieces)
    start_byte = len(text) - len(scored_bytes)  # < 0 when a token straddles the context
    spans = []
    position = start_byte
    for piece in pieces:
        spans.append((position, position + len(piece)))
        position += len(piece)
    out = []
    for first, last in ranges:
        if last > len(continuation):
            raise UsageError(
                f"--range {first}:{last} is past the end of the text "
                f"({len(continuation)} characters)"
            )
        lo = len(continuation[:first].encode())
        hi = len(continuation[:last].encode())
        chosen = [lp for (a, b), lp in zip(spans, logprobs, strict=True) if a < hi and b > lo]
        out.append(
            {"start": first, "end": last, "logprob": math.fsum(chosen), "n_tokens": len(chosen)}
        )
    return out
