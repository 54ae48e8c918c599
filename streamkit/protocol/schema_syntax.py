"""``--schema`` values: a JSON Schema, a file holding one, or a short field list.

Typing a JSON Schema on a command line is no fun, so ``--schema`` also takes
a short syntax, turned into the JSON Schema of an object::

    name, age int, tags list[str]

    {"type": "object",
     "properties": {"name": {"type": "string"}, "age": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}}},
     "required": ["name", "age", "tags"], "additionalProperties": false}

The grammar (``,`` and line ends separate fields; spaces between tokens are
free; blank lines and a trailing ``,`` are ignored)::

    fields      := field ("," | NEWLINE) field ...
    field       := NAME [type] ["?"] [":" description]
    type        := "str" | "int" | "float" | "bool"        -> string, integer, number, boolean
                 | "list" ["[" type "]"]                   -> array; plain "list" is list[str]
                 | "{" fields "}"                          -> a nested object, same rules
                 | WORD "|" WORD ("|" WORD)...             -> a string enum
    NAME, WORD  := characters other than space , : ? | [ ] { }

* A field without a type is a string.
* ``?`` makes a field optional: it is left out of ``required`` (its type is
  unchanged, so a value given is never ``null``).
* Every object, nested ones too, lists its other fields in ``required`` (in
  order) and has ``"additionalProperties": false``, which is what
  grammar-constrained generation and strict structured-output APIs expect.
* A description runs to the end of its line when the schema has several
  lines (so it may contain commas), else to the next ``,`` or ``}``. In a
  several-line schema, a ``}`` after a description goes on the next line.
* ``string``, ``integer``, ``number`` and ``boolean`` are accepted too.
  Enum values are strings (``1|2|3`` is ``["1", "2", "3"]``).

``--schema-multi`` wraps a schema as ``{"items": [<schema>, ...]}`` for a
list of such objects (``multi``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

_TYPES = {
    "str": "string",
    "string": "string",
    "int": "integer",
    "integer": "integer",
    "float": "number",
    "number": "number",
    "bool": "boolean",
    "boolean": "boolean",
}
_STOP = frozenset(" \t\r\n,:?|[]{}")
_SPACE = " \t\r"


def parse_short_schema(text: str) -> dict[str, Any]:
    """The JSON Schema for a short field list; ``ValueError`` (one line) if malformed."""
    return _Parser(text).parse()


def multi(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema of an object whose ``items`` is a list of ``schema`` values."""
    return {
        "type": "object",
        "properties": {"items": {"type": "array", "items": schema}},
        "required": ["items"],
        "additionalProperties": False,
    }


def load_schema(text: str) -> dict[str, Any]:
    """A ``--schema`` value as a JSON Schema.

    ``text`` is a JSON object (taken as a JSON Schema), else the path of an
    existing file holding a JSON Schema or the short syntax, else the short
    syntax. A value ending in ``.json`` must be an existing file. Raises
    ``ValueError`` with a one-line message.
    """
    stripped = text.strip()
    if stripped.startswith("{"):
        return _json_schema(stripped, "the --schema value")
    path = Path(stripped).expanduser()
    single_word = stripped and not any(c in stripped for c in " \t\r\n,")
    if single_word and path.is_file():
        try:
            content = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ValueError(f"cannot read schema file {stripped}: {exc}") from None
        if content.lstrip()[:1] in ("{", "["):
            return _json_schema(content, f"schema file {stripped}")
        return parse_short_schema(content)
    if single_word and (stripped.endswith(".json") or os.sep in stripped):
        raise ValueError(f"schema file not found: {stripped}")
    return parse_short_schema(text)


