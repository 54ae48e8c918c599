"""Structured output: ``--schema`` locally (grammar, budget closing), remotely (the
``response_format`` ladder), in batches, with ``json_partial`` events."""

from __future__ import annotations

import json

import jsonschema
import pytest

from streamkit.protocol.schema_syntax import parse_short_schema
from streamkit.protocol.structured import (
    DEFAULT_MAX_ITEMS,
    DEFAULT_MAX_STRING,
    bounded_schema,
    budget_bounds,
    check_reply,
    server_schema,
)
from streamkit.protocol.wire import openai_body
from streamkit.providers.llama.grammar import json_grammar
from streamkit.request import GenerationOptions, GenerationRequest, Message

PERSON = "name, age int"
FLAT = {
    "type": "object",
    "properties": {
        "name": {"type": "string"},
        "age": {"type": "integer"},
        "city": {"type": "string"},
    },
    "required": ["name", "age", "city"],
    "additionalProperties": False,
}
NESTED = parse_short_schema("title, authors list[{name, born int}], tags list[str]")
ENUM = parse_short_schema("sentiment positive|negative|neutral, confident bool, score float")
NESTED_SHORT = "title, authors list[{name, born int}], tags list[str]"

SUBJECTS = [
    "Alice Smith, 31, lives in Paris",
    "Bob Jones, 45, from Berlin",
    "Chen Wei, 28, Shanghai",
    "Dana White, 52, Toronto",
    "Emeka Obi, 39, Lagos",
    "Fatima Zahra, 24, Rabat",
    "Gustav Berg, 61, Oslo",
    "Hana Sato, 33, Osaka",
    "Ivan Petrov, 47, Sofia",
    "Julia Costa, 29, Lisbon",
    "Karl Meier, 55, Zurich",
    "Lena Novak, 22, Prague",
    "Marco Rossi, 40, Rome",
    "Nadia Haddad, 36, Beirut",
    "Omar Farouk, 50, Cairo",
    "Priya Nair, 27, Kochi",
    "Quinn Byrne, 34, Dublin",
    "Rosa Lima, 58, Recife",
    "Sven Olsen, 43, Bergen",
    "Tara Singh, 31, Delhi",
]


def lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines()]


def notices(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "takes a schema as" in line]


# -- remote: the response_format ladder ---------------------------------------------


def test_a_server_refusing_json_schema_is_asked_again_with_a_schema_in_json_object(
    run_cli, scripted
):
    server = scripted("no-json-schema")
    result = run_cli(
        "chat",
        "Who?",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        "--no-log",
        "-O",
        'scripted_reply={"name": "Al", "age": 3}',
    )
    assert result.code == 0, result.stderr
    assert json.loads(result.stdout) == {"name": "Al", "age": 3}
    (notice,) = notices(result.stderr)
    assert notice.startswith(
        "streamkit: the server takes a schema as json_object+schema "
        "(refused: json_schema: HTTP 400 Bad Request"
    )
    refused, accepted = server.bodies()
    schema = parse_short_schema(PERSON)
    assert refused["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "output", "schema": schema, "strict": True},
    }
    # The server builds its grammar from what it is sent: strings bounded as locally.
    bounded = {
        **schema,
        "properties": {
            **schema["properties"],
            "name": {
                "type": "string",
                "maxLength": DEFAULT_MAX_STRING,
                "pattern": '^[^\\x00-\\x1f"\\\\]{0,1000}$',
            },
        },
    }
    assert accepted["response_format"] == {"type": "json_object", "schema": bounded}
    assert accepted["messages"] == refused["messages"]
    assert (
        "streamkit: the schema sent to the server bounds open strings to 1000 characters "
        "(so it cannot run away); the reply is checked against the schema as given"
        in (result.stderr.splitlines())
    )


