"""How fast a cancel stops local generation: ``cancel()`` to ``run_stream`` returning.

Why: Ctrl-C and ``--timeout`` cancel the scope around the producer. With a
local model the tokens come from llama.cpp in a worker thread, which Trio
cannot interrupt: the thread has to notice the cancel itself (it checks before
every token) and return, and ``run_stream`` waits for it -- the thread is
never abandoned while it holds the model. So a cancel should take at most
about one token's time plus the pipeline's wind-down (the consumers draining
and flushing), whatever the point of the stream it lands on. The goal is p99
< 100 ms on SmolLM2-135M.

The embedded model is loaded once. ``--runs`` times (default 50): a
completion request with a long ``max_tokens`` and a fresh seed is streamed by
``run_stream`` into a ``Printer`` (writing to ``/dev/null``) and a consumer
that notes the first text; a random 50-500 ms (seeded RNG) after the first
text arrives, a task calls ``cancel()`` on the ``stop`` scope. Timed with
``time.perf_counter`` from ``cancel()`` to ``run_stream`` returning, under
Trio's real clock. Each run must end with finish reason ``cancelled``, and no
thread named ``THREAD_NAME`` may exist when ``run_stream`` has returned (the
worker thread is back in Trio's thread cache, renamed) -- while one must have
existed just before the cancel. A run whose text ends
(EOG token) before its cancel is not counted and is repeated with another
seed.

For reference, the time per token: between the cancels (before the first
and after every tenth), a raw ``llm.generate`` loop of 32 tokens records the
gaps between consecutive tokens; their median and maximum are printed, since
one token is the bound on the thread's reaction time.

Percentiles are nearest-rank over the runs: with 50 runs p99 is the maximum.

Run: ``python bench/local_cancel.py`` (about 30 s), ``--quick`` (10 runs).
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import statistics
import sys
import threading
import time
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

import llama_cpp
import trio

from streamkit.events import Batch, TextDelta
from streamkit.pipeline.stream import run_stream
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.producer import THREAD_NAME, LlamaLocalProducer
from streamkit.request import GenerationOptions, GenerationRequest
from streamkit.sinks.printer import Printer

if TYPE_CHECKING:
    from llama_cpp import Llama

PROMPT = "Once upon a time, in a small village by the sea,"
MAX_TOKENS = 2048
DELAY_RANGE = (0.050, 0.500)  # seconds after the first text
REFERENCE_TOKENS = 32
REFERENCE_EVERY = 10
GOAL_MS = 100.0


class Cancel:
    """One cancelled run: latency, tokens generated, and what was wrong, if anything."""

    def __init__(self, seconds: float, tokens: int, problems: list[str]) -> None:
        self.seconds = seconds
        self.tokens = tokens
        self.problems = problems


async def cancel_run(model: LocalModel, seed: int, delay: float, out: BinaryIO) -> Cancel | None:
    """Stream, cancel ``delay`` s after the first text; ``None`` if the text ended first."""
    llm = await model.llm()
    llm.reset()
    request = GenerationRequest(
        "completion", None, GenerationOptions(max_tokens=MAX_TOKENS, seed=seed), prompt=PROMPT
    )
    producer = LlamaLocalProducer(model)
    stop = trio.CancelScope()
    first_text = trio.Event()
    cancelled_at: list[float] = []
    alive_at_cancel: list[bool] = []

    async def watch(receive: trio.MemoryReceiveChannel[Batch]) -> None:
        async with receive:
            async for batch in receive:
                if not first_text.is_set() and any(type(e) is TextDelta and e.text for e in batch):
                    first_text.set()

    async def canceller() -> None:
        await first_text.wait()
        await trio.sleep(delay)
        alive_at_cancel.append(any(t.name == THREAD_NAME for t in threading.enumerate()))
        cancelled_at.append(time.perf_counter())
        stop.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(canceller)
        reply = await run_stream(
            partial(producer.stream, request), [Printer(out), watch], stop=stop
        )
        returned = time.perf_counter()
        workers = [t.name for t in threading.enumerate() if t.name == THREAD_NAME]
        nursery.cancel_scope.cancel()  # the canceller, when the text ended first

    if not cancelled_at or (not alive_at_cancel[0] and reply.finish_reason != "cancelled"):
        return None  # the text ended before the cancel
    problems: list[str] = []
    if reply.finish_reason != "cancelled":
        problems.append(f"finish reason {reply.finish_reason!r}")
    if reply.error is not None:
        problems.append(f"error {reply.error.kind}: {reply.error.message}")
    if not alive_at_cancel[0]:
        problems.append(f"no {THREAD_NAME} thread was running at the cancel")
    if workers:
        problems.append(f"{len(workers)} {THREAD_NAME} thread(s) alive after return")
    if not reply.text:
        problems.append("no text kept")
    tokens = reply.usage.completion_tokens if reply.usage is not None else None
    return Cancel(returned - cancelled_at[0], tokens or 0, problems)


def token_gaps(llm: Llama, seed: int, tokens: int) -> list[float]:
    """Seconds between consecutive tokens of a raw ``llm.generate`` loop."""
    vocab = llm._model.vocab
    llm.reset()
    prompt = llm.tokenize(PROMPT.encode("utf-8"), add_bos=True, special=False)
    llm.set_seed(seed)
    stamps: list[float] = []
    generator = llm.generate(prompt, temp=0.8, top_p=0.95)
    try:
        for token in generator:
            stamps.append(time.perf_counter())
            if llama_cpp.llama_vocab_is_eog(vocab, token) or len(stamps) > tokens:
                break
            llm.detokenize([token])
    finally:
        generator.close()
    return [b - a for a, b in itertools.pairwise(stamps)]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


async def measure(args: argparse.Namespace, out: BinaryIO) -> int:
    rng = random.Random(args.seed)
    path = embedded_model_path()
    model = LocalModel(path, "smollm2")
    llm = await model.llm()

    load_before = os.getloadavg()[0]
    cancels: list[Cancel] = []
    gaps: list[float] = []
    ended_early = 0
    gaps.extend(token_gaps(llm, rng.randrange(2**31), REFERENCE_TOKENS))
    while len(cancels) < args.runs:
        delay = rng.uniform(*DELAY_RANGE)
        result = None
        for _attempt in range(20):
            result = await cancel_run(model, rng.randrange(2**31), delay, out)
            if result is not None:
                break
            ended_early += 1
        if result is None:
            raise RuntimeError("20 texts in a row ended before their cancel")
        cancels.append(result)
        if len(cancels) % REFERENCE_EVERY == 0:
            gaps.extend(token_gaps(llm, rng.randrange(2**31), REFERENCE_TOKENS))

    load_after = os.getloadavg()[0]
    ms = [c.seconds * 1e3 for c in cancels]
    gap_ms = [g * 1e3 for g in gaps]
    bad = [(i, c) for i, c in enumerate(cancels) if c.problems]
    p99 = percentile(ms, 99)

    print(
        f"Python {sys.version.split()[0]}, llama-cpp-python {llama_cpp.__version__}, "
        f"{os.cpu_count()} CPU(s), n_threads {llm.n_threads}, model {path.name}"
    )
    print(
        f"cancel() -> run_stream returned, {args.runs} runs, cancel 50-500 ms after the "
        f"first text (seed {args.seed}); Trio's real clock"
    )
    print(f"1-min load average {load_before:.2f} before the runs, {load_after:.2f} after")
    print()
    print(f"  {'p50 ms':>8}{'p90 ms':>8}{'p99 ms':>8}{'max ms':>8}{'min ms':>8}{'mean ms':>9}")
    print(
        f"  {percentile(ms, 50):>8.1f}{percentile(ms, 90):>8.1f}{p99:>8.1f}{max(ms):>8.1f}"
        f"{min(ms):>8.1f}{statistics.fmean(ms):>9.1f}"
    )
    print()
    print(
        f"  time per token (raw loop, {len(gap_ms)} gaps): median {statistics.median(gap_ms):.1f}"
        f" ms, p90 {percentile(gap_ms, 90):.1f} ms, max {max(gap_ms):.1f} ms"
    )
    print(
        f"  cancel p50 / token median: {percentile(ms, 50) / statistics.median(gap_ms):.2f}; "
        f"cancel p99 / token median: {p99 / statistics.median(gap_ms):.2f}"
    )
    tokens = [c.tokens for c in cancels]
    print(
        f"  tokens before the cancel took effect: median {statistics.median(tokens):g}, "
        f"min {min(tokens)}, max {max(tokens)}"
    )
    print(f"  texts that ended before their cancel (repeated with another seed): {ended_early}")
    print(
        f"  runs ending 'cancelled', text kept, no {THREAD_NAME} thread left: "
        f"{args.runs - len(bad)}/{args.runs}"
    )
    verdict = "meets" if p99 < GOAL_MS else "ABOVE"
    print(f"  p99 / goal: {p99:.1f} ms / < {GOAL_MS:g} ms ({verdict}); p99 is nearest-rank")
    for i, c in bad:
        print(f"  run {i}: {'; '.join(c.problems)}")
    return 1 if bad else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10 runs")
    parser.add_argument("--runs", type=int, help="cancels (default 50)")
    parser.add_argument("--seed", type=int, default=1, help="seed of the delays and sampling seeds")
    args = parser.parse_args(argv)
    args.runs = args.runs or (10 if args.quick else 50)
    with open(os.devnull, "wb") as out:
        return trio.run(measure, args, out)


if __name__ == "__main__":
    sys.exit(main())
