"""Scoring speed: prefix reuse, and streamkit's scorer against a raw llama-cpp-python loop.

(1) 200 continuations (5-20 tokens) of one ~400-token context on SmolLM2,
scored with prefix reuse (the scorer keeps the context's KV cache) and by
re-evaluating every text from scratch, in the same run; the results must be
identical. Goal: reuse >= 5x faster.

(2) Tokens scored per second: ``LocalScorer.score`` on whole texts (no reuse)
against a raw loop on its own ``Llama(logits_all=True)``: ``reset``, ``eval``,
numpy log-softmax of every row. Goal: within 10 % of raw.

    python bench/score_prefix.py [--quick]
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import time

import numpy as np
from llama_cpp import Llama

from streamkit.providers.llama.files import LLAMA_THREADS, embedded_model_path
from streamkit.providers.llama.score import LocalScorer

WORDS = [
    "river",
    "stone",
    "light",
    "garden",
    "window",
    "paper",
    "music",
    "summer",
    "village",
    "bridge",
    "morning",
    "market",
    "letter",
    "forest",
    "silver",
    "engine",
    "harbor",
    "winter",
    "story",
    "mountain",
]


def make_texts(count: int, seed: int) -> tuple[str, list[str]]:
    rng = random.Random(seed)
    context = " ".join(rng.choice(WORDS) for _ in range(380)) + "."
    continuations = [
        " " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(4, 16))) for _ in range(count)
    ]
    return context, continuations


def forget(scorer: LocalScorer) -> None:
    """Drop the cached prefix: the next score evaluates everything."""
    scorer._evaluated = []
    scorer.llm.n_tokens = 0
    scorer.llm._ctx.kv_cache_seq_rm(-1, 0, -1)


def run_scores(
    scorer: LocalScorer, context: str, continuations: list[str], reuse: bool
) -> tuple[float, list[list[float]]]:
    forget(scorer)
    started = time.perf_counter()
    out = []
    for i, continuation in enumerate(continuations):
        if not reuse:
            forget(scorer)
        out.append(scorer.score(i, context, continuation).token_logprobs)
    return time.perf_counter() - started, out


def raw_tokens_per_second(llm: Llama, texts: list[str]) -> tuple[float, int]:
    started = time.perf_counter()
    tokens_scored = 0
    for text in texts:
        tokens = llm.tokenize(text.encode(), add_bos=True)
        llm.reset()
        llm.eval(tokens[:-1])
        rows = llm.scores[: len(tokens) - 1].astype(np.float64)
        peaks = rows.max(axis=1, keepdims=True)
        totals = peaks[:, 0] + np.log(np.exp(rows - peaks).sum(axis=1))
        _ = rows[np.arange(len(tokens) - 1), tokens[1:]] - totals
        tokens_scored += len(tokens) - 1
    return time.perf_counter() - started, tokens_scored


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    count = 40 if args.quick else 200
    rounds = 1  # re-evaluating 200 texts of ~400 tokens takes minutes on 2 cores
    path = embedded_model_path()
    print(f"SmolLM2 {path.name}; {os.cpu_count()} CPU(s); 1-min load {os.getloadavg()[0]:.2f}")
    scorer = LocalScorer(path)
    context, continuations = make_texts(count, seed=1)
    context_tokens = len(scorer.llm.tokenize(context.encode(), add_bos=True))
    print(
        f"(1) {count} continuations of one {context_tokens}-token context, "
        f"{rounds} alternating rounds"
    )
    with_reuse, without = [], []
    reference = None
    for _ in range(rounds):
        seconds, results = run_scores(scorer, context, continuations, reuse=True)
        with_reuse.append(seconds)
        reference = reference or results
        assert results == reference, "reuse changed the numbers"
        seconds, results = run_scores(scorer, context, continuations, reuse=False)
        without.append(seconds)
        assert results == reference, "re-evaluation differs from reuse"
    reuse_s, full_s = statistics.median(with_reuse), statistics.median(without)
    print(f"  prefix reuse      {reuse_s:8.2f} s   {count / reuse_s:8.1f} texts/s")
    print(f"  re-evaluate all   {full_s:8.2f} s   {count / full_s:8.1f} texts/s")
    print(
        f"  speed-up {full_s / reuse_s:.1f}x, results identical (goal >= 5x: "
        f"{'meets' if full_s / reuse_s >= 5 else 'BELOW'})"
    )

    texts = [context[: 200 + 40 * i] for i in range(12 if not args.quick else 4)]
    raw_llm = Llama(
        str(path),
        n_ctx=2048,
        logits_all=True,
        n_threads=LLAMA_THREADS,
        n_threads_batch=LLAMA_THREADS,
        verbose=False,
    )
    rounds = 3
    print(f"(2) {len(texts)} texts scored whole, {rounds} alternating rounds")
    ours, raw = [], []
    for _ in range(rounds):
        started = time.perf_counter()
        scored = 0
        for text in texts:
            forget(scorer)
            scored += scorer.score(0, "", text).n_tokens
        ours.append(scored / (time.perf_counter() - started))
        seconds, raw_scored = raw_tokens_per_second(raw_llm, texts)
        raw.append(raw_scored / seconds)
    ours_rate, raw_rate = statistics.median(ours), statistics.median(raw)
    print(f"  streamkit LocalScorer  {ours_rate:10.0f} tokens/s")
    print(f"  raw llama-cpp loop     {raw_rate:10.0f} tokens/s")
    ratio = ours_rate / raw_rate
    print(f"  ratio {ratio:.3f} (goal >= 0.90: {'meets' if ratio >= 0.9 else 'BELOW'})")
    print(f"1-min load after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