def test_a_batch_probes_once_and_checks_every_line(run_cli, scripted):
    server = scripted("no-json-schema")
    records = [{"id": i, "prompt": f"person {i}"} for i in range(6)]
    records[2]["schema"] = "name, age int, email"  # the reply lacks email
    records[4]["schema"] = {"type": "object", "properties": {"age": {"enum": [1]}}}
    result = run_cli(
        "chat",
        "--jsonl",
        "-j",
        "3",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        "-O",
        'scripted_reply={"name": "Al", "age": 3}',
        input="".join(json.dumps(r) + "\n" for r in records),
    )
    assert result.code == 7, result.stderr
    assert len(notices(result.stderr)) == 1
    bodies = server.bodies()
    assert [b["response_format"]["type"] for b in bodies] == ["json_schema"] + ["json_object"] * 6
    by_id = {r["id"]: r for r in lines(result.stdout)}
    for i in (0, 1, 3, 5):
        assert by_id[i]["json"] == {"name": "Al", "age": 3}
        assert "text" not in by_id[i] and by_id[i]["finish_reason"] == "stop"
    assert by_id[2]["error"]["type"] == "schema"
    assert by_id[2]["error"]["message"] == (
        "the reply does not match the schema at /: 'email' is a required property"
    )
    assert by_id[2]["text"] == '{"name": "Al", "age": 3}'  # the raw reply is kept
    assert by_id[4]["error"]["message"].endswith("at /age: 3 is not one of [1]")


def test_a_failed_request_is_kept_in_the_form_it_was_sent(run_cli, scripted):
    server = scripted("no-json-schema")
    failed = run_cli(
        "chat",
        "hi",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        "--max-retries",
        "0",
        "-O",
        "scripted_status=503",
    )
    assert failed.code == 4
    (record,) = lines(run_cli("logs", "list", "--failed", "--json").stdout)
    assert record["body"] == server.bodies()[-1]  # the json_object form, not the first
    assert record["body"]["response_format"]["type"] == "json_object"


def test_a_server_that_ignores_the_schema_fails_validation(run_cli, scripted):
    server = scripted("echo")  # answers "Hello, world" whatever it is asked
    result = run_cli("chat", "hi", "--base-url", server.url, "--schema", PERSON, "--no-log")
    assert result.code == 10
    assert result.stdout == "Hello, world\n"  # what was received is still printed
    assert result.stderr.startswith("streamkit: the reply is not JSON: ")
    assert len(result.stderr.splitlines()) == 1
    batch = run_cli(
        "complete",
        "--jsonl",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        input='{"id": "x", "prompt": "p"}\n',
    )
    assert batch.code == 7
    (record,) = lines(batch.stdout)
    assert record["error"]["type"] == "schema" and record["text"] == "Hello, world"


def test_events_carry_the_value_parsed_so_far(run_cli, scripted):
    server = scripted("echo")
    reply = {"name": "Ada Lovelace", "age": 36}
    result = run_cli(
        "chat",
        "Who?",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        "--events",
        "--no-log",
        "-O",
        "scripted_reply=" + json.dumps(reply),
    )
    assert result.code == 0, result.stderr
    partials = [r["value"] for r in lines(result.stdout) if r["type"] == "json_partial"]
    assert partials[-1] == reply
    assert {"name": "Ada Lo"} in partials  # a string shows as it grows
    assert len(partials) > 3


def test_the_last_form_puts_the_schema_in_a_system_message():
    schema = parse_short_schema(PERSON)
    request = GenerationRequest(
        "chat", None, GenerationOptions(schema=schema), messages=(Message("user", "hi"),)
    )
    _, body = openai_body(request, "json_object+prompt")
    assert body["response_format"] == {"type": "json_object"}
    system, user = body["messages"]
    bounded, _ = server_schema("json_object+prompt", schema, None)
    assert bounded["properties"]["name"]["maxLength"] == DEFAULT_MAX_STRING
    assert "pattern" not in bounded["properties"]["name"]  # the model reads this one
    assert (
        system["role"] == "system"
        and json.dumps(bounded, separators=(",", ":")) in (system["content"])
    )
    assert user == {"role": "user", "content": "hi"}
    assert "response_format" not in openai_body(msgspec_replace(request))[1]


