"""What streamkit's local producer costs on top of llama.cpp: tokens/s, pipeline vs raw loop.

Why: with a local model, llama.cpp does the real work, and streamkit adds a
worker thread, a cancellation check and a mailbox per token, channels, the
fan-out and the printer. All of that must be noise next to the model itself:
the goal is an overhead below 2 % on the smallest model, SmolLM2-135M, where
it is the hardest to hide (the faster the model, the larger the share of the
per-token Python work).

One ``Llama`` object (``LocalModel`` of the embedded GGUF, loaded once) serves
both sides, with the same prompt tokens, seed (``set_seed``), temperature and
top_p, so both sample exactly the same tokens:

* streamkit: ``run_stream`` of ``LlamaLocalProducer.stream`` into a
  ``Printer`` writing to ``/dev/null`` -- what ``streamkit complete`` does;
* raw: the plain llama-cpp-python loop on the same object -- tokenize,
  ``set_seed``, iterate ``llm.generate``, stop at an EOG token or at the
  count, detokenize and UTF-8-decode each token and write it to
  ``/dev/null`` -- timed inside a Trio worker thread. Trio's thread cache
  hands both sides the same idle worker, so both call llama.cpp from the same
  OS thread, with the same OpenMP thread team: llama.cpp's OpenMP build keeps
  one team per calling thread, and calling from the main thread on one side
  only would add a second team to the comparison.

The KV cache: ``generate`` reuses the longest cached prefix, so the second of
two runs with the same prompt would skip the prompt evaluation. ``llm.reset()``
is called (untimed) before every run on both sides, so each run evaluates the
whole (short) prompt and then generates ``--tokens`` tokens. A seed whose text
reaches ``--tokens`` tokens before any EOG token is picked first, and every
run's token count and text are checked to be the same on both sides.

The two sides alternate (one untimed warm-up each, then ``--rounds`` rounds,
the order flipped every round), so both see the same machine load; on a
machine so loaded that the warm-ups and rounds pass ``--budget`` seconds, no
new round starts (at least three are run), and the table says so. Reported:
median wall time and tokens/s of each side (from the call to its return,
prompt evaluation included); the overhead from the medians, from the minima
(the least disturbed run of each side), and from the median of the per-round
paired ratios (streamkit time / raw time of the same round), the figure the
goal is checked against, as the more robust one on a loaded machine. Also
printed: the CPU time the Trio thread (event loop, fan-out, printer) used
during a streamkit run, as a share of the raw run's wall time -- a figure that
machine load disturbs less than wall times, and the part of the overhead that
competes with llama.cpp's own threads for the cores. The worker thread's own
extra work (mailbox, cancellation check) is not in it.

Run: ``python bench/local_overhead.py`` (about a minute), ``--quick`` (seconds).
"""

from __future__ import annotations

import argparse
import codecs
import os
import statistics
import sys
import time
from functools import partial
from typing import TYPE_CHECKING, BinaryIO

import llama_cpp
import trio

from streamkit.pipeline.stream import run_stream
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.producer import LlamaLocalProducer
from streamkit.request import GenerationOptions, GenerationRequest
from streamkit.sinks.printer import Printer

if TYPE_CHECKING:
    from llama_cpp import Llama

PROMPT = "Once upon a time, in a small village by the sea,"
TEMPERATURE = 0.8
TOP_P = 0.95
GOAL_PERCENT = 2.0
MIN_ROUNDS = 3


class Run:
    """One timed generation: seconds, tokens, text, CPU seconds of the calling thread."""

    def __init__(self, seconds: float, tokens: int, text: str, thread_cpu: float) -> None:
        self.seconds = seconds
        self.tokens = tokens
        self.text = text
        self.thread_cpu = thread_cpu


