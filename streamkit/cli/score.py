"""``streamkit score``: how likely is this text (after this context) under the model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import msgspec
import trio
import typer

from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli.complete import read_prompt_argument
from streamkit.cli.runner import run_command
from streamkit.config import load_config
from streamkit.errors import PartialBatchError, StreamkitError, UsageError
from streamkit.interrupts import Interrupts
from streamkit.localmodels import resolve_local_model
from streamkit.protocol.ndjson import LineSplitter
from streamkit.score import LocalScorer, parse_range

GROUP = 256  # records sorted together for prefix reuse, then written in input order


class _ScoreRecord(msgspec.Struct):
    id: str | int | None = None
    context: str = ""
    continuation: str | None = None
    text: str | None = None


def score(
    text: Annotated[str | None, typer.Argument(help="Text to score ('-' reads stdin)",
                                               show_default=False)] = None,
    context: Annotated[str, typer.Option("--context", "-C", help="Score TEXT as a "
                                         "continuation of this")] = "",
    model: opt.Model = None,
    top: Annotated[int, typer.Option("--top", min=0, max=20,
                                     help="Also show the N likeliest tokens per position")] = 0,
    ranges: Annotated[list[str] | None, typer.Option(
        "--range", help="START:END character offsets of TEXT to sum over (repeatable)",
        show_default=False)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    jsonl: batch.JSONL = False,
    input_path: batch.InputFile = None,
    output_path: batch.OutputFile = None,
) -> None:
    """Log-probabilities of TEXT under a local model: per token, summed, perplexity.

    Examples:

      streamkit score " Paris." --context "The capital of France is"

      streamkit score "The quick brown fox" --top 3 --json | jq .perplexity

      streamkit score --jsonl -i pairs.jsonl -o scores.jsonl
    """

    async def body(interrupts: Interrupts) -> int:
        config = load_config()
        _, path = resolve_local_model(model, config.models)
        spans = [parse_range(r) for r in ranges or ()]
        scorer = await trio.to_thread.run_sync(LocalScorer, path)
        if jsonl or input_path:
            if text is not None:
                raise UsageError("--jsonl takes its texts from the input, not an argument")
            return await _score_jsonl(scorer, top, input_path, output_path, interrupts)
        value = await read_prompt_argument(text)
        with interrupts.guard() as scope, scope:
            result = await trio.to_thread.run_sync(
                lambda: scorer.score(None, context, value, top=top, ranges=spans))
        if scope.cancelled_caught:
            return 0
        if as_json:
            sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
        else:
            _print_table(result)
        return 0

    raise typer.Exit(run_command(body))


def _print_table(result: Any) -> None:
    for index, (token, logprob) in enumerate(zip(result.tokens, result.token_logprobs,
                                                 strict=True)):
        line = f"{logprob:10.4f}  {token!r}"
        if result.top_logprobs:
            alternatives = ", ".join(f"{t!r} {v:.2f}" for t, v in
                                     result.top_logprobs[index].items())
            line += f"    [{alternatives}]"
        print(line)
    print(f"sum {result.logprob:.4f} over {result.n_tokens} tokens, perplexity "
          f"{result.perplexity:.3f}, greedy: {'yes' if result.is_greedy else 'no'}")
    for span in result.ranges or ():
        print(f"range {span['start']}:{span['end']}: {span['logprob']:.4f} "
              f"over {span['n_tokens']} tokens")


async def _score_jsonl(
    scorer: LocalScorer, top: int, input_path: Path | None, output_path: Path | None,
    interrupts: Interrupts,
) -> int:
    """Records in groups: sorted by context for prefix reuse, written in input order."""
    read = input_path.read_bytes if input_path else sys.stdin.buffer.read
    try:
        source = await trio.to_thread.run_sync(read, abandon_on_cancel=True)
    except OSError as exc:
        raise UsageError(f"cannot read {input_path}: {exc.strerror}") from None
    splitter = LineSplitter()
    lines = [(n, line) for n, line in splitter.feed(source) + splitter.close() if line.strip()]
    out = output_path.open("wb") if output_path else sys.stdout.buffer
    failed = 0
    try:
        with interrupts.guard() as scope, scope:
            for start in range(0, len(lines), GROUP):
                group = lines[start : start + GROUP]
                results = await trio.to_thread.run_sync(_score_group, scorer, group, top)
                for record in results:
                    failed += "error" in record
                    out.write(msgspec.json.encode(record) + b"\n")
                out.flush()
    finally:
        if output_path:
            out.close()
    if interrupts.exit_code is None and failed:
        error = PartialBatchError(f"{failed} of {len(lines)} lines failed")
        print(f"streamkit: {error.message}", file=sys.stderr)
        return error.exit_code
    return 0


def _score_group(scorer: LocalScorer, group: list[tuple[int, bytes]], top: int) -> list[dict]:
    parsed = []
    for number, line in group:
        try:
            record = msgspec.json.decode(line, type=_ScoreRecord)
        except msgspec.DecodeError as exc:
            parsed.append((number, number, None, f"line {number}: {exc}"))
            continue
        record_id = record.id if record.id is not None else number
        continuation = record.continuation if record.continuation is not None else record.text
        if continuation is None:
            parsed.append((number, record_id, None, f"line {number}: a record needs "
                           "`continuation` (with `context`) or `text`"))
        else:
            parsed.append((number, record_id, record.context, continuation))
    results: dict[int, dict] = {}
    for number, record_id, context, continuation in sorted(
        parsed, key=lambda p: (p[2] is None, p[2] or "", p[3])
    ):
        trio.from_thread.check_cancelled()
        if context is None:
            results[number] = {"id": record_id, "error": {"type": "input",
                                                          "message": continuation}}
            continue
        try:
            results[number] = msgspec.to_builtins(
                scorer.score(record_id, context, continuation, top=top))
        except StreamkitError as exc:
            results[number] = {"id": record_id, "error": {"type": exc.kind,
                                                          "message": exc.message}}
    return [results[number] for number, _ in group]
