"""Structured output: how a JSON Schema is asked for, enforced and checked.

A schema reaches a model one of three ways. A remote server is sent it in
``response_format``, in the first of ``SCHEMA_FORMS`` it accepts (OpenAI and
vLLM take ``json_schema``; llama-cpp-python's server only ``json_object``
with a ``schema``, which it enforces with a grammar; the last resort is plain
``json_object`` with the schema spelled out in a system message). The local
model is constrained by a grammar compiled from the schema, with runaway
strings and arrays bounded (``providers/llama/grammar.py``). Whatever the route, the
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
        return {"type": "json_schema",
                "json_schema": {"name": "output", "schema": schema, "strict": True}}
    if form == "json_object+schema":
        return {"type": "json_object", "schema": schema}
    return {"type": "json_object"}


def schema_instruction(schema: dict[str, Any]) -> str:
    """The system message of the last-resort form: the schema in words the model reads."""
    return ("Answer with one JSON value, and nothing else, that validates against this "
            "JSON Schema:\n" + msgspec.json.encode(schema).decode())


def names_response_format(message: str) -> bool:
    """Whether a server's error is about ``response_format`` (so another form may do)."""
    return "response_format" in message or "json_schema" in message


# Keywords whose values are data, not schemas: left as they are.
_DATA_KEYWORDS = frozenset({"enum", "const", "default", "examples"})


def bounded_schema(schema: Any) -> Any:
    """``schema`` with ``maxItems`` on every array that has none, so a grammar built
    from it cannot run away (strings are bounded in the grammar itself)."""
    if isinstance(schema, list):
        return [bounded_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: value if key in _DATA_KEYWORDS else bounded_schema(value)
           for key, value in schema.items()}
    types = schema.get("type")
    if types == "array" or (isinstance(types, list) and "array" in types):
        out.setdefault("maxItems", DEFAULT_MAX_ITEMS)
    return out


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