def raw_run(llm: Llama, prompt: str, tokens: int, seed: int, out: BinaryIO) -> Run:
    """The plain llama-cpp-python streaming loop, as streamkit's producer samples."""
    vocab = llm._model.vocab
    llm.reset()
    cpu_start = time.thread_time()
    start = time.perf_counter()
    prompt_tokens = llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
    llm.set_seed(seed)
    decoder = codecs.getincrementaldecoder("utf-8")("replace")
    parts: list[str] = []
    count = 0
    generator = llm.generate(prompt_tokens, temp=TEMPERATURE, top_p=TOP_P)
    try:
        for token in generator:
            if llama_cpp.llama_vocab_is_eog(vocab, token):
                break
            count += 1
            text = decoder.decode(llm.detokenize([token]))
            if text:
                parts.append(text)
                out.write(text.encode())
            if count >= tokens:
                break
    finally:
        generator.close()
    parts.append(decoder.decode(b"", final=True))
    out.flush()
    elapsed = time.perf_counter() - start
    return Run(elapsed, count, "".join(parts), time.thread_time() - cpu_start)


async def streamkit_run(
    model: LocalModel, prompt: str, tokens: int, seed: int, out: BinaryIO
) -> Run:
    """``run_stream`` of the local producer into a ``Printer``."""
    llm = await model.llm()
    llm.reset()
    request = GenerationRequest(
        "completion",
        None,
        GenerationOptions(max_tokens=tokens, seed=seed, temperature=TEMPERATURE, top_p=TOP_P),
        prompt=prompt,
    )
    producer = LlamaLocalProducer(model)
    cpu_start = time.thread_time()
    start = time.perf_counter()
    reply = await run_stream(
        partial(producer.stream, request), [Printer(out)], stop=trio.CancelScope()
    )
    elapsed = time.perf_counter() - start
    thread_cpu = time.thread_time() - cpu_start
    if reply.error is not None:
        raise RuntimeError(f"streamkit run failed: {reply.error.message}")
    count = reply.usage.completion_tokens if reply.usage is not None else None
    if count is None:
        raise RuntimeError("streamkit run reported no usage")
    return Run(elapsed, count, reply.text, thread_cpu)


async def raw_in_worker(
    model: LocalModel, prompt: str, tokens: int, seed: int, out: BinaryIO
) -> Run:
    """``raw_run`` in a Trio worker thread, as the producer runs (timed inside the thread)."""
    llm = await model.llm()
    return await trio.to_thread.run_sync(
        raw_run, llm, prompt, tokens, seed, out, limiter=model.limiter
    )


async def pick_seed(
    model: LocalModel, prompt: str, tokens: int, first: int, out: BinaryIO
) -> tuple[int, Run]:
    """The first seed from ``first`` whose text runs ``tokens`` tokens without EOG."""
    for seed in range(first, first + 50):
        run = await raw_in_worker(model, prompt, tokens, seed, out)
        if run.tokens == tokens:
            return seed, run
    raise RuntimeError(f"no seed in {first}..{first + 49} reaches {tokens} tokens")


def check_same(raw: Run, kit: Run, tokens: int) -> list[str]:
    problems: list[str] = []
    if raw.tokens != tokens or kit.tokens != tokens:
        problems.append(f"token counts raw {raw.tokens}, streamkit {kit.tokens}, want {tokens}")
    if raw.text != kit.text:
        problems.append("texts differ between raw and streamkit")
    return problems