def msgspec_replace(request: GenerationRequest) -> GenerationRequest:
    import msgspec

    return msgspec.structs.replace(request, options=GenerationOptions())


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--schema", '{"type": 5}'],
            "streamkit: --schema: the --schema value is not a valid JSON Schema",
        ),
        (["--schema", "name wat"], "streamkit: --schema: schema: unknown type"),
        (["--schema", "missing.json"], "streamkit: --schema: schema file not found: missing.json"),
        (["--schema-multi"], "streamkit: --schema-multi needs --schema"),
    ],
)
def test_bad_schemas_are_usage_errors(run_cli, scripted, args, message):
    server = scripted("echo")
    result = run_cli("chat", "hi", "--base-url", server.url, *args)
    assert result.code == 2
    assert result.stderr.startswith(message), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert server.bodies() == []


def test_schema_multi_wraps_a_list(run_cli, scripted):
    server = scripted("echo")
    result = run_cli(
        "chat",
        "hi",
        "--base-url",
        server.url,
        "--schema",
        PERSON,
        "--schema-multi",
        "--no-log",
        "-O",
        'scripted_reply={"items": [{"name": "A", "age": 1}]}',
    )
    assert result.code == 0, result.stderr
    schema = server.bodies()[0]["response_format"]["json_schema"]["schema"]
    assert schema["properties"]["items"]["items"] == parse_short_schema(PERSON)


def test_under_a_token_budget_the_server_is_sent_tighter_bounds(run_cli, scripted):
    server = scripted("no-json-schema")
    result = run_cli(
        "chat",
        "Who?",
        "--base-url",
        server.url,
        "--schema",
        NESTED_SHORT,
        "--no-log",
        "-n",
        "48",
        "-O",
        'scripted_reply={"title": "T", "authors": [], "tags": []}',
    )
    assert result.code == 0, result.stderr
    assert (
        "streamkit: the schema sent to the server bounds open strings to 6 characters and "
        "open arrays to 3 items (to fit max_tokens 48); the reply is checked against the "
        "schema as given"
    ) in result.stderr.splitlines()
    sent = server.bodies()[-1]["response_format"]["schema"]
    assert sent["properties"]["title"]["maxLength"] == 6
    assert sent["properties"]["tags"]["maxItems"] == 3
    assert sent["properties"]["tags"]["items"]["maxLength"] == 6
    assert sent["properties"]["authors"]["items"]["properties"]["name"]["maxLength"] == 6
    assert "maxLength" not in sent["properties"]["authors"]["items"]["properties"]["born"]


# -- the pieces ----------------------------------------------------------------------


def test_budget_bounds_share_the_tokens_among_the_strings():
    assert budget_bounds(FLAT, None) == (DEFAULT_MAX_STRING, DEFAULT_MAX_ITEMS)
    assert budget_bounds(FLAT, 48) == (24, 3)  # two open strings
    assert budget_bounds(FLAT, 100_000) == (DEFAULT_MAX_STRING, DEFAULT_MAX_ITEMS)
    # title + 3 authors' names + 3 tags, at 3 items an array
    assert budget_bounds(parse_short_schema(NESTED_SHORT), 48) == (6, 3)
    assert budget_bounds(ENUM, 48) == (48, 3)  # no open string: nothing to share
    assert budget_bounds(FLAT, 1) == (1, 1)


