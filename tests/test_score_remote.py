"""Scoring on a server: echoed prompt log-probabilities, checked before they are trusted."""

from __future__ import annotations

import json
import math

import httpx
import pytest
from llama_server_fixture import native_llama_server  # noqa: F401

from streamkit.errors import ProtocolError
from streamkit.protocol.echo import (
    CannotScore,
    check_position,
    first_continuation_token,
    generated_top,
    parse_echo,
)
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.score import LocalScorer

CONTEXT = "The capital of France is"


def echo_payload(tokens, logprobs, tops, generated=None):
    offsets, position = [], 0
    for token in tokens:
        offsets.append(position)
        position += len(token)
    if generated:
        tokens, logprobs, tops = [*tokens, generated], [*logprobs, -1.0], [*tops, {}]
        offsets = [*offsets, position]
    return {
        "choices": [
            {
                "logprobs": {
                    "tokens": tokens,
                    "text_offset": offsets,
                    "token_logprobs": logprobs,
                    "top_logprobs": tops,
                }
            }
        ]
    }


def test_echo_parsing_drops_the_generated_token_and_splits_at_the_context():
    payload = echo_payload(
        ["The", " cap", "ital", " is"],
        [None, -1.0, -2.0, -3.0],
        [None, {" cap": -1.0}, {"ital": -2.0}, {" is": -3.0}],
        generated=" Paris",
    )
    echo = parse_echo(payload, "The capital is")
    assert echo.tokens == ["The", " cap", "ital", " is"]
    assert first_continuation_token(echo, len("The capital is")) == 4  # nothing after
    assert first_continuation_token(echo, len("The cap")) == 2
    assert first_continuation_token(echo, len("The ca")) == 1  # " cap" straddles: scored
    assert first_continuation_token(echo, 0) == 0


def test_an_answer_without_the_echoed_prompt_cannot_score():
    only_generated = {
        "choices": [
            {
                "logprobs": {
                    "tokens": [" x"],
                    "text_offset": [5],
                    "token_logprobs": [-1.0],
                    "top_logprobs": [{" x": -1.0}],
                }
            }
        ]
    }
    with pytest.raises(CannotScore, match="echo"):
        parse_echo(only_generated, "hello")
    # llama-server's answer: the generated token's log-probabilities only, in the form
    # of a chat completion's, whatever ``echo`` says
    generated_only = {
        "choices": [
            {
                "text": ".",
                "logprobs": {
                    "content": [{"id": 30, "token": ".", "logprob": -0.4, "top_logprobs": []}]
                },
            }
        ]
    }
    with pytest.raises(CannotScore, match="does not echo"):
        parse_echo(generated_only, "hello")
    with pytest.raises(CannotScore, match="no log-probabilities"):
        parse_echo({"choices": [{"text": "x", "logprobs": None}]}, "hello")
    with pytest.raises(ProtocolError, match="unequal"):
        parse_echo(
            {
                "choices": [
                    {
                        "logprobs": {
                            "tokens": ["a"],
                            "text_offset": [0, 1],
                            "token_logprobs": [None],
                            "top_logprobs": [None],
                        }
                    }
                ]
            },
            "ab",
        )
    with pytest.raises(CannotScore, match="top_logprobs"):
        generated_top({"choices": [{"logprobs": {"top_logprobs": [None]}}]})


def test_the_check_compares_one_position_with_the_next_token_answer():
    echo = parse_echo(
        echo_payload(
            ["A", " b", " c"],
            [None, -0.5, -2.0],
            [None, {" b": -0.5, " x": -1.5}, {" c": -2.0, " y": -0.1}],
        ),
        "A b c",
    )
    assert check_position(echo, 2, {" y": -0.1, " c": -2.0}) is None
    assert check_position(echo, 2, {" y": -0.12, " c": -2.03}) is None  # rounding
    shifted = check_position(echo, 1, {" y": -0.1, " c": -2.0})
    assert "' y'" in shifted and "missing" in shifted
    wrong_value = check_position(echo, 2, {" y": -0.1, " c": -0.3})
    assert "' c' at token 2 is -2.0000" in wrong_value and "-0.3000" in wrong_value


