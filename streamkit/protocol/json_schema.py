"""The small JSON Schema interpreter behind ``JSONStream.closing_text``, sans-IO.

Closing an unfinished document validly (``streamkit.protocol.json_close``)
asks three things of a schema, quickly and without a full validator: which
alternatives it allows for a value still to be written, the minimal value it
allows, and whether a value already complete is valid. This module answers
them for the subset of JSON Schema the closer relies on, with no state.

Keywords understood
    ``type`` (a name or a list: nullable via ``["string", "null"]``),
    ``properties``, ``required``, ``additionalProperties`` (bool or schema),
    ``items``, ``prefixItems``, ``minItems``, ``maxItems``, ``minLength``,
    ``maxLength``, ``enum``, ``const``, ``anyOf`` / ``oneOf`` (the first
    branch, in order, whose completion fits what was fed; keywords beside the
    list are merged into each branch), ``allOf`` (checked on completed values
    only), ``$ref`` to a JSON pointer in the same document (``#/$defs/...``,
    ``#/definitions/...``, ``#``) and boolean schemas. Other keywords
    (``pattern``, ``format``, ``minimum``, ...) are ignored, so a completion
    may break them; so are ``enum``/``const`` on objects and arrays.

Minimal values (``minimal``)
    A value still to be written is written as its *minimal value*: ``null``
    when the schema allows null (a nullable type, or no type at all: an
    absent value then reads as absent), else the ``const``, the first
    ``enum`` value, ``""`` (padded with ``_`` to ``minLength``), ``0``,
    ``false``, ``[]`` (with ``minItems`` minimal items) or ``{}`` (with each
    required key).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

_SCHEMA_DEPTH = 32  # $ref chains and minimal values of recursive schemas stop here

PAD = "_"  # what pads a string to its minLength

Schema = Mapping[str, Any] | bool


def dumps(value: Any) -> str:
    """The compact JSON text of ``value``, as completions write it."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def all_or_none(texts: list[str | None]) -> list[str] | None:
    """``texts``, or None when one of them is None (a value with no valid completion)."""
    found: list[str] = []
    for text in texts:
        if text is None:
            return None
        found.append(text)
    return found


def _deref(root: Schema, ref: str) -> Schema:
    """The schema a same-document ``$ref`` points to; anything else: the empty schema."""
    if not ref.startswith("#"):
        return True
    target: Any = root
    for part in ref[1:].split("/")[1:]:
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, Mapping) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return True
    return target if isinstance(target, Mapping | bool) else True


def candidates(schema: Schema, root: Schema, depth: int = 0) -> Iterator[Mapping[str, Any]]:
    """The alternatives a schema allows, in order, each with one type at most.

    ``$ref`` is followed, ``anyOf``/``oneOf`` are split into their branches
    (with the keywords beside them merged in), and a list of types into one
    schema per type.
    """
    if schema is False or depth > _SCHEMA_DEPTH:
        return
    if not isinstance(schema, Mapping):
        yield {}
        return
    if "$ref" in schema:
        target = _deref(root, schema["$ref"])
        if target is False:
            return
        rest = {k: v for k, v in schema.items() if k != "$ref"}
        merged = {**target, **rest} if isinstance(target, Mapping) else rest
        yield from candidates(merged, root, depth + 1)
        return
    for word in ("anyOf", "oneOf"):
        if word in schema:
            base = {k: v for k, v in schema.items() if k != word}
            for branch in schema[word]:
                if branch is not False:
                    merged = {**base, **branch} if isinstance(branch, Mapping) else base
                    yield from candidates(merged, root, depth + 1)
            return
    types = schema.get("type")
    if isinstance(types, list):
        for name in types:
            yield {**schema, "type": name}
    else:
        yield schema


def type_allows(schema: Mapping[str, Any], name: str) -> bool:
    types = schema.get("type")
    if types is None:
        return True
    return name in types if isinstance(types, list) else name == types


def allowed_values(schema: Mapping[str, Any]) -> list[Any] | None:
    if "const" in schema:
        return [schema["const"]]
    enum = schema.get("enum")
    return list(enum) if enum is not None else None