def test_server_schema_bounds_only_what_is_open_and_never_below_a_minimum():
    schema = {
        "type": "object",
        "properties": {
            "code": {"type": "string", "enum": ["a", "b"]},
            "day": {"type": "string", "format": "date"},
            "word": {"type": "string", "maxLength": 5000},
            "long": {"type": "string", "minLength": 50},
            "list": {"type": "array", "items": {"type": "integer"}, "minItems": 10},
        },
    }
    sent, notice = server_schema("json_object+schema", schema, 48)
    props = sent["properties"]
    assert props["code"] == schema["properties"]["code"]
    assert props["day"] == schema["properties"]["day"]
    assert props["word"] == schema["properties"]["word"]  # the user's own bound is kept
    assert props["long"]["maxLength"] == 50 and props["long"]["pattern"].endswith("{50,50}$")
    assert props["list"]["maxItems"] == 10
    assert notice.startswith(
        "the schema sent to the server bounds open strings to 48 "
        "characters and open arrays to 3 items"
    )
    assert server_schema("json_schema", schema, 48) == (schema, None)  # strict servers
    closed = {"type": "object", "properties": {"n": {"type": "integer"}}}
    assert server_schema("json_object+schema", closed, 48) == (closed, None)


def test_check_reply_names_the_failure():
    assert check_reply('{"name": "x", "age": 1}', parse_short_schema(PERSON)) == (
        {"name": "x", "age": 1},
        None,
    )
    _, mismatch = check_reply('{"name": "x", "age": "1"}', parse_short_schema(PERSON))
    assert mismatch == "the reply does not match the schema at /age: '1' is not of type 'integer'"
    _, mismatch = check_reply('{"name": ', parse_short_schema(PERSON))
    assert mismatch.startswith("the reply is not JSON")


def test_arrays_are_bounded_unless_the_schema_bounds_them():
    bounded = bounded_schema(NESTED)
    assert bounded["properties"]["tags"]["maxItems"] == DEFAULT_MAX_ITEMS
    assert bounded["properties"]["authors"]["maxItems"] == DEFAULT_MAX_ITEMS
    own = {"type": "array", "items": {"type": "string"}, "maxItems": 3}
    assert bounded_schema(own) == own
    data = {"const": {"type": "array"}, "enum": [{"type": "array"}]}  # values, not schemas
    assert bounded_schema(data) == data


def test_grammar_strings_exclude_control_characters_and_are_bounded():
    gbnf = json_grammar(parse_short_schema("name"), max_string=77)
    assert '[^"\\\\\\x7F\\x00-\\x1F]' in gbnf
    assert "char{0,77}" in gbnf and "char*" not in gbnf


# -- the local model ---------------------------------------------------------------


def _local_batch(run_cli, schema: dict, prompts: list[str], *extra: str) -> list[dict]:
    records = "".join(json.dumps({"id": i, "prompt": p}) + "\n" for i, p in enumerate(prompts))
    result = run_cli(
        "chat",
        "--jsonl",
        "--schema",
        json.dumps(schema),
        "--seed",
        "7",
        "--no-log",
        *extra,
        input=records,
        timeout=600,
    )
    assert result.code == 0, (result.stderr, result.stdout[:2000])
    return lines(result.stdout)


@pytest.mark.parametrize("schema", [FLAT, NESTED, ENUM], ids=["flat", "nested", "enum"])
def test_local_output_always_validates(run_cli, schema):
    prompts = [f"Extract the facts as JSON: {s}." for s in SUBJECTS]
    results = _local_batch(run_cli, schema, prompts, "-n", "80")
    assert len(results) == 20
    for record in results:
        jsonschema.validate(record["json"], schema)  # also checked by streamkit itself


@pytest.mark.parametrize("schema", [FLAT, NESTED, ENUM], ids=["flat", "nested", "enum"])
def test_local_output_validates_at_a_tiny_token_budget(run_cli, schema):
    prompts = [f"Describe as JSON: {s}." for s in SUBJECTS[:8]]
    for budget in ("1", "12"):
        for record in _local_batch(run_cli, schema, prompts, "-n", budget):
            jsonschema.validate(record["json"], schema)
            assert record["finish_reason"] in ("length", "stop")
            assert record.get("truncated") is (
                True if record["finish_reason"] == "length" else None
            )