def test_a_consistent_server_is_trusted(run_cli, fault_url, tmp_path):
    url = fault_url("echo-scores")
    one = run_cli(
        "score", " the cat", "--context", "Look at", "--top", "1", "--json", "--base-url", url
    )
    assert one.code == 0, one.stderr
    result = json.loads(one.stdout)
    # Words are the scripted server's tokens: " the" at position 2, " cat" at 3.
    assert result["tokens"] == [" the", " cat"]
    assert result["token_logprobs"] == [-0.52, -3.03]
    assert math.isclose(result["logprob"], -3.55)
    assert result["trusted"] is True
    assert result["is_greedy"] is False
    assert result["top_logprobs"] == [{" the": -0.52}, {" the": -0.53}]
    source = tmp_path / "in.jsonl"
    output = tmp_path / "out.jsonl"
    records = [
        {"id": i, "context": "Look at", "continuation": f" the thing {i}"} for i in range(10)
    ]
    source.write_text("".join(json.dumps(r) + "\n" for r in records[:6]))
    first = run_cli(
        "score", "--jsonl", "-i", str(source), "-o", str(output), "-j", "3", "--base-url", url
    )
    assert first.code == 0, first.stderr
    source.write_text("".join(json.dumps(r) + "\n" for r in records))
    resumed = run_cli(
        "score", "--jsonl", "-i", str(source), "-o", str(output), "--resume", "--base-url", url
    )
    assert resumed.code == 0, resumed.stderr
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [r["id"] for r in lines] == list(range(10))  # in order, none scored twice
    assert all(r["trusted"] and r["n_tokens"] == 3 for r in lines)


def test_a_server_that_does_not_echo_cannot_score(run_cli, fault_url, tmp_path):
    result = run_cli(
        "score", " the cat", "--context", "Look at", "--base-url", fault_url("no-echo")
    )
    assert result.code == 6
    assert result.stderr.count("\n") == 1
    assert "cannot score" in result.stderr and "echo" in result.stderr
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "a b c"}\n{"id": 2, "text": "d e"}\n')
    batch = run_cli("score", "--jsonl", "-i", str(source), "--base-url", fault_url("no-echo"))
    assert batch.code == 6 and "cannot score" in batch.stderr
    assert batch.stdout == ""  # one clear error, not an error record per line


@pytest.mark.server
def test_llama_cpp_server_echo_is_off_by_one_and_flagged(llama_server, run_cli):
    """llama_cpp.server's echoed values belong to the next position: flagged, not trusted."""
    continuation = " Paris, a large city."
    local = LocalScorer(embedded_model_path(), n_ctx=256).score(0, CONTEXT, continuation)
    answer = httpx.post(
        f"{llama_server}/completions",
        timeout=60,
        json={
            "prompt": CONTEXT + continuation,
            "echo": True,
            "logprobs": 5,
            "max_tokens": 1,
            "temperature": 0,
        },
    ).json()
    echo = parse_echo(answer, CONTEXT + continuation)
    first = first_continuation_token(echo, len(CONTEXT))
    echoed = echo.logprobs[first:]
    assert echo.tokens[first:] == local.tokens
    # Not the model's numbers at their own position...
    assert not any(
        math.isclose(e, t, abs_tol=0.05) for e, t in zip(echoed, local.token_logprobs, strict=True)
    )
    # ...but the previous position's alternatives hold them, where listed.
    shifted = [(echo.top[i - 1] or {}).get(echo.tokens[i]) for i in range(first, len(echo.tokens))]
    listed = [(s, t) for s, t in zip(shifted, local.token_logprobs, strict=True) if s is not None]
    assert listed and all(math.isclose(s, t, abs_tol=0.01) for s, t in listed)

    result = run_cli(
        "score", continuation, "--context", CONTEXT, "--json", "--base-url", llama_server
    )
    assert result.code == 6
    scored = json.loads(result.stdout)
    assert scored["trusted"] is False
    assert scored["token_logprobs"] == pytest.approx(echoed)  # written, but marked
    assert "scores not trusted" in result.stderr
    assert result.stderr.count("\n") == 1


@pytest.mark.server
def test_llama_server_ignores_echo_and_says_what_can_score(
    native_llama_server,  # noqa: F811
    run_cli,
    tmp_path,
):
    result = run_cli("score", " Paris.", "--context", CONTEXT, "--base-url", native_llama_server)
    assert (result.code, result.stdout) == (6, "")
    assert result.stderr == (
        "streamkit: this server cannot score prompts: it does not echo their "
        "log-probabilities; the local model can (no base URL), or a server that "
        "echoes them, such as `python -m llama_cpp.server`\n"
    )
    source = tmp_path / "in.jsonl"
    source.write_text('{"id": 1, "text": "a b c"}\n{"id": 2, "text": "d e"}\n')
    batch = run_cli("score", "--jsonl", "-i", str(source), "--base-url", native_llama_server)
    assert (batch.code, batch.stdout, batch.stderr) == (6, "", result.stderr)
