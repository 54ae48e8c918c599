"""The incremental JSON parser: fed split everywhere, its partials, its completions."""

from __future__ import annotations

import copy
import json
import random
from typing import Any

import jsonschema
import pytest

from streamkit.protocol.json_parse import JSONStream, JSONStreamError

# -- documents and schemas ----------------------------------------------------

FLAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "minLength": 2},
        "age": {"type": "integer"},
        "ok": {"type": "boolean"},
        "note": {"type": ["string", "null"]},
        "score": {"type": "number"},
    },
    "required": ["name", "age", "ok"],
    "additionalProperties": False,
}
FLAT_DOCS = [
    '{"name": "Zoë", "age": 42, "ok": true}',
    '{ "ok" : false , "age":-7, "name":"A\\"\\\\\\/\\b\\f\\n\\r\\t",'
    ' "note": null, "score": -1.25e-3 }',
    '{"note":"\\ud83d\\ude00 \\u00e9\\u4E2D","score":6.02E+23,"name":"xy","age":0,"ok":true}',
]

NESTED = {
    "type": "object",
    "properties": {
        "title": {"type": "string"},
        "items": {
            "type": "array",
            "minItems": 2,
            "maxItems": 4,
            "items": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "tags": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                    "point": {
                        "type": "array",
                        "prefixItems": [{"type": "number"}, {"type": "number"}],
                        "minItems": 2,
                        "maxItems": 2,
                    },
                },
                "required": ["id", "tags"],
            },
        },
        "matrix": {"type": "array", "items": {"type": "array", "items": {"type": "number"}}},
        "meta": {"type": "object"},
    },
    "required": ["title", "items"],
}
NESTED_DOCS = [
    '{"title": "t", "items": [{"id": 1, "tags": ["a"]},'
    ' {"id": 2, "tags": ["b", "c"], "point": [0.5, -2]}]}',
    '{"matrix": [[1, 2.5], [], [3e2]], "items": [{"tags": ["\\u00e9"], "id": 10,'
    ' "extra": {"x": [null]}}, {"id": 0, "tags": [""]}, {"id": 3, "tags": ["z"]}],'
    ' "title": "", "meta": {}}',
]

ENUMS = {
    "type": "object",
    "properties": {
        "mood": {"enum": ["happy", "sad", "sadder", "so-so"]},
        "level": {"type": "integer", "enum": [1, 10, 100]},
        "flag": {"type": "boolean"},
        "kind": {"const": "report"},
        "face": {"type": "string", "enum": ["😀 smile", "é", 'a"b']},
        "maybe": {"type": ["boolean", "null"]},
    },
    "required": ["mood", "level", "flag", "kind", "face"],
    "additionalProperties": False,
}
ENUM_DOCS = [
    '{"mood": "sadder", "level": 100, "flag": false, "kind": "report",'
    ' "face": "\\ud83d\\ude00 smile"}',
    '{"face":"\\u00e9","kind":"report","flag":true,"level":1,"mood":"sad","maybe":null}',
    '{"mood":"so-so","level":10,"flag":true,"kind":"rep\\u006frt","face":"a\\"b","maybe":false}',
]

REFS = {
    "$defs": {
        "person": {
            "type": "object",
            "properties": {
                "name": {"type": "string"},
                "friends": {"type": "array", "items": {"$ref": "#/$defs/person"}},
                "pet": {"anyOf": [{"type": "null"}, {"$ref": "#/definitions/pet"}]},
            },
            "required": ["name", "friends"],
            "additionalProperties": False,
        }
    },
    "definitions": {
        "pet": {
            "type": "object",
            "properties": {"species": {"enum": ["cat", "dog"]}, "age": {"type": "integer"}},
            "required": ["species"],
        }
    },
    "$ref": "#/$defs/person",
}
REF_DOCS = [
    '{"name": "Ann", "friends": [{"name": "Bob", "friends": [],'
    ' "pet": {"species": "dog", "age": 3}}], "pet": null}',
    '{"friends":[{"friends":[{"name":"Cy","friends":[]}],"name":"Di"}],'
    '"name":"Ed","pet":{"age":1,"species":"cat"}}',
]