def test_a_schema_the_grammar_converter_cannot_take_is_one_line(run_cli):
    schema = {"type": "object", "properties": {"a": {"$ref": "#/$defs/missing"}}}
    result = run_cli("chat", "hi", "--schema", json.dumps(schema), "--no-log", "-n", "4")
    assert result.code == 8
    assert result.stderr.startswith("streamkit: cannot turn the schema into a grammar: ")
    assert len(result.stderr.splitlines()) == 1


def test_local_closing_keeps_what_was_generated(run_cli):
    full = run_cli(
        "chat",
        "Extract as JSON: Alice Smith, 31, lives in Paris.",
        "--schema",
        json.dumps(FLAT),
        "--seed",
        "7",
        "--no-log",
        "-n",
        "80",
    )
    assert full.code == 0, full.stderr
    for budget in (18, 24):
        cut = run_cli(
            "chat",
            "Extract as JSON: Alice Smith, 31, lives in Paris.",
            "--schema",
            json.dumps(FLAT),
            "--seed",
            "7",
            "--no-log",
            "-n",
            str(budget),
            "--events",
        )
        assert cut.code == 0, cut.stderr
        events = lines(cut.stdout)
        text = "".join(e["text"] for e in events if e["type"] == "delta")
        jsonschema.validate(json.loads(text), FLAT)
        usage = next(e for e in events if e["type"] == "usage")
        assert usage["completion_tokens"] <= budget
        # Everything before the last delta was generated, as in the longer run; the
        # closing text (if any) is in the last one.
        deltas = [e["text"] for e in events if e["type"] == "delta"]
        assert full.stdout.startswith("".join(deltas[:-1]))
        if any(e["type"] == "finish" and e["reason"] == "length" for e in events):
            assert "truncated" in cut.stderr


@pytest.mark.server
def test_real_server_takes_the_schema_in_its_own_form(run_cli, llama_server):
    records = "".join(
        json.dumps({"id": i, "prompt": f"Extract as JSON: {s}"}) + "\n"
        for i, s in enumerate(SUBJECTS[:6])
    )
    result = run_cli(
        "chat",
        "--jsonl",
        "-j",
        "2",
        "--base-url",
        llama_server,
        "--schema",
        json.dumps(FLAT),
        "-n",
        "96",
        "--debug",
        "--no-log",
        input=records,
        timeout=300,
    )
    assert result.code == 0, result.stderr
    (notice,) = notices(result.stderr)
    assert notice == (
        "streamkit: the server takes a schema as json_object+schema (refused: json_schema: "
        "HTTP 500 Internal Server Error from POST /v1/chat/completions: the server rejected "
        "the request's `response_format.type`: Input should be 'text' or 'json_object'); "
        "used for the rest of the run"
    )
    statuses = [
        line.split(" -> ")[1].split(";")[0]
        for line in result.stderr.splitlines()
        if line.startswith("streamkit: debug: ")
    ]
    assert statuses == ["500 Internal Server Error"] + ["200 OK"] * 6  # probed once
    for record in lines(result.stdout):
        jsonschema.validate(record["json"], FLAT)


@pytest.mark.server
def test_real_server_closes_a_rambling_document_within_the_budget(run_cli, llama_server):
    """Asked for a long poem in two strings with 64 tokens, SmolLM2 under the server's
    grammar runs out of tokens inside a string (or writes a raw newline in one) unless
    the schema it is sent bounds them."""
    schema = {
        "type": "object",
        "properties": {"title": {"type": "string"}, "poem": {"type": "string"}},
        "required": ["title", "poem"],
    }
    for seed in ("1", "3", "4"):
        result = run_cli(
            "chat",
            "Write a very long poem about the sea.",
            "--base-url",
            llama_server,
            "--schema",
            json.dumps(schema),
            "-n",
            "64",
            "--seed",
            seed,
            "--no-log",
        )
        assert result.code == 0, (seed, result.stdout, result.stderr)
        jsonschema.validate(json.loads(result.stdout), schema)
        assert (
            "streamkit: the schema sent to the server bounds open strings to 32 "
            "characters (to fit max_tokens 64); the reply is checked against the schema "
            "as given"
        ) in result.stderr.splitlines()
