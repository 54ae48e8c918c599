"""Token-level requests: prompt ids, token ids out, parameters beyond the OpenAI set."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from streamkit.errors import UsageError
from streamkit.events import TextDelta
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.parameters import parse_option_pairs
from streamkit.protocol.records import GenerationFields, RecordProblem, build_request
from streamkit.protocol.validation import validation_summary
from streamkit.protocol.wire import openai_body
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.sampling import local_request
from streamkit.request import GenerationOptions, GenerationRequest
from streamkit.store.records import FailedRequest
from streamkit.store.replay import replay_body, replay_target

# What llama-cpp-python's server says (HTTP 500) to a prompt given as token ids.
PYDANTIC_DUMP = (
    "3 validation errors: {'type': 'string_type', 'loc': ('body', 'prompt', 'str'), "
    "'msg': 'Input should be a valid string', 'input': [504, 3575]} {'type': "
    "'string_type', 'loc': ('body', 'prompt', 'list[str]', 0), 'msg': 'Input should be "
    "a valid string', 'input': 504} File \"app.py\", line 264, in create_completion"
)


def event_lines(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


# -- request bodies -----------------------------------------------------------


def test_prompt_ids_and_extra_parameters_reach_the_body_typed(run_cli, scripted):
    server = scripted()
    result = run_cli(
        "complete",
        "--prompt-ids",
        "504,3575, 282",
        "--base-url",
        server.url,
        "--top-k",
        "20",
        "--min-p",
        "0.05",
        "--repetition-penalty",
        "1.1",
        "--stop-token-ids",
        "2,3",
        "--priority",
        "-5",
        "--extra",
        '{"chat_template_kwargs": {"a": 1}, "ignore_eos": false, "n_probs": 1}',
        "-O",
        "ignore_eos=true",
        "-O",
        "name=abc",
        "-O",
        'quoted="7"',
        "-O",
        "number=7",
        "-O",
        'logit_bias={"50256": -100}',
        "-O",
        "ratio=0.25",
        "-O",
        "nothing=null",
        "-O",
        "equation=a=b",
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    (body,) = server.bodies()
    assert body["prompt"] == [504, 3575, 282]
    assert (body["top_k"], body["min_p"], body["repetition_penalty"]) == (20, 0.05, 1.1)
    assert body["stop_token_ids"] == [2, 3]
    assert body["priority"] == -5
    assert body["chat_template_kwargs"] == {"a": 1}
    assert body["n_probs"] == 1
    assert body["ignore_eos"] is True  # -O wins over --extra
    assert body["name"] == "abc" and body["quoted"] == "7" and body["number"] == 7
    assert body["logit_bias"] == {"50256": -100}
    assert body["ratio"] == 0.25 and body["nothing"] is None
    assert body["equation"] == "a=b"
    assert "return_token_ids" not in body


def test_extra_parameters_reach_chat_bodies_too(run_cli, scripted):
    server = scripted()
    result = run_cli(
        "chat",
        "hi",
        "--base-url",
        server.url,
        "--top-k",
        "3",
        "-O",
        'chat_template_kwargs={"enable_thinking": false}',
    )
    assert result.code == 0, result.stderr
    (body,) = server.bodies()
    assert body["messages"] == [{"role": "user", "content": "hi"}]
    assert body["top_k"] == 3
    assert body["chat_template_kwargs"] == {"enable_thinking": False}


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["-O", "novalue"], "-O expects KEY=VALUE"),
        (["--extra", "[1]"], "--extra must be a JSON object"),
        (["--extra", "{oops"], "--extra is not valid JSON"),
        (["--stop-token-ids", "1,x"], "--stop-token-ids takes token ids"),
    ],
)
def test_bad_extra_parameters_are_usage_errors(run_cli, scripted, args, fragment):
    server = scripted()
    result = run_cli("complete", "x", "--base-url", server.url, *args)
    assert result.code == 2
    assert result.stderr.startswith(f"streamkit: {fragment}"), result.stderr
    assert len(result.stderr.splitlines()) == 1
    assert server.bodies() == []


def test_prompt_ids_with_a_prompt_argument_is_a_usage_error(run_cli, scripted):
    result = run_cli("complete", "text", "--prompt-ids", "1,2", "--base-url", scripted().url)
    assert result.code == 2
    assert "--prompt-ids is the prompt" in result.stderr


def test_jsonl_prompt_ids_and_token_ids_in_results(run_cli, scripted):
    server = scripted()
    lines = [
        {"id": "ids", "prompt_ids": [1, 2, 3]},
        {"id": "both", "prompt": "x", "prompt_ids": [1]},
        {"id": "text", "prompt": "plain"},
    ]
    result = run_cli(
        "complete",
        "--jsonl",
        "--return-token-ids",
        "--base-url",
        server.url,
        input="".join(json.dumps(line) + "\n" for line in lines),
    )
    assert result.code == 7  # the "both" line
    by_id = {r["id"]: r for r in event_lines(result.stdout)}
    assert by_id["ids"]["token_ids"] == [9906, 11, 1917]
    assert by_id["ids"]["text"] == "Hello, world"
    assert by_id["both"]["error"]["message"] == "line 2: give `prompt_ids` or `prompt`, not both"
    prompts = sorted(json.dumps(b["prompt"]) for b in server.bodies())
    assert prompts == ['"plain"', "[1, 2, 3]"]
    assert all(b["return_token_ids"] is True for b in server.bodies())


def test_chat_records_refuse_prompt_ids():
    fields = GenerationFields(prompt_ids=[1, 2])
    assert build_request("chat", fields, model=None, defaults=GenerationOptions()) == (
        RecordProblem("`prompt_ids` needs a completion request, not a chat")
    )
    request = build_request("completion", fields, model=None, defaults=GenerationOptions())
    assert openai_body(request)[1]["prompt"] == [1, 2]


# -- token ids out ------------------------------------------------------------


def test_events_carry_token_ids_from_the_server(run_cli, scripted):
    server = scripted()
    result = run_cli("complete", "x", "--return-token-ids", "--events", "--base-url", server.url)
    assert result.code == 0, result.stderr
    deltas = [r for r in event_lines(result.stdout) if r["type"] == "delta"]
    assert [(d["text"], d["token_ids"]) for d in deltas] == [
        ("Hello", [9906]),
        (",", [11]),
        (" world", [1917]),
    ]
    assert server.bodies()[0]["return_token_ids"] is True


def test_chunk_parser_keeps_ids_of_a_token_without_text():
    decoder = OpenAIStreamDecoder()
    chunks = [
        {"choices": [{"index": 0, "text": "", "token_ids": [226], "finish_reason": None}]},
        {"choices": [{"index": 0, "text": "é", "token_ids": [157], "finish_reason": "stop"}]},
    ]
    data = b"".join(b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks)
    events = decoder.feed(data + b"data: [DONE]\n\n")
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert [(d.text, d.token_ids) for d in deltas] == [("", (226,)), ("é", (157,))]


def test_local_token_ids_detokenize_to_the_printed_text(run_cli):
    result = run_cli(
        "complete",
        "--prompt-ids",
        "504,3575,282",
        "--return-token-ids",
        "--events",
        "-n",
        "24",
        "--seed",
        "3",
        "--no-log",
    )
    assert result.code == 0, result.stderr
    records = event_lines(result.stdout)
    deltas = [r for r in records if r["type"] == "delta"]
    ids = [i for d in deltas for i in d["token_ids"]]
    assert all(d["token_ids"] for d in deltas)
    usage = next(r for r in records if r["type"] == "usage")
    assert usage["prompt_tokens"] == 3  # the ids, as given: nothing added
    assert usage["completion_tokens"] == len(ids)
    from llama_cpp import Llama

    vocab = Llama(str(embedded_model_path()), vocab_only=True, verbose=False)
    assert vocab.detokenize(ids).decode() == "".join(d["text"] for d in deltas)


def test_local_model_maps_llama_parameters_and_rejects_the_rest(run_cli):
    ok = run_cli(
        "complete",
        "The capital of France is",
        "-n",
        "6",
        "--seed",
        "1",
        "--top-k",
        "1",
        "--repetition-penalty",
        "1.0",
        "-O",
        "min_p=0.1",
        "-O",
        'logit_bias={"7042": -100}',
        "--no-log",
    )
    assert ok.code == 0, ok.stderr
    greedy = run_cli(
        "complete", "The capital of France is", "-n", "6", "--seed", "2", "--top-k", "1", "--no-log"
    )
    assert greedy.stdout.startswith(" Paris")  # token 7042 is " Paris"
    assert not ok.stdout.startswith(" Paris")  # ... and the bias removed it
    refused = run_cli(
        "complete", "x", "--priority", "1", "-O", "ignore_eos=true", "-O", "top_k=5", "--no-log"
    )
    assert refused.code == 2
    assert refused.stderr.startswith(
        "streamkit: the local model does not support priority, ignore_eos (llama.cpp has:"
    )
    assert len(refused.stderr.splitlines()) == 1


def test_local_request_folds_option_names_and_checks_ids():
    options = GenerationOptions(
        extra={"temperature": 0.1, "stop": "x", "top_k": "7", "repetition_penalty": 1.2}
    )
    request, sampling = local_request(GenerationRequest("completion", None, options), 100)
    assert (request.options.temperature, request.options.stop) == (0.1, ("x",))
    assert request.options.extra == {}
    assert sampling == {"top_k": 7, "repeat_penalty": 1.2}
    bad = GenerationRequest("completion", None, GenerationOptions(stop_token_ids=(100,)))
    with pytest.raises(UsageError, match="100 outside the model's vocabulary"):
        local_request(bad, 100)
    wrong_type = GenerationOptions(extra={"top_k": "many"})
    with pytest.raises(UsageError, match="bad parameter for the local model"):
        local_request(GenerationRequest("completion", None, wrong_type), 100)


# -- errors -------------------------------------------------------------------


def test_validation_dump_becomes_one_line():
    assert validation_summary(PYDANTIC_DUMP) == (
        "the server rejected the request's `prompt`: Input should be a valid string "
        "(this server does not take the prompt as token ids)"
    )
    assert validation_summary(
        "1 validation error: {'type': 'literal_error', 'loc': "
        "('body', 'response_format', 'type'), 'msg': \"Input should be "
        "'text' or 'json_object'\", 'input': 'json_schema'}"
    ) == (
        "the server rejected the request's `response_format.type`: Input should be 'text' or "
        "'json_object'"
    )
    assert validation_summary("model crashed") is None


@pytest.mark.server
def test_real_server_refusing_prompt_ids_is_one_clear_line(run_cli, llama_server):
    result = run_cli(
        "complete",
        "--prompt-ids",
        "504,3575,282",
        "--base-url",
        llama_server,
        "-n",
        "4",
        "--no-log",
    )
    assert result.code == 4
    assert result.stderr == (
        "streamkit: HTTP 500 Internal Server Error from POST /v1/completions: the server "
        "rejected the request's `prompt`: Input should be a valid string (this server does "
        "not take the prompt as token ids)\n"
    )  # one line, and no retries: the same body would fail again


def test_option_values_are_json_where_they_parse():
    assert parse_option_pairs(["a=1", "b=1.5", "c=true", "d=x y", "e=[1]", "f="]) == {
        "a": 1,
        "b": 1.5,
        "c": True,
        "d": "x y",
        "e": [1],
        "f": "",
    }
    assert msgspec.json.encode(parse_option_pairs(['g={"1": 2}'])) == b'{"g":{"1":2}}'


# -- --debug, the failed-request log, replay -------------------------------------

KEY = "sk-tokentest-5ecret-4f1c"


def assert_no_key(*texts: str) -> None:
    for text in texts:
        assert KEY not in text
        assert "Bearer" not in text and "authorization" not in text.lower()


def debug_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("streamkit: debug: ")]


def test_debug_prints_one_line_per_request_and_never_the_key(run_cli, scripted):
    server = scripted("fail-once")
    result = run_cli(
        "complete",
        "hi",
        "--base-url",
        server.url,
        "--api-key",
        KEY,
        "--max-retries",
        "1",
        "--debug",
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    first, second = debug_lines(result.stderr)
    assert first.startswith(
        f"streamkit: debug: POST {server.url}/completions -> 500 Internal Server Error; headers "
    )
    assert second.startswith(f"streamkit: debug: POST {server.url}/completions -> 200 OK; headers ")
    for line, number in ((first, 1), (second, 2)):
        assert ", first byte " in line and ", end " in line
        assert f"x-request-id=req-{server.key[:8]}-{number}" in line
        assert "x-ratelimit-remaining-requests=99" in line
        assert "x-ratelimit-limit-tokens=5000" in line
        assert "openai-processing-ms=7" in line
        assert "cookie" not in line
    assert_no_key(result.stdout, result.stderr)
    quiet = run_cli("complete", "hi", "--base-url", scripted().url, "--no-log")
    assert debug_lines(quiet.stderr) == []
    from_env = run_cli(
        "complete", "hi", "--base-url", scripted().url, "--no-log", env={"STREAMKIT_DEBUG": "1"}
    )
    assert len(debug_lines(from_env.stderr)) == 1


def test_debug_line_of_a_server_echoing_the_key(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("401"), "--api-key", KEY, "--debug")
    assert result.code == 4
    (line,) = debug_lines(result.stderr)
    assert "-> 401 Unauthorized" in line
    assert_no_key(result.stdout, result.stderr)


def test_failed_request_is_kept_listed_and_replayed_byte_for_byte(
    run_cli, scripted, cli_env, tmp_path
):
    server = scripted("fail-once")
    failed = run_cli(
        "complete",
        "--prompt-ids",
        "1,2,3",
        "--base-url",
        server.url,
        "--api-key",
        KEY,
        "--max-retries",
        "0",
        "--top-k",
        "5",
        "-O",
        "ignore_eos=true",
        "-O",
        "note=ünïcode",
    )
    assert failed.code == 4
    listed = run_cli("logs", "list", "--failed", "--json")
    (record,) = event_lines(listed.stdout)
    assert record["http_status"] == 500
    assert record["response_headers"]["x-request-id"] == f"req-{server.key[:8]}-1"
    assert record["endpoint"] == "completions"
    assert record["body"] == server.bodies()[0]
    assert "the scripted server failed" in record["error"]
    text = run_cli("logs", "list", "--failed").stdout
    assert text.split()[0] == str(record["id"]) and "HTTP 500" in text

    again = run_cli("replay", str(record["id"]), "--api-key", KEY)
    assert again.code == 0, again.stderr
    assert again.stdout == "Hello, world\n"
    other = scripted()
    moved = run_cli("replay", str(record["id"]), "--base-url", other.url, "--events")
    assert moved.code == 0, moved.stderr
    assert [r["type"] for r in event_lines(moved.stdout)] == ["delta"] * 3 + ["finish"]
    renamed = run_cli("replay", str(record["id"]), "-m", "other-model")
    assert renamed.code == 0

    original, replayed, renamed_body = server.raw_bodies()
    assert replayed == original  # byte for byte
    assert other.raw_bodies() == [original]
    assert json.loads(renamed_body) == {**json.loads(original), "model": "other-model"}
    assert_no_key(
        failed.stderr, listed.stdout, text, again.stdout, again.stderr, moved.stdout, moved.stderr
    )
    database = Path(cli_env["STREAMKIT_DB"])
    for path in database.parent.glob(database.name + "*"):
        assert KEY.encode() not in path.read_bytes()


def test_replay_of_an_unknown_request_is_a_usage_error(run_cli):
    result = run_cli("replay", "999")
    assert result.code == 2
    assert result.stderr == (
        "streamkit: no failed request 999 in the log (see `streamkit logs list --failed`)\n"
    )


def test_request_id_and_rate_limits_in_stats_and_logs_show(run_cli, scripted):
    server = scripted()
    result = run_cli("complete", "hi", "--base-url", server.url, "--stats")
    assert result.code == 0, result.stderr
    request_id = f"x-request-id=req-{server.key[:8]}-1"
    (stats,) = result.stderr.splitlines()
    assert stats.startswith("streamkit: ttft ")
    assert f"; {request_id} " in stats and "x-ratelimit-remaining-requests=99" in stats
    conversation = run_cli("logs", "list", "--json").stdout.splitlines()[0]
    cid = json.loads(conversation)["id"]
    shown = run_cli("logs", "show", cid).stdout
    assert f": HTTP 200; {request_id} " in shown
    replies = [
        r
        for r in event_lines(run_cli("logs", "show", cid, "--json").stdout)
        if r["role"] == "assistant"
    ]
    assert replies[0]["http_status"] == 200
    assert replies[0]["response_headers"]["x-ratelimit-limit-tokens"] == "5000"
    assert run_cli("logs", "list", "--failed").stdout == ""


def test_replay_target_and_body():
    stored = FailedRequest(
        7, "c", 0.0, "local", None, "completions", b'{"prompt":"x"}', None, None, "boom", None, None
    )
    with pytest.raises(UsageError, match="went to the local model; give --base-url"):
        replay_target(stored, None, None)
    assert replay_target(stored, None, "http://configured/v1") == "http://configured/v1"
    remote = msgspec.structs.replace(stored, provider="http://original/v1")
    assert replay_target(remote, None, "http://configured/v1") == "http://original/v1"
    assert replay_target(remote, "http://flag/v1", None) == "http://flag/v1"
    assert replay_body(stored, None) is stored.body
    assert replay_body(stored, "m") == b'{"prompt":"x","model":"m"}'
