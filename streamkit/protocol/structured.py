"""Structured output: how a JSON Schema is asked for, enforced and checked.

A schema reaches a model one of three ways. A remote server is sent it in
``response_format``, in the first of ``SCHEMA_FORMS`` it accepts (OpenAI and
vLLM take ``json_schema``; llama-cpp-python's server only ``json_object``
with a ``schema``, which it enforces with a grammar; the last resort is plain
``json_object`` with the schema spelled out in a system message). The local
model is constrained by a grammar compiled from the schema, with runaway
strings and arrays bounded (``providers/llama/grammar.py``). A server's
grammar is bounded the same way, through the schema it is sent
(``server_schema``): a small model that rambles inside a string would
otherwise use up ``max_tokens`` before the document closes. Whatever the route, the
reply is checked with ``jsonschema`` at the end (``check_reply``): a reply
that does not validate is reported as such, never passed off as valid.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import msgspec

from streamkit.errors import ProtocolError
from streamkit.events import Batch, JsonPartial, TextDelta

if TYPE_CHECKING:
    from streamkit.protocol.json_parse import JSONStream

# Forms of ``response_format`` tried in order, until a server accepts one.
SCHEMA_FORMS = ("json_schema", "json_object+schema", "json_object+prompt")

# Default bounds for the local grammar where the schema sets none: a small
# model can otherwise loop inside a string or an array until max_tokens.
DEFAULT_MAX_STRING = 1000  # characters
DEFAULT_MAX_ITEMS = 100


def response_format(form: str, schema: dict[str, Any]) -> dict[str, Any]:
    """The ``response_format`` body field for one of ``SCHEMA_FORMS``."""
    if form == "json_schema":
        return {
            "type": "json_schema",
            "json_schema": {"name": "output", "schema": schema, "strict": True},
        }
    if form == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system message of the last-resort form: the schema in words the model reads."""
    return (
        "Answer with one JSON value, and nothing else, that validates against this "
        "JSON Schema:\n" + msgspec.json.encode(schema).decode()
    )


def names_response_format(message: str) -> bool:
    """Whether a server's error is about ``response_format`` (so another form may do)."""
    return "response_format" in message or "json_schema" in message


# Keywords whose values are data, not schemas: left as they are.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


# Keywords that already bound a string (or make it something a grammar bounds itself).
_STRING_BOUNDS = frozenset({"maxLength", "enum", "const", "format", "pattern"})
# Under a token budget: at least this many tokens per array item allowed, and string
# text taken as at least two characters a token, given half the budget.
_TOKENS_PER_ITEM = 16


def bounded_schema(
    schema: Any,
    *,
    max_items: int = DEFAULT_MAX_ITEMS,
    max_string: int | None = None,
    plain_strings: bool = False,
) -> Any:
    """``schema`` with ``maxItems`` on every array that has none, so a grammar built
    from it cannot run away; with ``max_string``, ``maxLength`` on every open string
    too (the local grammar bounds strings itself). ``plain_strings`` also spells that
    bound as a ``pattern`` without control characters, quotes or backslashes: the
    grammar llama-cpp-python's server builds from a ``maxLength`` alone admits a raw
    newline, which no JSON parser accepts, and it builds one from a pattern instead."""
    if isinstance(schema, list):
        return [
            bounded_schema(
                item, max_items=max_items, max_string=max_string, plain_strings=plain_strings
            )
            for item in schema
        ]
    if not isinstance(schema, dict):
        return schema
    out = {
        key: value
        if key in _DATA_KEYWORDS
        else bounded_schema(
            value, max_items=max_items, max_string=max_string, plain_strings=plain_strings
        )
        for key, value in schema.items()
    }
    if _has_type(schema, "array") and "maxItems" not in schema:
        out["maxItems"] = max(max_items, _int(schema.get("minItems")))
    if max_string is not None and _is_open_string(schema):
        least = _int(schema.get("minLength"))
        out["maxLength"] = most = max(max_string, least)
        if plain_strings and schema.get("type") == "string":
            out["pattern"] = f'^[^\\x00-\\x1f"\\\\]{{{least},{most}}}$'
    return out


