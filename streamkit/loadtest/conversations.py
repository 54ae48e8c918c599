"""Multi-turn datasets for ``--sessions``: conversations read from bytes, sans-IO.

Two layouts. ShareGPT-style JSON, ``[{"conversations": [{"from": "human",
"value": ...}, {"from": "gpt", "value": ...}, ...]}]`` (``system`` turns
become the system prompt; ``human``/``user`` turns are what the user sends;
the ``gpt``/``assistant`` turn after one gives the length its reply should
have, never its text: the next turn carries the reply the server actually
gave). Or JSONL, one conversation a line: ``{"id": ..., "system": ...,
"turns": ["first question", {"content": "second", "output_tokens": 40}]}``.
"""

from __future__ import annotations

import msgspec

from streamkit.errors import UsageError
from streamkit.protocol.ndjson import LineSplitter

USER_ROLES = frozenset({"human", "user"})
REPLY_ROLES = frozenset({"gpt", "assistant", "chatgpt", "bard", "bing", "model"})


class Turn(msgspec.Struct, frozen=True):
    """What the user says, and how long the dataset's reply to it was (its text, or a
    token count given outright)."""

    user: str
    reference_reply: str | None = None
    output_tokens: int | None = None


class Conversation(msgspec.Struct, frozen=True):
    id: str
    turns: tuple[Turn, ...]
    system: str | None = None


class _ShareTurn(msgspec.Struct):
    value: str = ""
    from_: str = msgspec.field(name="from", default="")


class _ShareConversation(msgspec.Struct):
    conversations: list[_ShareTurn] = []
    id: str | int | None = None


class _LineTurn(msgspec.Struct):
    content: str
    output_tokens: int | None = None


class _Line(msgspec.Struct):
    turns: list[str | _LineTurn]
    id: str | int | None = None
    system: str | None = None


def parse_conversations(raw: bytes, name: str) -> list[Conversation]:
    """Every conversation with at least one user turn; a usage error names the bad line."""
    if raw.lstrip()[:1] == b"[":
        return _sharegpt(raw, name)
    conversations = []
    splitter = LineSplitter()
    for number, line in splitter.feed(raw) + splitter.close():
        if not line.strip():
            continue
        try:
            record = msgspec.json.decode(line, type=_Line)
        except msgspec.DecodeError as exc:
            raise UsageError(
                f'dataset {name} line {number}: expected {{"turns": [...]}}: {exc}'
            ) from None
        turns = tuple(
            Turn(t) if isinstance(t, str) else Turn(t.content, output_tokens=t.output_tokens)
            for t in record.turns
        )
        turns = tuple(t for t in turns if t.user.strip())
        if turns:
            ident = str(record.id) if record.id is not None else str(number)
            conversations.append(Conversation(ident, turns, record.system))
    return _nonempty(conversations, name)


def _sharegpt(raw: bytes, name: str) -> list[Conversation]:
    try:
        records = msgspec.json.decode(raw, type=list[_ShareConversation])
    except msgspec.DecodeError as exc:
        raise UsageError(f"dataset {name}: not a ShareGPT-style JSON file: {exc}") from None
    conversations = []
    for number, record in enumerate(records, 1):
        system = None
        turns: list[Turn] = []
        for turn in record.conversations:
            role = turn.from_.lower()
            if role == "system" and not turns:
                system = turn.value
            elif role in USER_ROLES and turn.value.strip():
                turns.append(Turn(turn.value))
            elif role in REPLY_ROLES and turns and turns[-1].reference_reply is None:
                turns[-1] = Turn(turns[-1].user, turn.value)
        if turns:
            ident = str(record.id) if record.id is not None else str(number)
            conversations.append(Conversation(ident, tuple(turns), system))
    return _nonempty(conversations, name)


def _nonempty(conversations: list[Conversation], name: str) -> list[Conversation]:
    if not conversations:
        raise UsageError(f"dataset {name} has no conversation with a user turn")
    return conversations
