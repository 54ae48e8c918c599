"""What a benchmark sends: random prompts of a given length, or a dataset file.

Prompt lengths are counted with the model's own tokenizer when there is one
(a GGUF file: the local model, or ``--tokenizer PATH.gguf``, read with only
its vocabulary loaded); without one a random prompt is that many common
English words, which is about as many tokens in most tokenizers, and the
report says the lengths are approximate.

Output length is forced where the server allows it: ``max_tokens`` plus
``min_tokens`` and ``ignore_eos`` (vLLM, llama.cpp and SGLang read them;
servers that do not, ignore unknown fields).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import msgspec

from streamkit.errors import UsageError
from streamkit.loadtest.conversations import Conversation, Turn, parse_conversations
from streamkit.loadtest.trace import MOONCAKE_BLOCK_TOKENS, TraceRecord
from streamkit.protocol.ndjson import BatchRecord, LineSplitter, parse_record
from streamkit.providers.llama.tokenizer import Tokenizer
from streamkit.request import GenerationOptions, GenerationRequest, Message

# Common English words: random prompts that tokenize like prose.
_PROSE = """
    time year people way day man thing woman life child world school state family
    student group country problem hand part place case week company system program
    question work government number night point home water room mother area money story
    fact month lot right study book eye job word business issue side kind head house
    service friend father power hour game line end member law car city name president
    team minute idea kid body information back parent face others level office door
    health person art war history party result change morning reason research girl guy
    moment air teacher force education river garden light music