def _json_schema(text: str, source: str) -> dict[str, Any]:
    try:
        schema = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(
            f"{source} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    return checked_schema(schema, source)


def checked_schema(schema: Any, source: str) -> dict[str, Any]:
    """``schema`` if it is a valid JSON Schema object, else a one-line ``ValueError``."""
    if not isinstance(schema, dict):
        raise ValueError(f"{source} must be a JSON object")
    from jsonschema import exceptions, validators  # only needed for JSON input

    try:
        validators.validator_for(schema).check_schema(schema)
    except exceptions.SchemaError as exc:
        where = "/".join(str(p) for p in exc.path) or "top level"
        message = " ".join(exc.message.split())
        raise ValueError(f"{source} is not a valid JSON Schema ({where}): {message}") from None
    return schema


class _Parser:
    """Recursive descent over the text, one character at a time."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.multiline = "\n" in text.strip()

    def error(self, message: str, at: int | None = None) -> ValueError:
        at = self.i if at is None else at
        return ValueError(f"schema: {message} (at character {at + 1})")

    def peek(self) -> str:
        return self.text[self.i] if self.i < len(self.text) else ""

    def skip(self, newlines: bool = False) -> None:
        chars = _SPACE + "\n" if newlines else _SPACE
        while self.i < len(self.text) and self.text[self.i] in chars:
            self.i += 1

    def word(self) -> str:
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in _STOP:
            self.i += 1
        return self.text[start : self.i]

    def parse(self) -> dict[str, Any]:
        schema = self.fields(opened=None)
        if self.i < len(self.text):  # fields() stops early only at a stray '}'
            raise self.error("unbalanced '}'")
        return schema

    def fields(self, opened: int | None) -> dict[str, Any]:
        """Fields up to the end, or up to the '}' closing the '{' at ``opened``."""
        properties: dict[str, Any] = {}
        required: list[str] = []
        while True:
            self.skip(newlines=True)
            c = self.peek()
            if not c or c == "}":
                if not c and opened is not None:
                    raise self.error("unbalanced '{'", opened)
                if c and opened is not None:
                    self.i += 1
                break
            start = self.i
            name = self.word()
            if not name:
                raise self.error(f"empty field name before {c!r}")
            if name in properties:
                raise self.error(f"duplicate field {name!r}", start)
            schema, optional = self.field_rest(name)
            properties[name] = schema
            if not optional:
                required.append(name)
            self.skip()
            c = self.peek()
            if c == ",":
                self.i += 1
                self.skip(newlines=True)
                if self.peek() == ",":
                    raise self.error("empty field name before ','")
            elif c == "\n" or c == "}" or not c:
                continue
            elif c == "]":
                raise self.error("unbalanced ']'")
            else:
                raise self.error(f"unexpected {c!r} after field {name!r}")
        if not properties:
            raise self.error("no fields" if opened is None else "no fields between '{' and '}'")
        return {
            "type": "object",
            "properties": properties,
            "required": required,
            "additionalProperties": False,
        }

    def field_rest(self, name: str) -> tuple[dict[str, Any], bool]:
        """The type, '?' and description after a field's name."""
        self.skip()
        c = self.peek()
        schema = {"type": "string"} if not c or c in ",\n}?:" else self.type_of(name)
        self.skip()
        optional = self.peek() == "?"
        if optional:
            self.i += 1
            self.skip()
        if self.peek() == ":":
            self.i += 1
            description = self.description()
            if description:
                schema = {**schema, "description": description}
        return schema, optional

    def description(self) -> str:
        ends = "\n" if self.multiline else ",}\n"
        start = self.i
        while self.i < len(self.text) and self.text[self.i] not in ends:
            self.i += 1
        return self.text[start : self.i].strip()

    def type_of(self, name: str) -> dict[str, Any]:
        start = self.i
        if self.peek() == "{":
            self.i += 1
            return self.fields(opened=start)
        word = self.word()
        if not word:
            raise self.error(f"expected a type for field {name!r}, got {self.peek()!r}")
        self.skip()
        if self.peek() == "|":
            return self.enum(word, name)
        if word == "list":
            if self.peek() != "[":
                return {"type": "array", "items": {"type": "string"}}
            self.i += 1
            self.skip()
            items = self.type_of(name)
            self.skip()
            if self.peek() != "]":
                raise self.error("unbalanced '['", start + len(word))
            self.i += 1
            return {"type": "array", "items": items}
        if self.peek() == "[":
            raise self.error(f"only list takes [...], not {word!r}")
        if word not in _TYPES:
            raise self.error(
                f"unknown type {word!r} for field {name!r}"
                " (use str, int, float, bool, list[...], {...} or a|b|c)",
                start,
            )
        return {"type": _TYPES[word]}

    def enum(self, first: str, name: str) -> dict[str, Any]:
        values = [first]
        while self.peek() == "|":
            self.i += 1
            self.skip()
            value = self.word()
            if not value:
                raise self.error(f"empty enum value for field {name!r}")
            if value in values:
                raise self.error(f"duplicate enum value {value!r} for field {name!r}")
            values.append(value)
            self.skip()
        return {"type": "string", "enum": values}
