"""The generation fields shared by JSONL batch records and relay frames, sans-IO.

Both let a client say what to generate with the same names: ``prompt`` or
``messages`` (plus ``system``), ``model``, ``max_tokens``, ``temperature``,
``top_p``, ``seed`` and ``stop`` (a string or a list). They are checked and
turned into a ``GenerationRequest`` here, once. ``RANGES`` holds the values
the numeric ones may take; the command-line flags of the same names take
their bounds from it, so a record is refused exactly what a flag is.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec

from streamkit.protocol.schema_syntax import checked_schema, parse_short_schema
from streamkit.request import GenerationOptions, GenerationRequest, Message


def record_schema(value: dict[str, Any] | str) -> dict[str, Any]:
    """A record's ``schema``: a JSON Schema object, or the short syntax (no file paths:
    a record does not name files to read)."""
    if isinstance(value, str):
        return parse_short_schema(value)
    return checked_schema(value, "`schema`")


class Range(NamedTuple):
    """The values a number may take: from ``low`` up to ``high`` (None: no upper bound)."""

    low: float
    high: float | None = None

    def problem(self, name: str, value: float | None) -> str | None:
        """Why ``value`` is out of range, or None (None too when no value was given)."""
        if value is None:
            return None
        if self.low <= value and (self.high is None or value <= self.high):
            return None
        if self.high is None:
            return f"`{name}` is {_number(value)}: it must be at least {_number(self.low)}"
        return (
            f"`{name}` is {_number(value)}: it must be between {_number(self.low)} "
            f"and {_number(self.high)}"
        )


RANGES: dict[str, Range] = {
    "max_tokens": Range(1),
    "temperature": Range(0.0),
    "top_p": Range(0.0, 1.0),
}


def _number(value: float) -> str:
    return str(value) if isinstance(value, int) else f"{value:g}"


class MessageIn(msgspec.Struct, forbid_unknown_fields=True):
    role: str
    content: str


class RecordProblem(msgspec.Struct, frozen=True):
    """Why a record's fields make no request: one line, without the line number."""

    reason: str


class GenerationFields(msgspec.Struct):
    prompt: str | None = None
    messages: list[MessageIn] | None = None
    system: str | None = None
    model: str | None = None
    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    seed: int | None = None
    stop: str | list[str] | None = None
    prompt_ids: list[int] | None = None  # a completion prompt as token ids
    schema: dict[str, Any] | str | None = None  # JSON Schema, or the short syntax


def build_request(
    kind: str, fields: GenerationFields, *, model: str | None, defaults: GenerationOptions
) -> GenerationRequest | RecordProblem:
    """The request the fields ask for (they beat ``defaults``), or why there is none.

    ``kind`` is ``chat`` (``messages``, or a ``prompt`` taken as one user
    message) or ``completion`` (``prompt`` only).
    """
    if fields.prompt_ids is not None:
        problem = prompt_ids_problem(kind, fields)
        if problem:
            return RecordProblem(problem)
    elif kind == "completion":
        if fields.prompt is None:
            return RecordProblem("no `prompt`")
        if fields.messages is not None:
            return RecordProblem("`messages` needs a chat request, not a completion")
    elif fields.prompt is None and not fields.messages:
        return RecordProblem("no `messages` and no `prompt`")
    for name, bounds in RANGES.items():
        problem = bounds.problem(name, getattr(fields, name))
        if problem is not None:
            return RecordProblem(problem)
    if fields.schema is not None:
        try:
            schema = record_schema(fields.schema)
        except ValueError as exc:
            return RecordProblem(str(exc))
        defaults = msgspec.structs.replace(defaults, schema=schema)
    stop = (fields.stop,) if isinstance(fields.stop, str) else fields.stop
    given = {
        "max_tokens": fields.max_tokens,
        "temperature": fields.temperature,
        "top_p": fields.top_p,
        "seed": fields.seed,
        "stop": None if stop is None else tuple(stop),
    }
    options = msgspec.structs.replace(
        defaults, **{name: value for name, value in given.items() if value is not None}
    )
    chosen_model = fields.model or model
    if kind == "completion":
        return GenerationRequest(
            "completion",
            chosen_model,
            options,
            prompt=fields.prompt or "",
            prompt_ids=tuple(fields.prompt_ids or ()),
        )
    messages = [Message(m.role, m.content) for m in fields.messages or ()]
    if fields.prompt is not None:
        messages.append(Message("user", fields.prompt))
    if fields.system is not None and not (messages and messages[0].role == "system"):
        messages.insert(0, Message("system", fields.system))
    return GenerationRequest("chat", chosen_model, options, messages=tuple(messages))


def prompt_ids_problem(kind: str, fields: GenerationFields) -> str | None:
    """Why ``prompt_ids`` cannot be used as given, or None."""
    if kind != "completion":
        return "`prompt_ids` needs a completion request, not a chat"
    if fields.prompt is not None or fields.messages is not None:
        return "give `prompt_ids` or `prompt`, not both"
    if not fields.prompt_ids:
        return "`prompt_ids` is empty"
    if any(i < 0 for i in fields.prompt_ids):
        return "`prompt_ids` has a negative token id"
    return None