def budget_bounds(schema: Any, max_tokens: int | None) -> tuple[int, int]:
    """The string length (characters) and array length a server's grammar is given,
    so that the document can close within ``max_tokens``: the local path's defaults
    without a budget; under one, strings share half of it at two characters a token,
    arrays get an item per ``_TOKENS_PER_ITEM`` tokens."""
    if max_tokens is None:
        return DEFAULT_MAX_STRING, DEFAULT_MAX_ITEMS
    max_items = min(DEFAULT_MAX_ITEMS, max(1, max_tokens // _TOKENS_PER_ITEM))
    strings = _open_strings(schema, max_items)
    return min(DEFAULT_MAX_STRING, max(1, max_tokens // max(1, strings))), max_items


def server_schema(
    form: str, schema: dict[str, Any], max_tokens: int | None
) -> tuple[dict[str, Any], str | None]:
    """The schema sent in ``form`` and, when bounds were added to it, the notice that
    says so. ``json_schema`` servers get the schema as given: strict ones (OpenAI)
    refuse length keywords. The reply is always checked against ``schema``."""
    if form == "json_schema":
        return schema, None
    max_string, max_items = budget_bounds(schema, max_tokens)
    sent = bounded_schema(
        schema,
        max_items=max_items,
        max_string=max_string,
        plain_strings=form == "json_object+schema",
    )
    if sent == schema:
        return schema, None
    added = []
    if _open_strings(schema, 1):
        added.append(f"open strings to {max_string} characters")
    if _open_arrays(schema):
        added.append(f"open arrays to {max_items} items")
    why = f"to fit max_tokens {max_tokens}" if max_tokens is not None else "so it cannot run away"
    return sent, (
        f"the schema sent to the server bounds {' and '.join(added)} ({why}); "
        "the reply is checked against the schema as given"
    )


def _open_strings(schema: Any, items: int) -> int:
    """How many open strings a document of ``schema`` may hold, an array's items
    counted ``items`` times (or its own ``maxItems``), capped for huge schemas."""
    if isinstance(schema, list):
        return min(10_000, sum(_open_strings(item, items) for item in schema))
    if not isinstance(schema, dict):
        return 0
    total = 1 if _is_open_string(schema) else 0
    for key, value in schema.items():
        if key in _DATA_KEYWORDS:
            continue
        count = _open_strings(value, items)
        if key == "items" and _has_type(schema, "array"):
            count *= _int(schema.get("maxItems")) or items
        total += count
    return min(10_000, total)


def _open_arrays(schema: Any) -> bool:
    if isinstance(schema, list):
        return any(_open_arrays(item) for item in schema)
    if not isinstance(schema, dict):
        return False
    if _has_type(schema, "array") and "maxItems" not in schema:
        return True
    return any(_open_arrays(value) for key, value in schema.items() if key not in _DATA_KEYWORDS)


def _has_type(schema: dict[str, Any], name: str) -> bool:
    types = schema.get("type")
    return types == name or (isinstance(types, list) and name in types)


def _is_open_string(schema: dict[str, Any]) -> bool:
    return _has_type(schema, "string") and not _STRING_BOUNDS.intersection(schema)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def check_reply(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """The reply's parsed value, and why it does not validate, in one line (None
    when it does)."""
    try:
        value = msgspec.json.decode(text)
    except msgspec.DecodeError as exc:
        return None, f"the reply is not JSON: {exc}"
    return value, _validator(msgspec.json.encode(schema))(value)


@functools.lru_cache(maxsize=64)
def _validator(schema_json: bytes) -> Callable[[Any], str | None]:
    """A compiled validator per schema: a batch checks every line against the same one."""
    import jsonschema

    schema = msgspec.json.decode(schema_json)
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema)

    def first_error(value: Any) -> str | None:
        error = jsonschema.exceptions.best_match(validator.iter_errors(value))
        if error is None:
            return None
        where = "/".join(map(str, error.absolute_path))
        return f"the reply does not match the schema at /{where}: {error.message}"

    return first_error


class PartialTracker:
    """``--events`` with a schema: the value parsed so far, after each batch that
    changed it, as a ``json_partial`` event. Prose from a server that ignored the
    schema just ends the tracking; the final check reports it."""

    def __init__(self) -> None:
        from streamkit.protocol.json_parse import JSONStream  # only with --schema --events

        self._stream: JSONStream | None = JSONStream()

    def after(self, batch: Batch) -> JsonPartial | None:
        stream = self._stream
        if stream is None:
            return None
        changed = False
        try:
            for event in batch:
                if type(event) is TextDelta and event.choice == 0 and event.text:
                    changed = stream.feed(event.text) or changed
        except ProtocolError:  # not JSON
            self._stream = None
            return None
        return JsonPartial(stream.partial) if changed else None
