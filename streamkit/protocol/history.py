"""Fitting a conversation's history into the model's context window, sans-IO.

The system prompt (a leading ``system`` message) and the newest message are
always kept; the oldest of the others are dropped until the prompt, plus room
for the reply, fits. Tool results go with the assistant turn that asked for
them: a ``tool`` message is never left first, answering a call that is no
longer there. Callers tell the user when anything was dropped.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from streamkit.request import Message


def fit_history(
    messages: Sequence[Message],
    budget: int,
    count_tokens: Callable[[Sequence[Message]], int],
) -> tuple[list[Message], int]:
    """``messages`` trimmed to ``budget`` tokens, and how many were dropped."""
    kept = list(messages)
    head = 1 if kept and kept[0].role == "system" else 0
    dropped = 0
    while len(kept) > head + 1 and count_tokens(kept) > budget:
        del kept[head]
        dropped += 1
        while len(kept) > head + 1 and kept[head].role == "tool":  # its call was dropped
            del kept[head]
            dropped += 1
    return kept, dropped