BRANCHES = {
    "oneOf": [
        {"type": "array", "items": {"type": "integer"}, "minItems": 3},
        {"type": "string", "minLength": 4},
        {"type": "object", "properties": {"n": {"type": "number"}}, "required": ["n"]},
        {"type": "integer", "enum": [7, 70, 700]},
    ]
}
BRANCH_DOCS = ["[1, 2, 3, 4]", ' "abcdef" ', '{"n": 1.5}', "[10,20,30]", "700"]

SCHEMA_CASES = [
    ("flat", FLAT, FLAT_DOCS),
    ("nested", NESTED, NESTED_DOCS),
    ("enums", ENUMS, ENUM_DOCS),
    ("refs", REFS, REF_DOCS),
    ("branches", BRANCHES, BRANCH_DOCS),
]

DOCS = [
    *FLAT_DOCS,
    *NESTED_DOCS,
    *ENUM_DOCS,
    *REF_DOCS,
    *BRANCH_DOCS,
    "[]",
    " {} ",
    '[[[[[[]]]]], {}, [], {"a": {"b": {"c": [{}]}}}]',
    "  -0.0e-0  ",
    "[1e5, -1E-5, 0, 0.5, 123456789012345678901234567890, 1.5e+300, true, false, null]",
    '"\\ud83d\\ude00\\ud83d\\ud83d\\ude00"',
    '["\\ud83dx\\udc00", "\\ud83d\\n", "\\ud83d\\u0041", "\\uDBFF\\uDFFF"]',
    '{"": "", "a\\u0000b": "\\u001f", "k": [ ], "\\u00e9": {"x": "y"}}',
    "[" * 60 + '{"k": "v"}' + "]" * 60,
    '\n\t{\r\n "a" :\t[ 1 , "two" , { } ] \n}\n',
    "null",
    "12",
]


# -- helpers ------------------------------------------------------------------


def parse_pieces(pieces: list[str]) -> JSONStream:
    stream = JSONStream()
    for piece in pieces:
        stream.feed(piece)
    stream.close()
    return stream


def extends(old: Any, new: Any) -> bool:
    """``new`` extends ``old``: same shape, objects and arrays may have grown
    (keys added, items appended), strings may have grown at the end, every
    other value is unchanged."""
    if isinstance(old, dict):
        return (
            isinstance(new, dict)
            and list(new)[: len(old)] == list(old)
            and all(extends(old[key], new[key]) for key in old)
        )
    if isinstance(old, list):
        return (
            isinstance(new, list)
            and len(new) >= len(old)
            and all(extends(a, b) for a, b in zip(old, new, strict=False))
        )
    if isinstance(old, str):
        return isinstance(new, str) and new.startswith(old)
    return type(old) is type(new) and old == new


def reject(constant: str) -> None:
    raise ValueError(f"{constant} is not JSON")


def canonical(value: Any) -> str:
    """A text equal only for equal JSON values (booleans differ from numbers)."""
    return json.dumps(value, sort_keys=True)


# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize("doc", DOCS)
def test_split_at_every_position(doc: str):
    expected = json.loads(doc)
    for cut in range(len(doc) + 1):
        stream = parse_pieces([doc[:cut], doc[cut:]])
        assert stream.done
        assert canonical(stream.partial) == canonical(expected), f"split at {cut}"


@pytest.mark.parametrize("doc", DOCS)
def test_random_pieces(doc: str):
    expected = canonical(json.loads(doc))
    rng = random.Random(20240611)
    for _ in range(15):
        cuts = sorted(rng.sample(range(1, len(doc)), min(len(doc) - 1, rng.randint(1, 12))))
        pieces = [doc[a:b] for a, b in zip([0, *cuts], [*cuts, len(doc)], strict=True)]
        assert canonical(parse_pieces(pieces).partial) == expected, pieces


