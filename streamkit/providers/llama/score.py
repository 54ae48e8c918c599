"""Scoring text: exact log-probabilities of a continuation under a local model.

Tokenization, as evaluation harnesses do it
    ``context + continuation`` is tokenized as one string and split where its
    tokens stop matching the context's own tokenization. A token that
    straddles the boundary (made of the context's last characters and the
    continuation's first) belongs to the continuation: it is scored, which
    makes the score slightly pessimistic rather than silently dropping text.
    A BOS token is added when the model's metadata asks for one. The very
    first token of a text has nothing before it to predict it from, so with
    an empty context and no BOS token it is not scored (``n_tokens`` says how
    many were).

Exactness
    The model is loaded with ``logits_all`` so one evaluation yields the
    logits of every position; each row gets a float64 log-softmax, and
    ``is_greedy`` is whether every continuation token was the argmax.

Prefix reuse
    The tokens evaluated last are remembered. A new input keeps the KV cache
    (and the logit rows) of the longest common prefix and evaluates only the
    rest, so many continuations of one context pay for the context once.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamkit.errors import ModelError, UsageError
from streamkit.protocol.scoring import ScoreResult, build_result
from streamkit.providers.llama.files import LLAMA_THREADS
from streamkit.providers.llama.model import load_errors

if TYPE_CHECKING:
    from llama_cpp import Llama

# Split into batches three ways at load, to see whether prefix reuse is exact.
_PROBE_TEXT = "The quick brown fox jumps over the lazy dog while the cat sleeps in the sun."
SCORING_CONTEXT = 2048  # tokens; logits for every position cost n_ctx x n_vocab floats


class LocalScorer:
    """Scores texts with one GGUF model (blocking: call from a worker thread)."""

    def __init__(self, path: Path, *, n_ctx: int = SCORING_CONTEXT) -> None:
        with load_errors(path, "scoring"):
            from llama_cpp import Llama

            self.llm: Llama = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                logits_all=True,
                n_threads=LLAMA_THREADS,
                n_threads_batch=LLAMA_THREADS,
                verbose=False,
            )
        self._evaluated: list[int] = []  # the tokens whose KV cache and logits are live
        self.reuses_prefixes = self._batch_invariant()

    def _batch_invariant(self) -> bool:
        """Whether this model's logits are the same however a text is split into batches.

        llama.cpp's CPU kernels for some weight types (repacked K-quants, for
        one: Gemma 3's Q4_K_M) compute a row differently depending on the rows
        evaluated with it, by up to a few hundredths of a nat. Prefix reuse
        evaluates a text in two batches, so for such a model it would change
        the numbers; it is used only when a probe shows identical logits.
        """
        llm = self.llm
        probe = llm.tokenize(_PROBE_TEXT.encode(), add_bos=True)
        whole = self._evaluate_in_batches(probe, [len(probe)])
        return all(
            (self._evaluate_in_batches(probe, split) == whole).all()
            for split in ([len(probe) - 3, 3], [5, len(probe) - 5], [len(probe) - 1, 1])
        )

    def _evaluate_in_batches(self, tokens: list[int], sizes: list[int]) -> Any:
        llm = self.llm
        llm._ctx.kv_cache_seq_rm(-1, 0, -1)
        llm.n_tokens = 0
        start = 0
        for size in sizes:
            llm.eval(tokens[start : start + size])
            start += size
        return llm.scores[: len(tokens)].copy()

    def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        *,
        top: int = 0,
        ranges: Sequence[tuple[int, int]] = (),
    ) -> ScoreResult:
        import numpy as np

        if not continuation:
            raise UsageError("nothing to score: the continuation is empty")
        llm = self.llm
        context_tokens = (
            llm.tokenize(context.encode(), add_bos=True)
            if context
            else llm.tokenize(b"", add_bos=True)
        )
        full = llm.tokenize((context + continuation).encode(), add_bos=True)
        if len(full) > llm.n_ctx():
            raise ModelError(f"the text is {len(full)} tokens; the scoring window is {llm.n_ctx()}")
        split = max(1, _common_prefix(context_tokens, full))
        scored = full[split:]
        if not scored:
            raise UsageError("nothing to score: the continuation adds no token")
        rows = self._logits(full)[split - 1 : len(full) - 1].astype(np.float64)
        peaks = rows.max(axis=1, keepdims=True)
        log_totals = peaks[:, 0] + np.log(np.exp(rows - peaks).sum(axis=1))
        picked = rows[np.arange(len(scored)), scored] - log_totals
        alternatives = None
        if top > 0:
            alternatives = [
                {
                    llm.detokenize([int(i)]).decode("utf-8", "replace"): float(row[i] - lse)
                    for i in np.argsort(row)[::-1][:top]
                }
                for row, lse in zip(rows, log_totals, strict=True)
            ]
        return build_result(
            record_id,
            [llm.detokenize([t]) for t in scored],
            [float(v) for v in picked],
            is_greedy=bool(np.all(rows.argmax(axis=1) == np.array(scored))),
            top_logprobs=alternatives,
            continuation=continuation,
            ranges=ranges,
        )

    def _logits(self, full: list[int]) -> Any:
        """Logit rows of every position of ``full``, reusing a shared prefix if exact.

        All of ``full`` is evaluated, its last token too, so that a text scored
        afresh is one batch exactly as an independent evaluation would run it.
        """
        llm = self.llm
        keep = _common_prefix(self._evaluated, full) if self.reuses_prefixes else 0
        self._evaluated = []  # unknown state until the evaluation below succeeds
        if keep < llm.n_tokens:
            llm._ctx.kv_cache_seq_rm(-1, keep, -1)  # roll back to the shared prefix
            llm.n_tokens = keep
        if full[keep:]:
            llm.eval(full[keep:])
        self._evaluated = list(full)
        return llm.scores[: len(full)]


def _common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    count = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        count += 1
    return count