"""
WORDS = tuple(_PROSE.split())
DURATION_POOL = 256  # distinct prompts cycled through by a --duration run


class Item(msgspec.Struct, frozen=True):
    """One request to send, with its prompt length and the output length to force."""

    request: GenerationRequest
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    at: float | None = None  # a trace's: seconds from its start
    group: int | None = None  # --prefix-groups: the shared prefix it begins with
    session: int | None = None  # a trace's session (by order of appearance), and turn
    turn: int | None = None

    def extra_body(self) -> dict[str, Any]:
        """Fields beyond the OpenAI ones that force the output length."""
        if self.output_tokens is None:
            return {}
        return {"min_tokens": self.output_tokens, "ignore_eos": True}


def _length(rng: random.Random, mean: int, stdev: float) -> int:
    return max(1, round(rng.gauss(mean, stdev))) if stdev > 0 else mean


def random_prompt(rng: random.Random, tokens: int, tokenizer: Tokenizer | None) -> tuple[str, int]:
    """A prompt of ``tokens`` tokens (exact with a tokenizer) and its counted length."""
    words = [rng.choice(WORDS) for _ in range(tokens + 8)]
    if tokenizer is None:
        return " ".join(words[:tokens]), tokens
    ids = tokenizer.encode(" ".join(words))[:tokens]
    text = tokenizer.decode(ids).strip()
    return text, tokenizer.count(text)


class Workload:
    """The items of a run, by index: the same index always gives the same item."""

    def __init__(
        self,
        items: list[Item],
        *,
        approximate: bool,
        description: str,
        conversations: list[Conversation] | None = None,
        model: str | None = None,
        temperature: float | None = None,
    ) -> None:
        if not items and not conversations:
            raise UsageError("the dataset has no usable records")
        self.items = items
        # --sessions: the conversations, and what their requests are built with
        self.conversations = conversations or []
        self.model = model
        self.temperature = temperature
        self.approximate = approximate  # prompt lengths not counted with the model's tokenizer
        self.description = description

    def __getitem__(self, index: int) -> Item:
        return self.items[index % len(self.items)]

    def __len__(self) -> int:
        return len(self.items)


def random_workload(
    count: int,
    *,
    kind: str,
    model: str | None,
    prompt_tokens: int,
    output_tokens: int,
    prompt_stdev: float = 0.0,
    output_stdev: float = 0.0,
    seed: int = 0,
    tokenizer: Tokenizer | None = None,
    temperature: float | None = None,
    prefix_tokens: int = 0,
    prefix_groups: int = 1,
) -> Workload:
    """``count`` random prompts (seeded), each forcing its output length.

    With ``prefix_tokens``, request ``i`` begins with the shared prefix of
    group ``i % prefix_groups`` (the system prompt of a chat, the start of a
    completion's prompt): a server with a prefix cache computes it once per
    group, and the report compares the first request of a group with the rest.
    """
    rng = random.Random(seed)
    prefixes = (
        [
            random_prompt(random.Random(f"{seed}/prefix/{g}"), prefix_tokens, tokenizer)
            for g in range(prefix_groups)
        ]
        if prefix_tokens
        else []
    )
    items = []
    for index in range(count):
        wanted = _length(rng, prompt_tokens, prompt_stdev)
        out = _length(rng, output_tokens, output_stdev)
        text, counted = random_prompt(rng, wanted, tokenizer)
        options = GenerationOptions(max_tokens=out, temperature=temperature)
        group = index % prefix_groups if prefixes else None
        prefix = prefixes[group] if group is not None else None
        request = _request(kind, model, options, text, prefix[0] if prefix else None)
        items.append(Item(request, counted + (prefix[1] if prefix else 0), out, group=group))
    description = f"random, {prompt_tokens} prompt / {output_tokens} output tokens"
    if prefixes:
        description += f", {prefix_groups} shared prefix(es) of {prefix_tokens} tokens"
    return Workload(items, approximate=tokenizer is None, description=description)


def _request(
    kind: str, model: str | None, options: GenerationOptions, text: str, prefix: str | None = None
) -> GenerationRequest:
    if kind == "completion":
        prompt = f"{prefix}\n{text}" if prefix else text
        return GenerationRequest("completion", model, options, prompt=prompt)
    messages = (Message("user", text),)
    if prefix:
        messages = (Message("system", prefix), *messages)
    return GenerationRequest("chat", model, options, messages=messages)


def trace_workload(
    records: list[TraceRecord],
    *,
    kind: str,
    model: str | None,
    tokenizer: Tokenizer | None,
    seed: int = 0,
    temperature: float | None = None,
    name: str = "trace",
) -> Workload:
    """One item per trace record, at its time, with its lengths.

    A Mooncake record's prompt is made of its ``hash_ids`` blocks, each the
    same text wherever it appears, so that requests the trace says share a
    prefix share one here. A record with a session id gets its session's
    number and its turn; the prompt is only the turn's own, because the
    session's history is added when it is sent (tracesessions.py).
    """
    blocks: dict[int, str] = {}
    sessions: dict[str, int] = {}
    turns: dict[str, int] = {}
    rng = random.Random(seed)
    items = []
    for record in records:
        if record.blocks:
            for block in record.blocks:
                if block not in blocks:
                    blocks[block] = random_prompt(
                        random.Random(f"{seed}/block/{block}"), MOONCAKE_BLOCK_TOKENS, None
                    )[0]
            text, counted = _truncated(
                " ".join(blocks[b] for b in record.blocks), record.input_tokens, tokenizer
            )
        else:
            text, counted = random_prompt(rng, record.input_tokens, tokenizer)
        session = turn = None
        if record.session is not None:
            session = sessions.setdefault(record.session, len(sessions))
            turn = turns[record.session] = turns.get(record.session, 0) + 1
        options = GenerationOptions(max_tokens=record.output_tokens, temperature=temperature)
        items.append(
            Item(
                _request(kind, model, options, text),
                counted,
                record.output_tokens,
                at=record.at,
                session=session,
                turn=turn,
            )
        )
    return Workload(
        items,
        approximate=tokenizer is None,
        description=f"trace {name}, {len(items)} requests over {records[-1].at:.1f} s",
    )


def _truncated(text: str, tokens: int, tokenizer: Tokenizer | None) -> tuple[str, int]:
    if tokenizer is None:
        words = text.split()[:tokens]
        return " ".join(words), len(words)
    cut = tokenizer.decode(tokenizer.encode(text)[:tokens]).strip()
    return cut, tokenizer.count(cut)


def load_dataset(
    path: Path,
    *,
    kind: str,
    model: str | None,
    output_tokens: int | None,
    tokenizer: Tokenizer | None,
    temperature: float | None = None,
) -> Workload:
    """A JSONL file of batch records, or a ShareGPT-style JSON file."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read dataset {path}: {exc.strerror}") from None
    if raw.lstrip()[:1] == b"[":
        items = _sharegpt(raw, path, kind, model, output_tokens, tokenizer, temperature)
    else:
        items = _jsonl(raw, kind, model, output_tokens, tokenizer, temperature)
    return Workload(items, approximate=tokenizer is None, description=f"dataset {path.name}")