@pytest.mark.parametrize("doc", DOCS)
def test_partials_only_grow_and_feed_reports_each_change(doc: str):
    stream = JSONStream()
    before, shown_before = None, "nothing"  # a top-level null is a change from nothing
    for index, char in enumerate(doc):
        changed = stream.feed(char)
        now = copy.deepcopy(stream.partial)
        shown = canonical(now) if stream.started else "nothing"
        assert changed == (shown != shown_before), f"after {doc[: index + 1]!r}"
        if shown_before != "nothing":
            assert extends(before, now), f"after {doc[: index + 1]!r}"
        before, shown_before = now, shown


def test_partial_shows_strings_in_progress_and_numbers_once_complete():
    stream = JSONStream()
    assert stream.partial is None and not stream.started
    assert stream.feed('{"a": "caf') is True
    assert stream.partial == {"a": "caf"}
    assert stream.feed("\\u00") is False  # half an escape shows nothing yet
    assert stream.feed("e9") is True
    assert stream.partial == {"a": "café"}
    assert stream.feed('", "bb') is False  # a key alone is not shown
    assert stream.feed('": 12') is False  # nor a number that may go on
    assert stream.partial == {"a": "café"}
    assert stream.feed("3") is False
    assert stream.feed(",") is True
    assert stream.partial == {"a": "café", "bb": 123}
    assert stream.feed(' "c": [tr') is True  # the array shows; the literal not yet
    assert stream.partial == {"a": "café", "bb": 123, "c": []}
    assert stream.feed("ue") is True
    assert stream.partial == {"a": "café", "bb": 123, "c": [True]}
    assert not stream.done
    stream.feed("]}  \n")
    assert stream.done


def test_high_surrogate_waits_for_its_pair():
    stream = JSONStream()
    stream.feed('"x\\ud83d')
    assert stream.partial == "x"
    stream.feed("\\ude0")
    assert stream.partial == "x"
    stream.feed('0"')
    assert stream.partial == "x😀"


def test_top_level_number_completes_on_whitespace_or_close():
    stream = JSONStream()
    stream.feed("-12.5e1")
    assert stream.partial is None and not stream.done
    stream.close()
    assert stream.partial == -125.0 and stream.done
    stream = JSONStream()
    stream.feed("42 ")
    assert stream.partial == 42 and stream.done


# -- errors -------------------------------------------------------------------

INVALID = [
    ('{"a" 1}', "expected ':' after the key, got '1'", 5),
    ("[1,]", "a value must follow ',' (trailing comma before ']')", 3),
    ('{"a": 1,}', "a key must follow ',' (trailing comma before '}')", 8),
    ("[1 2]", "expected ',' or ']', got '2'", 3),
    ("[1, 2}", "expected ',' or ']', got '}'", 5),
    ("{1: 2}", "expected a key in double quotes, got '1'", 1),
    ('{"a": }', "expected a value, got '}'", 6),
    ("]", "expected a value, got ']'", 0),
    ("NaN", "expected a value, got 'N'", 0),
    ("tru e", "invalid literal: expected 'true', got ' '", 3),
    ("[01]", "expected ',' or ']', got '1'", 2),
    ("[1.]", "incomplete number '1.'", 3),
    ("[-]", "incomplete number '-'", 2),
    ("[1e+]", "incomplete number '1e+'", 4),
    ('"a\\x"', "invalid escape '\\x' in a string", 3),
    ('"\\u12g4"', "invalid \\u escape: 'g' is not a hex digit", 5),
    ('"a\nb"', "control character '\\n' in a string must be escaped", 2),
    ('{"a": 1}}', "extra data after the JSON value: '}'", 8),
    ("1 2", "extra data after the JSON value: '2'", 2),
]


