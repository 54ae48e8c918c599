"""The short ``--schema`` syntax, to the exact JSON Schema, and ``load_schema``."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from streamkit.protocol.schema_syntax import load_schema, multi, parse_short_schema

STR = {"type": "string"}


def obj(properties: dict[str, Any], required: list[str] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": list(properties) if required is None else required,
        "additionalProperties": False,
    }


def test_the_documented_example():
    assert parse_short_schema("name str, age int, tags list[str]") == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "age", "tags"],
        "additionalProperties": False,
    }


@pytest.mark.parametrize(
    ("text", "schema"),
    [
        ("name", obj({"name": STR})),
        (
            "a str, b int, c float, d bool",
            obj(
                {
                    "a": STR,
                    "b": {"type": "integer"},
                    "c": {"type": "number"},
                    "d": {"type": "boolean"},
                }
            ),
        ),
        (
            "a string, b integer, c number, d boolean",
            obj(
                {
                    "a": STR,
                    "b": {"type": "integer"},
                    "c": {"type": "number"},
                    "d": {"type": "boolean"},
                }
            ),
        ),
        ("tags list", obj({"tags": {"type": "array", "items": STR}})),
        (
            "grid list[ list[float] ]",
            obj(
                {"grid": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}}}
            ),
        ),
        ("age int?, name", obj({"age": {"type": "integer"}, "name": STR}, ["name"])),
        ("nick?", obj({"nick": STR}, [])),
        (
            "mood happy|sad|neutral",
            obj({"mood": {"type": "string", "enum": ["happy", "sad", "neutral"]}}),
        ),
        ("mood happy | sad", obj({"mood": {"type": "string", "enum": ["happy", "sad"]}})),
        ("level 1|2|3", obj({"level": {"type": "string", "enum": ["1", "2", "3"]}})),
        (
            "picks list[a|b]",
            obj({"picks": {"type": "array", "items": {"type": "string", "enum": ["a", "b"]}}}),
        ),
        (
            "name str: the person's full name",
            obj({"name": {"type": "string", "description": "the person's full name"}}),
        ),
        (
            "name: full name, age int?: in years",
            obj(
                {
                    "name": {"type": "string", "description": "full name"},
                    "age": {"type": "integer", "description": "in years"},
                },
                ["name"],
            ),
        ),
        (
            "mood happy|sad: how they feel",
            obj(
                {
                    "mood": {
                        "type": "string",
                        "enum": ["happy", "sad"],
                        "description": "how they feel",
                    }
                }
            ),
        ),
        ("address {street str, city str}", obj({"address": obj({"street": STR, "city": STR})})),
        (
            "name, address{street, zip int?}?: where they live",
            obj(
                {
                    "name": STR,
                    "address": {
                        **obj({"street": STR, "zip": {"type": "integer"}}, ["street"]),
                        "description": "where they live",
                    },
                },
                ["name"],
            ),
        ),
        (
            "people list[{name str, age int}]",
            obj(
                {
                    "people": {
                        "type": "array",
                        "items": obj({"name": STR, "age": {"type": "integer"}}),
                    }
                }
            ),
        ),
        ("a {b {c {d int}}}", obj({"a": obj({"b": obj({"c": obj({"d": {"type": "integer"}})})})})),
        ("  été str ,  user-id int,  ", obj({"été": STR, "user-id": {"type": "integer"}})),
    ],
)
def test_short_syntax_to_json_schema(text: str, schema: dict[str, Any]):
    assert parse_short_schema(text) == schema
    jsonschema.Draft202012Validator.check_schema(schema)


def test_several_lines_let_descriptions_hold_commas():
    text = """
        name str: full name, as written
        address {
            street: street, number
            city str
        }?

        tags list[str]: a few, lower case
    """
    assert parse_short_schema(text) == obj(
        {
            "name": {"type": "string", "description": "full name, as written"},
            "address": obj(
                {
                    "street": {"type": "string", "description": "street, number"},
                    "city": STR,
                }
            ),
            "tags": {"type": "array", "items": STR, "description": "a few, lower case"},
        },
        ["name", "tags"],
    )


def test_multi_wraps_a_schema_in_an_items_list():
    inner = parse_short_schema("name, age int")
    wrapped = multi(inner)
    assert wrapped == {
        "type": "object",
        "properties": {"items": {"type": "array", "items": inner}},
        "required": ["items"],
        "additionalProperties": False,
    }
    jsonschema.validate({"items": [{"name": "a", "age": 1}, {"name": "b", "age": 2}]}, wrapped)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name strr",
            "schema: unknown type 'strr' for field 'name' (use str, int, float, bool,"
            " list[...], {...} or a|b|c) (at character 6)",
        ),
        ("mood happy", "schema: unknown type 'happy' for field 'mood'"),
        ("name str, , age int", "schema: empty field name before ',' (at character 11)"),
        (", name", "schema: empty field name before ','"),
        (": description", "schema: empty field name before ':'"),
        ("name str, age int?, name int", "schema: duplicate field 'name' (at character 21)"),
        ("tags list[str", "schema: unbalanced '[' (at character 10)"),
        ("tags list[str]]", "schema: unbalanced ']'"),
        ("address {street str", "schema: unbalanced '{' (at character 9)"),
        ("address {street str}}", "schema: unbalanced '}'"),
        ("name str}", "schema: unbalanced '}'"),
        ("tags str[int]", "schema: only list takes [...], not 'str'"),
        ("address {}", "schema: no fields between '{' and '}'"),
        ("", "schema: no fields"),
        ("  \n ", "schema: no fields"),
        ("mood a|", "schema: empty enum value for field 'mood'"),
        ("mood a|b|a", "schema: duplicate enum value 'a' for field 'mood'"),
        ("name str int", "schema: unexpected 'i' after field 'name'"),
    ],
)
def test_short_syntax_errors(text: str, message: str):
    with pytest.raises(ValueError) as caught:
        parse_short_schema(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_load_schema_takes_json_a_file_or_the_short_syntax(tmp_path: Path, monkeypatch):
    schema = {"type": "object", "properties": {"x": {"type": "integer"}}}
    assert load_schema(json.dumps(schema)) == schema
    assert load_schema("  " + json.dumps(schema) + "\n") == schema
    json_file = tmp_path / "schema.json"
    json_file.write_text(json.dumps(schema), encoding="utf-8")
    assert load_schema(str(json_file)) == schema
    short_file = tmp_path / "fields.txt"
    short_file.write_text("name: full name, with commas\nage int\n", encoding="utf-8")
    assert load_schema(str(short_file)) == obj(
        {
            "name": {"type": "string", "description": "full name, with commas"},
            "age": {"type": "integer"},
        }
    )
    monkeypatch.chdir(tmp_path)
    assert load_schema("schema.json") == schema
    assert load_schema("title") == obj({"title": STR})  # no such file: a field
    assert load_schema("title, body") == obj({"title": STR, "body": STR})


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '{"type": "object",}',
            "the --schema value is not valid JSON: Expecting property name"
            " enclosed in double quotes (line 1, column 19)",
        ),
        ('{"type": "nothing"}', "the --schema value is not a valid JSON Schema (type): "),
        (
            '{"type": "object", "required": "x"}',
            "the --schema value is not a valid JSON Schema (required): ",
        ),
        ("missing.json", "schema file not found: missing.json"),
        ("some/dir/schema", "schema file not found: some/dir/schema"),
    ],
)
def test_load_schema_errors(text: str, message: str, tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError) as caught:
        load_schema(text)
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_json_file_that_is_not_an_object(tmp_path: Path):
    path = tmp_path / "list.json"
    path.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^schema file {re.escape(str(path))} must be a JSON"):
        load_schema(str(path))
    path.write_text('{"a": ', encoding="utf-8")
    with pytest.raises(ValueError, match=rf"^schema file {re.escape(str(path))} is not valid JSON"):
        load_schema(str(path))
