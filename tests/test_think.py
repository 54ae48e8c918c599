"""Reasoning in the reply text and in the wire's own fields, split at every position."""

from __future__ import annotations

import itertools

import pytest

from streamkit.protocol.reasoning import reasoning_of
from streamkit.protocol.think import ThinkSplitter


def split(text: str, cuts: tuple[int, ...], *, inside: bool = False) -> tuple[str, str]:
    """(reasoning, answer) after feeding ``text`` cut at ``cuts``."""
    splitter = ThinkSplitter(inside=inside)
    bounds = [0, *cuts, len(text)]
    parts = []
    for start, end in itertools.pairwise(bounds):
        parts.extend(splitter.feed(text[start:end]))
    parts.extend(splitter.close())
    assert all(piece for _, piece in parts), parts  # never an empty part
    return ("".join(p for kind, p in parts if kind == "reasoning"),
            "".join(p for kind, p in parts if kind == "answer"))


CASES = [
    ("<think>Let me add.</think>\n\nIt is 4.", False, ("Let me add.", "It is 4.")),
    ("  \n<think>\nhm</think>4", False, ("\nhm", "4")),
    ("Plain answer, no thoughts.", False, ("", "Plain answer, no thoughts.")),
    ("  indented answer", False, ("", "  indented answer")),
    ("I think.</think>\nAnswer", True, ("I think.", "Answer")),
    ("<thin>not a tag", False, ("", "<thin>not a tag")),
    ("<think>still thinking when cut off", False, ("still thinking when cut off", "")),
    ("<think>a</think>Use `<think>` and `</think>` tags:\n```\n<think>x</think>\n```", False,
     ("a", "Use `<think>` and `</think>` tags:\n```\n<think>x</think>\n```")),
    ("Answer first <think>then</think> text", False,
     ("", "Answer first <think>then</think> text")),
    ("<think>a < b and </thin k</think>ok", False, ("a < b and </thin k", "ok")),
    ("<think></think>", False, ("", "")),
    ("<", False, ("", "<")),
    ("<think>x</", False, ("x</", "")),
    ("   ", False, ("", "   ")),
]


@pytest.mark.parametrize(("text", "inside", "expected"), CASES)
def test_the_split_is_the_same_at_every_cut(text, inside, expected):
    assert split(text, (), inside=inside) == expected
    for cuts in itertools.chain(
        ((i,) for i in range(1, len(text))),
        itertools.combinations(range(1, len(text)), 2) if len(text) < 40 else (),
    ):
        assert split(text, cuts, inside=inside) == expected, cuts


def test_character_by_character():
    text = CASES[7][0]
    assert split(text, tuple(range(1, len(text)))) == CASES[7][2]


def test_in_reasoning_follows_the_tags():
    splitter = ThinkSplitter()
    assert not splitter.in_reasoning
    splitter.feed("<think>hm")
    assert splitter.in_reasoning
    splitter.feed("</think>ok")
    assert not splitter.in_reasoning


def test_wire_fields():
    assert reasoning_of("Let me", None, None) == ("Let me", ())
    assert reasoning_of(None, "Let me", None) == ("Let me", ())
    # OpenRouter: the same thought in `reasoning` and in `reasoning_details`, counted once
    details = [{"type": "reasoning.text", "text": "Let me", "format": "x"}]
    assert reasoning_of(None, "Let me", details) == ("Let me", ())
    assert reasoning_of(None, None, details) == ("Let me", ())
    assert reasoning_of(None, None, [{"type": "reasoning.summary", "summary": "S"}]) == ("S", ())
    sealed = {"type": "reasoning.encrypted", "data": "b64==", "id": "r1"}
    assert reasoning_of(None, "", [sealed]) == ("", (sealed,))