@pytest.mark.parametrize(("text", "message", "position"), INVALID)
def test_invalid_json_is_rejected_where_it_goes_wrong(text: str, message: str, position: int):
    with pytest.raises(ValueError):  # json.loads agrees (NaN aside, which it accepts)
        json.loads(text, parse_constant=reject)
    for cut in range(len(text) + 1):
        stream = JSONStream()
        with pytest.raises(JSONStreamError) as caught:
            stream.feed(text[:cut])
            stream.feed(text[cut:])
            stream.close()
        assert caught.value.position == position, f"split at {cut}"
        assert str(caught.value) == f"invalid JSON at character {position}: {message}"
        assert stream.error is caught.value
        with pytest.raises(JSONStreamError) as again:
            stream.feed("")
        assert again.value is caught.value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"a": 1', "the JSON text ended early: the value is incomplete"),
        ('"abc', "the JSON text ended early: the value is incomplete"),
        ("  ", "the JSON text ended early: the value is missing"),
        ("1.", "incomplete number '1.'"),
    ],
)
def test_close_rejects_an_unfinished_value(text: str, message: str):
    stream = JSONStream()
    stream.feed(text)
    with pytest.raises(JSONStreamError, match=f"at character {len(text)}: {message}$"):
        stream.close()


def test_nesting_is_bounded():
    stream = JSONStream(max_depth=3)
    stream.feed("[{")
    with pytest.raises(JSONStreamError, match=r"character 8: nested deeper than 3 levels$"):
        stream.feed('"a": [[')


# -- completion ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "schema", "docs"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_every_prefix_completes_to_a_valid_document(name: str, schema: dict, docs: list[str]):
    validator = jsonschema.Draft202012Validator(schema)
    for doc in docs:
        validator.validate(json.loads(doc))
        stream = JSONStream()
        for end in range(len(doc) + 1):
            if end:
                stream.feed(doc[end - 1])
            prefix = doc[:end]
            closing = stream.closing_text(schema)
            errors = list(validator.iter_errors(json.loads(prefix + closing)))
            assert not errors, f"{prefix!r} + {closing!r}: {errors[0].message}"
            json.loads(prefix + stream.closing_text(None))


@pytest.mark.parametrize("doc", DOCS)
def test_every_prefix_closes_syntactically(doc: str):
    stream = JSONStream()
    for end in range(len(doc) + 1):
        if end:
            stream.feed(doc[end - 1])
        completed = json.loads(doc[:end] + stream.closing_text())
        if stream.started:  # the completion adds to the partial, never changes it
            assert extends(copy.deepcopy(stream.partial), completed)