def _jsonl(
    raw: bytes,
    kind: str,
    model: str | None,
    output_tokens: int | None,
    tokenizer: Tokenizer | None,
    temperature: float | None,
) -> list[Item]:
    defaults = GenerationOptions(max_tokens=output_tokens, temperature=temperature)
    splitter = LineSplitter()
    items = []
    for number, line in splitter.feed(raw) + splitter.close():
        if not line.strip():
            continue
        record = parse_record(number, line, kind=kind, model=model, defaults=defaults)
        if not isinstance(record, BatchRecord):
            raise UsageError(f"dataset: {record.message}")
        request = record.request
        text = request.prompt or "\n".join(m.content for m in request.messages)
        counted = tokenizer.count(text) if tokenizer else None
        items.append(Item(request, counted, output_tokens))
    return items


class _Turn(msgspec.Struct):
    value: str
    from_: str = msgspec.field(name="from", default="")


class _Conversation(msgspec.Struct):
    conversations: list[_Turn] = []


def _sharegpt(
    raw: bytes,
    path: Path,
    kind: str,
    model: str | None,
    output_tokens: int | None,
    tokenizer: Tokenizer | None,
    temperature: float | None,
) -> list[Item]:
    """First human turn as the prompt; the reply's length as the output length."""
    try:
        conversations = msgspec.json.decode(raw, type=list[_Conversation])
    except msgspec.DecodeError as exc:
        raise UsageError(f"dataset {path}: not a ShareGPT-style JSON file: {exc}") from None
    items = []
    for conversation in conversations:
        turns = conversation.conversations
        if len(turns) < 2 or not turns[0].value.strip():
            continue
        prompt, reply = turns[0].value, turns[1].value
        if output_tokens is not None:
            out = output_tokens
        else:
            out = max(1, tokenizer.count(reply) if tokenizer else len(reply.split()))
        counted = tokenizer.count(prompt) if tokenizer else None
        options = GenerationOptions(max_tokens=out, temperature=temperature)
        items.append(Item(_request(kind, model, options, prompt), counted, out))
    return items


def session_workload(
    path: Path,
    *,
    model: str | None,
    output_tokens: int | None,
    default_output: int,
    tokenizer: Tokenizer | None,
    temperature: float | None = None,
) -> Workload:
    """``--sessions``: the dataset's conversations, each turn's output length settled.

    The length is ``--output-tokens`` when given, else the length of the
    dataset's own reply to that turn, else ``default_output``.
    """
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read dataset {path}: {exc.strerror}") from None
    conversations = []
    for conversation in parse_conversations(raw, path.name):
        turns = tuple(
            Turn(
                t.user,
                None,
                output_tokens
                or t.output_tokens
                or _reply_length(t.reference_reply, tokenizer)
                or default_output,
            )
            for t in conversation.turns
        )
        conversations.append(msgspec.structs.replace(conversation, turns=turns))
    turns = sum(len(c.turns) for c in conversations)
    return Workload(
        [],
        approximate=tokenizer is None,
        conversations=conversations,
        model=model,
        temperature=temperature,
        description=f"sessions from {path.name}: {len(conversations)} conversations, {turns} turns",
    )


def _reply_length(reply: str | None, tokenizer: Tokenizer | None) -> int | None:
    if not reply or not reply.strip():
        return None
    return max(1, tokenizer.count(reply) if tokenizer else len(reply.split()))