def item_schemas(schema: Mapping[str, Any]) -> Callable[[int], Schema]:
    positional = schema.get("prefixItems") or []
    rest = schema.get("items", True)
    if isinstance(rest, list):  # the older tuple form
        positional, rest = rest, schema.get("additionalItems", True)

    def item_schema(index: int) -> Schema:
        found: Schema = positional[index] if index < len(positional) else rest
        return found

    return item_schema


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def same(a: Any, b: Any) -> bool:
    """JSON equality: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def valid(schema: Schema, value: Any, root: Schema, depth: int = 0) -> bool:
    """``value`` (complete) is valid against ``schema``, for the keywords understood."""
    if schema is True or not isinstance(schema, Mapping):
        return schema is not False
    if depth > 4 * _SCHEMA_DEPTH:
        return True
    deeper = depth + 1
    if "$ref" in schema and not valid(_deref(root, schema["$ref"]), value, root, deeper):
        return False
    kind = _json_type(value)
    types = schema.get("type")
    if types is not None:
        names = types if isinstance(types, list) else [types]
        if kind not in names and not (kind == "integer" and "number" in names):
            return False
    if "const" in schema and not same(value, schema["const"]):
        return False
    if "enum" in schema and not any(same(value, v) for v in schema["enum"]):
        return False
    if kind == "string":
        if len(value) < schema.get("minLength", 0):
            return False
        if len(value) > schema.get("maxLength", len(value)):
            return False
    elif kind == "array":
        if not schema.get("minItems", 0) <= len(value) <= schema.get("maxItems", len(value)):
            return False
        item_schema = item_schemas(schema)
        if not all(valid(item_schema(i), v, root, deeper) for i, v in enumerate(value)):
            return False
    elif kind == "object":
        if any(key not in value for key in schema.get("required", ())):
            return False
        properties: Mapping[str, Any] = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)
        for key, item in value.items():
            sub = properties.get(key, additional)
            if not valid(sub, item, root, deeper):
                return False
    if "allOf" in schema and not all(valid(s, value, root, deeper) for s in schema["allOf"]):
        return False
    if "anyOf" in schema and not any(valid(s, value, root, deeper) for s in schema["anyOf"]):
        return False
    return "oneOf" not in schema or (
        sum(valid(s, value, root, deeper) for s in schema["oneOf"]) == 1
    )


def _allows_null(schema: Mapping[str, Any]) -> bool:
    values = allowed_values(schema)
    if values is not None:
        return any(v is None for v in values)
    return type_allows(schema, "null")


# -- minimal values ---------------------------------------------------------


def minimal(schema: Schema, root: Schema, depth: int = 0) -> str | None:
    """The JSON text of the minimal value valid against ``schema``, or None."""
    if depth > _SCHEMA_DEPTH:
        return None
    found = list(candidates(schema, root))
    if any(_allows_null(c) for c in found):
        return "null"
    for candidate in found:
        text = _minimal_of(candidate, root, depth)
        if text is not None:
            return text
    return None


def _minimal_of(schema: Mapping[str, Any], root: Schema, depth: int) -> str | None:
    values = allowed_values(schema)
    if values is not None:
        return next((dumps(v) for v in values if valid(schema, v, root)), None)
    kind = schema.get("type")
    if kind == "string":
        length = schema.get("minLength", 0)
        return None if length > schema.get("maxLength", length) else f'"{PAD * length}"'
    if kind in ("integer", "number"):
        return "0"
    if kind == "boolean":
        return "false"
    if kind == "array":
        count = schema.get("minItems", 0)
        if count > schema.get("maxItems", count):
            return None
        item_schema = item_schemas(schema)
        items = all_or_none([minimal(item_schema(i), root, depth + 1) for i in range(count)])
        return None if items is None else "[" + ",".join(items) + "]"
    if kind == "object":
        properties = schema.get("properties") or {}
        additional = schema.get("additionalProperties", True)
        members = []
        for key in dict.fromkeys(schema.get("required", ())):
            sub = properties.get(key, additional)
            value = minimal(sub, root, depth + 1)
            if value is None:
                return None
            members.append(f"{dumps(key)}:{value}")
        return "{" + ",".join(members) + "}"
    return "null"