CLOSINGS = [
    (FLAT, "", '{"name":"__","age":0,"ok":false}'),
    (FLAT, '{"name": "Al', '","age":0,"ok":false}'),
    (FLAT, '{"name": "A', '_","age":0,"ok":false}'),
    (FLAT, '{"name": "\\', 'n_","age":0,"ok":false}'),
    (FLAT, '{"age": 1', ',"name":"__","ok":false}'),
    (FLAT, '{"age": 1.', '0,"name":"__","ok":false}'),
    (FLAT, '{"age": -', '0,"name":"__","ok":false}'),
    (FLAT, '{"ok": t', 'rue,"name":"__","age":0}'),
    (FLAT, '{"no', 'te":null,"name":"__","age":0,"ok":false}'),
    (FLAT, '{"a', 'ge":0,"name":"__","ok":false}'),
    (FLAT, '{"name"', ':"__","age":0,"ok":false}'),
    (FLAT, '{"name": "ab", "age": 3, "ok": true,', '"score":0}'),  # shorter than "note":null
    # After ',' with every property present: repeat one (the parsed value is unchanged).
    (FLAT, '{"name": "ab", "age": 3, "ok": true, "note": null, "score": 1,', '"age":3}'),
    (ENUMS, '{"mood": "sa', 'd","level":1,"flag":false,"kind":"report","face":"😀 smile"}'),
    (
        ENUMS,
        '{"face": "\\ud83d',
        '\\ude00 smile","mood":"happy","level":1,"flag":false,"kind":"report"}',
    ),
    (ENUMS, '{"face": "\\u00', 'e9","mood":"happy","level":1,"flag":false,"kind":"report"}'),
    (ENUMS, '{"level": 1', ',"mood":"happy","flag":false,"kind":"report","face":"😀 smile"}'),
    (ENUMS, '{"kind": "rep\\u00', '6frt","mood":"happy","level":1,"flag":false,"face":"😀 smile"}'),
    (NESTED, '{"items": [{"id": 1, "tags": [', '""]},{"id":0,"tags":[""]}],"title":""}'),
    (
        NESTED,
        '{"title": "", "items": [{"point": [1',
        ',0],"id":0,"tags":[""]},{"id":0,"tags":[""]}]}',
    ),
    (REFS, '{"name": "x", "friends": [{"', 'name":"","friends":[]}]}'),
    (REFS, '{"pet": {', '"species":"cat"},"name":"","friends":[]}'),
    (BRANCHES, "[1", ",0,0]"),
    (BRANCHES, '"a', '___"'),
    (BRANCHES, "7", ""),
    (None, '{"a": [1, {"b": "x\\u12', '00"}]}'),
    (None, "[tr", "ue]"),
    (None, '{"a":', "null}"),
    (None, '{"a"', ":null}"),
    (None, '{"a', '":null}'),
    (None, "[1,", "null]"),
    (None, '{"a": 1,', '"":null}'),
    (None, '{"": 1,', '"_":null}'),
    (None, "-", "0"),
    (None, "1e+", "0"),
    (None, '"\\ud83d\\', 'udc00"'),
    (None, '"\\ud8', '00\\udc00"'),
    (None, '"\\u', '0000"'),
    (None, "[[[[", "]]]]"),
    (None, '{"a": 1}', ""),
]


@pytest.mark.parametrize(("schema", "prefix", "closing"), CLOSINGS)
def test_closing_text_is_the_shortest_valid_completion(
    schema: dict | None, prefix: str, closing: str
):
    stream = JSONStream()
    stream.feed(prefix)
    assert stream.closing_text(schema) == closing
    document = json.loads(prefix + closing)
    if schema is not None:
        jsonschema.validate(document, schema)


def test_repeated_member_leaves_the_value_unchanged():
    prefix = '{"name": "ab", "age": 3, "ok": true, "note": null, "score": 1,'
    stream = JSONStream()
    stream.feed(prefix)
    assert json.loads(prefix + stream.closing_text(FLAT)) == json.loads(prefix[:-1] + "}")


def test_no_valid_completion_falls_back_to_closing_syntactically():
    schema = {"type": "object", "properties": {"mood": {"enum": ["happy", "sad"]}}}
    stream = JSONStream()
    stream.feed('{"mood": "bor')
    closing = stream.closing_text(schema)
    assert closing == '"}'  # no enum value starts "bor": closed as it is
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(json.loads('{"mood": "bor' + closing), schema)


def test_recursive_schema_at_the_depth_limit():
    schema = {"type": "array", "items": {"$ref": "#"}, "minItems": 1}
    stream = JSONStream()
    stream.feed("[" * 128)
    closing = stream.closing_text(schema)
    assert closing == "]" * 128  # the innermost [] cannot get a minimal item: schema-free
    stream = JSONStream()
    stream.feed("[" * 20 + "[]" + "]" * 19 + ",")
    tree = {"type": "array", "items": {"$ref": "#"}}
    closing = stream.closing_text(tree)
    assert closing == "[]]"
    jsonschema.validate(json.loads("[" * 20 + "[]" + "]" * 19 + "," + closing), tree)


# -- random valid documents ---------------------------------------------------

CHARS = ["a", "b", "Z", " ", "é", "中", "😀", '"', "\\", "/", "\n", "\t", "\x01", "\x7f"]


