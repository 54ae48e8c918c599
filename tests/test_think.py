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
    return (
        "".join(p for kind, p in parts if kind == "reasoning"),
        "".join(p for kind, p in parts if kind == "answer"),
    )


CASES = [
    ("<think>Let me add.</think>\n\nIt is 4.", False, ("Let me add.", "It is 4.")),
    ("  \n<think>\nhm</think>4", False, ("\nhm", "4")),
    ("Plain answer, no thoughts.", False, ("", "Plain answer, no thoughts.")),
    ("  indented answer", False, ("", "  indented answer")),
    ("I think.</think>\nAnswer", True, ("I think.", "Answer")),
    ("<thin>not a tag", False, ("", "<thin>not a tag")),
    ("<think>still thinking when cut off", False, ("still thinking when cut off", "")),
    (
        "<think>a</think>Use `<think>` and `</think>` tags:\n```\n<think>x</think>\n```",
        False,
        ("a", "Use `<think>` and `</think>` tags:\n```\n<think>x</think>\n```"),
    ),
    ("Answer first <think>then</think> text", False, ("", "Answer first <think>then</think> text")),
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


# -- recorded wire forms, through the stream decoder ---------------------------


def _sse(*deltas: dict, usage: dict | None = None) -> bytes:
    import json

    out = b""
    for delta in deltas:
        chunk = {"choices": [{"index": 0, "delta": delta, "finish_reason": None}]}
        out += b"data: " + json.dumps(chunk).encode() + b"\n\n"
    final = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    if usage:
        final["usage"] = usage
    return out + b"data: " + json.dumps(final).encode() + b"\n\ndata: [DONE]\n\n"


WIRE_FORMS = {
    "deepseek reasoning_content": _sse(
        {"role": "assistant", "reasoning_content": "Two and "},
        {"reasoning_content": "two."},
        {"content": "4"},
        usage={
            "prompt_tokens": 5,
            "completion_tokens": 9,
            "total_tokens": 14,
            "completion_tokens_details": {"reasoning_tokens": 7},
        },
    ),
    "groq reasoning": _sse({"reasoning": "Two and "}, {"reasoning": "two."}, {"content": "4"}),
    "openrouter both": _sse(
        {
            "reasoning": "Two and ",
            "reasoning_details": [{"type": "reasoning.text", "text": "Two and ", "index": 0}],
        },
        {
            "reasoning": "two.",
            "reasoning_details": [{"type": "reasoning.text", "text": "two.", "index": 0}],
        },
        {"content": "4"},
    ),
    "inline think": _sse(
        {"content": "<thi"}, {"content": "nk>Two and two."}, {"content": "</think>\n\n4"}
    ),
}


@pytest.mark.parametrize("name", list(WIRE_FORMS))
def test_each_wire_form_gives_the_same_reasoning_and_answer_at_every_split(name):
    from streamkit.events import ReasoningDelta, TextDelta, Usage
    from streamkit.protocol.openai import OpenAIStreamDecoder

    raw = WIRE_FORMS[name]
    for cut in range(len(raw) + 1):
        decoder = OpenAIStreamDecoder()
        events = decoder.feed(raw[:cut]) + decoder.feed(raw[cut:]) + decoder.close()
        thought = "".join(e.text for e in events if isinstance(e, ReasoningDelta))
        answer = "".join(e.text for e in events if isinstance(e, TextDelta))
        assert (thought, answer) == ("Two and two.", "4"), cut
        first_answer = next(i for i, e in enumerate(events) if isinstance(e, TextDelta))
        assert all(not isinstance(e, ReasoningDelta) for e in events[first_answer:])
    usage = [e for e in events if isinstance(e, Usage)]
    if name.startswith("deepseek"):
        assert usage[0].reasoning_tokens == 7


def test_encrypted_reasoning_is_kept_opaque_and_never_text():
    from streamkit.events import ReasoningDelta
    from streamkit.protocol.openai import OpenAIStreamDecoder

    sealed = {"type": "reasoning.encrypted", "data": "gAAAA==", "id": "rs_1", "index": 0}
    decoder = OpenAIStreamDecoder()
    events = decoder.feed(_sse({"reasoning_details": [sealed]}, {"content": "hi"}))
    [thought] = [e for e in events if isinstance(e, ReasoningDelta)]
    assert (thought.text, thought.opaque) == ("", (sealed,))