async def measure(args: argparse.Namespace, out: BinaryIO) -> int:
    path = embedded_model_path()
    model = LocalModel(path, "smollm2")
    load_start = time.perf_counter()
    llm = await model.llm()
    load_s = time.perf_counter() - load_start
    prompt_len = len(llm.tokenize(PROMPT.encode("utf-8"), add_bos=True, special=False))

    started = time.perf_counter()
    # The seed's raw run and one streamkit run are the untimed warm-ups, and
    # check that the two sides agree.
    seed, warm_raw = await pick_seed(model, PROMPT, args.tokens, args.seed, out)
    warm_kit = await streamkit_run(model, PROMPT, args.tokens, seed, out)
    problems = check_same(warm_raw, warm_kit, args.tokens)

    raw_runs: list[Run] = []
    kit_runs: list[Run] = []
    load_before = os.getloadavg()[0]
    for i in range(args.rounds):
        if i >= MIN_ROUNDS and time.perf_counter() - started > args.budget:
            break
        raw_first = i % 2 == 0
        if raw_first:
            raw_runs.append(await raw_in_worker(model, PROMPT, args.tokens, seed, out))
        kit_runs.append(await streamkit_run(model, PROMPT, args.tokens, seed, out))
        if not raw_first:
            raw_runs.append(await raw_in_worker(model, PROMPT, args.tokens, seed, out))
        for problem in check_same(raw_runs[-1], kit_runs[-1], args.tokens):
            problems.append(f"round {i + 1}: {problem}")

    load_after = os.getloadavg()[0]
    rounds = len(raw_runs)
    raw_s = statistics.median(r.seconds for r in raw_runs)
    kit_s = statistics.median(r.seconds for r in kit_runs)
    ratios = [k.seconds / r.seconds for r, k in zip(raw_runs, kit_runs, strict=True)]
    paired = (statistics.median(ratios) - 1) * 100
    from_medians = (kit_s / raw_s - 1) * 100
    from_minima = (min(k.seconds for k in kit_runs) / min(r.seconds for r in raw_runs) - 1) * 100

    print(
        f"Python {sys.version.split()[0]}, llama-cpp-python {llama_cpp.__version__}, "
        f"{os.cpu_count()} CPU(s), n_threads {llm.n_threads}"
    )
    print(
        f"model {path.name} (loaded in {load_s:.2f} s); prompt {prompt_len} tokens; "
        f"{args.tokens} tokens a run, seed {seed}, temperature {TEMPERATURE}, top_p {TOP_P}"
    )
    cut = ""
    if rounds < args.rounds:
        cut = f" (of {args.rounds}: time budget {args.budget:g} s reached)"
    print(
        f"{rounds} rounds{cut}, order alternating; KV cache reset before every run; "
        f"time = call to return, prompt evaluation included"
    )
    print(f"1-min load average {load_before:.2f} before the rounds, {load_after:.2f} after")
    print()
    print(f"  {'side':<34}{'median s':>9}{'tok/s':>8}{'min s':>8}{'max s':>8}")
    for label, runs in (
        ("raw llm.generate loop", raw_runs),
        ("streamkit run_stream + Printer", kit_runs),
    ):
        seconds = [r.seconds for r in runs]
        median_s = statistics.median(seconds)
        print(
            f"  {label:<34}{median_s:>9.3f}{args.tokens / median_s:>8.1f}"
            f"{min(seconds):>8.3f}{max(seconds):>8.3f}"
        )
    print()
    print("  per-round streamkit/raw time: " + " ".join(f"{r:.3f}" for r in ratios))
    print(f"  overhead from the medians:            {from_medians:+.2f} %")
    print(
        f"  overhead from the minima:             {from_minima:+.2f} %  "
        f"(the least disturbed run of each side)"
    )
    verdict = "meets" if paired < GOAL_PERCENT else "ABOVE"
    print(
        f"  overhead, median of paired ratios:    {paired:+.2f} %  "
        f"(goal < {GOAL_PERCENT:g} %: {verdict})"
    )
    trio_cpu = statistics.median(k.thread_cpu for k in kit_runs)
    print(
        f"  Trio thread CPU in a streamkit run:   {trio_cpu * 1e3:.1f} ms, "
        f"{trio_cpu / args.tokens * 1e6:.0f} us a token = "
        f"{trio_cpu / raw_s * 100:.2f} % of the raw run's wall time"
    )
    print(f"  same tokens and text on both sides:   {'yes' if not problems else 'NO'}")
    for problem in problems:
        print(f"    {problem}")
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds of 64 tokens")
    parser.add_argument("--rounds", type=int, help="rounds, one run of each side (default 7)")
    parser.add_argument("--tokens", type=int, help="tokens a run (default 256)")
    parser.add_argument("--seed", type=int, default=1, help="first sampling seed to try")
    parser.add_argument(
        "--budget",
        type=float,
        default=120.0,
        help=f"seconds after which no new round starts (at least {MIN_ROUNDS} run; default 120)",
    )
    args = parser.parse_args(argv)
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.tokens = args.tokens or (64 if args.quick else 256)
    with open(os.devnull, "wb") as out:
        return trio.run(measure, args, out)


if __name__ == "__main__":
    sys.exit(main())