def generate(schema: Any, rng: random.Random, root: Any, depth: int = 0) -> Any:
    """A random value valid against ``schema`` (the keywords the test schemas use)."""
    if schema is True or schema == {}:
        return rng.choice([None, 1, "x", [], {"k": False}])
    if "$ref" in schema:
        target: Any = root
        for part in schema["$ref"][2:].split("/"):
            target = target[part]
        return generate(target, rng, root, depth)
    for word in ("anyOf", "oneOf"):
        if word in schema:
            return generate(rng.choice(schema[word]), rng, root, depth)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return rng.choice(schema["enum"])
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "object" or "properties" in schema:
        value = {}
        properties = schema.get("properties", {})
        keys = [k for k in properties if k in schema.get("required", ()) or rng.random() < 0.5]
        rng.shuffle(keys)
        for key in keys:
            value[key] = generate(properties[key], rng, root, depth + 1)
        if schema.get("additionalProperties", True) is not False and rng.random() < 0.3:
            value["extra" + rng.choice(CHARS)] = generate(True, rng, root)
        return value
    if kind == "array":
        low = schema.get("minItems", 0)
        count = rng.randint(low, schema.get("maxItems", low + (3 if depth < 3 else 0)))
        positional = schema.get("prefixItems", [])
        return [
            generate(
                positional[i] if i < len(positional) else schema.get("items", True),
                rng,
                root,
                depth + 1,
            )
            for i in range(count)
        ]
    if kind == "string":
        low = schema.get("minLength", 0)
        return "".join(rng.choice(CHARS) for _ in range(rng.randint(low, low + 6)))
    if kind == "integer":
        return rng.choice([0, -1, 7, 123456, -98765432109876543210])
    if kind == "number":
        return rng.choice([0, 2.5, -0.001, 6.02e23, 1e-7, 42])
    if kind == "boolean":
        return rng.random() < 0.5
    return None


def dump(value: Any, rng: random.Random) -> str:
    """``value`` as JSON with random whitespace, escapes and number spellings."""

    def space() -> str:
        return rng.choice(["", "", "", " ", "\n  ", "\t", "\r\n"])

    if isinstance(value, dict):
        members = [
            f"{space()}{dump(k, rng)}{space()}:{space()}{dump(v, rng)}{space()}"
            for k, v in value.items()
        ]
        return "{" + ",".join(members) + (space() if not members else "") + "}"
    if isinstance(value, list):
        items = [f"{space()}{dump(v, rng)}{space()}" for v in value]
        return "[" + ",".join(items) + (space() if not items else "") + "]"
    if isinstance(value, str):
        out = []
        for char in value:
            escaped = json.dumps(char, ensure_ascii=False)[1:-1]
            spelled = json.dumps(char, ensure_ascii=True)[1:-1]
            if rng.random() < 0.5:
                spelled = spelled.upper().replace("\\U", "\\u") if "\\u" in spelled else spelled
            out.append(rng.choice([escaped, spelled]))
        return '"' + "".join(out) + '"'
    if isinstance(value, float) and rng.random() < 0.5:
        return rng.choice([f"{value:e}", f"{value:E}", f"{value:.3e}"])
    return json.dumps(value)


@pytest.mark.parametrize(("name", "schema", "docs"), SCHEMA_CASES, ids=[c[0] for c in SCHEMA_CASES])
def test_random_valid_documents_complete_at_every_prefix(name: str, schema: dict, docs: Any):
    rng = random.Random(f"json-stream-{name}")
    validator = jsonschema.Draft202012Validator(schema)
    for _ in range(20):
        value = generate(schema, rng, schema)
        doc = rng.choice(["", " "]) + dump(value, rng)
        validator.validate(json.loads(doc))
        stream = JSONStream()
        for end in range(len(doc) + 1):
            if end:
                stream.feed(doc[end - 1])
            prefix = doc[:end]
            closing = stream.closing_text(schema)
            errors = list(validator.iter_errors(json.loads(prefix + closing)))
            assert not errors, f"{prefix!r} + {closing!r}: {errors[0].message}"
        stream.close()
        assert canonical(stream.partial) == canonical(json.loads(doc))
