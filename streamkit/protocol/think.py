"""Thinking written inline in the reply text, between ``<think>`` and ``</think>``, sans-IO.

Servers run without a reasoning parser, and local GGUF models, send a
reasoning model's thoughts in ``content``. ``ThinkSplitter`` takes the text
as it streams and hands back what is reasoning and what is answer, the same
however the text is cut into chunks (a tag may arrive split at any
character).

What counts as a tag: only a ``<think>`` that opens the reply (leading white
space aside), and the first ``</think>`` after it. A reply may also start
inside the block (``inside=True``: chat templates that open the tag in the
prompt). Once the answer has begun, the tags are text like any other, so an
answer that shows ``<think>`` in a code block keeps it.
"""

from __future__ import annotations

from typing import Literal

from streamkit.events import Event, ReasoningDelta, TextDelta

OPEN = "<think>"
CLOSE = "</think>"

Part = tuple[Literal["reasoning", "answer"], str]

_START, _REASONING, _AFTER_CLOSE, _ANSWER = range(4)


class ThinkSplitter:
    """Feeds on reply text; returns ``("reasoning" | "answer", text)`` parts in order."""

    def __init__(self, *, inside: bool = False) -> None:
        self._state = _REASONING if inside else _START
        self._held = ""  # text that may still turn out to be (part of) a tag

    @property
    def answering(self) -> bool:
        """Whether the answer has begun: from now on every text is answer, as fed."""
        return self._state == _ANSWER

    @property
    def in_reasoning(self) -> bool:
        """Whether text fed now would be reasoning (so far as is known)."""
        return self._state == _REASONING

    def feed(self, text: str) -> list[Part]:
        parts: list[Part] = []
        if self._state == _ANSWER:  # the hot path once the answer has begun
            if text:
                parts.append(("answer", text))
            return parts
        text = self._held + text
        self._held = ""
        while text:
            if self._state == _START:
                stripped = text.lstrip()
                if not stripped:
                    self._held = text  # only white space yet: the reply may still open a tag
                    break
                if stripped.startswith(OPEN):
                    self._state = _REASONING
                    text = stripped[len(OPEN) :]
                    continue
                if OPEN.startswith(stripped):
                    self._held = text  # "<thi" so far
                    break
                self._state = _ANSWER
                parts.append(("answer", text))
                break
            if self._state == _REASONING:
                end = text.find(CLOSE)
                if end >= 0:
                    if end:
                        parts.append(("reasoning", text[:end]))
                    self._state = _AFTER_CLOSE
                    text = text[end + len(CLOSE) :]
                    continue
                keep = _partial_suffix(text, CLOSE)
                if len(text) > keep:
                    parts.append(("reasoning", text[: len(text) - keep]))
                self._held = text[len(text) - keep :] if keep else ""
                break
            # _AFTER_CLOSE: the white space that separates the thoughts from the answer
            stripped = text.lstrip()
            if stripped:
                self._state = _ANSWER
                parts.append(("answer", stripped))
            break
        return parts

    def close(self) -> list[Part]:
        """The end of the reply: text held back as a possible tag is what it was."""
        held, self._held = self._held, ""
        if not held or self._state == _AFTER_CLOSE:
            return []
        if self._state == _REASONING:
            return [("reasoning", held)]
        return [("answer", held)]


def _partial_suffix(text: str, tag: str) -> int:
    """The length of the longest end of ``text`` that starts ``tag`` (a tag cut in two)."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-size:]):
            return size
    return 0


def split_into(splitter: ThinkSplitter, text: str, choice: int, out: list[Event]) -> str:
    """Feed ``text``: its reasoning (and any answer before the last part) goes to ``out``
    as events; the answer text of the last part is returned, for the caller to send
    with what belongs to the whole piece (log-probabilities, token ids)."""
    parts = splitter.feed(text)
    if parts and parts[-1][0] == "answer":
        emit(parts[:-1], choice, out)
        return parts[-1][1]
    emit(parts, choice, out)
    return ""


def emit(parts: list[Part], choice: int, out: list[Event]) -> None:
    """Parts as events: ``reasoning`` and ``delta``."""
    for kind, piece in parts:
        out.append(
            ReasoningDelta(piece, choice) if kind == "reasoning" else TextDelta(piece, choice)
        )


def opens_thinking(prompt_tail: str) -> bool:
    """Whether a rendered prompt ends inside a ``<think>`` block the template opened."""
    return prompt_tail.rstrip().endswith(OPEN)
