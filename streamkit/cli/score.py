"""``streamkit score``: how likely is this text (after this context) under the model."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any, Protocol

import msgspec
import trio
import typer

from streamkit.batch import finished_ids, id_key
from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli.complete import read_prompt_argument
from streamkit.cli.runner import report, run_command
from streamkit.config import Settings, resolve_settings
from streamkit.errors import PartialBatchError, ProtocolError, StreamkitError, UsageError
from streamkit.interrupts import Interrupts
from streamkit.localmodels import resolve_local_model
from streamkit.protocol.echo import CannotScore
from streamkit.protocol.ndjson import LineSplitter
from streamkit.score import LocalScorer, ScoreResult, parse_range

GROUP = 256  # records sorted together for prefix reuse, then written in input order


class _ScoreRecord(msgspec.Struct):
    id: str | int | None = None
    context: str = ""
    continuation: str | None = None
    text: str | None = None


class Scorer(Protocol):
    problem: str | None  # why the numbers are not trusted (a server that failed the check)

    async def score(self, record_id: Any, context: str, continuation: str, *, top: int = 0,
                    ranges: Sequence[tuple[int, int]] = ()) -> ScoreResult: ...


class _ThreadedScorer:
    """A local scorer driven from Trio: one text at a time, in a worker thread."""

    def __init__(self, scorer: LocalScorer) -> None:
        self.scorer = scorer
        self.problem: str | None = None  # local numbers need no server check

    async def score(self, record_id: Any, context: str, continuation: str, *, top: int = 0,
                    ranges: Sequence[tuple[int, int]] = ()) -> ScoreResult:
        return await trio.to_thread.run_sync(
            lambda: self.scorer.score(record_id, context, continuation, top=top,
                                      ranges=ranges))


@asynccontextmanager
async def open_scorer(settings: Settings) -> AsyncIterator[Scorer]:
    """The server's scorer when a base URL is set, else the local model's."""
    if not settings.base_url:
        _, path = resolve_local_model(settings.model, settings.local_models)
        yield _ThreadedScorer(await trio.to_thread.run_sync(LocalScorer, path))
        return
    from streamkit.backend import open_backend
    from streamkit.score_remote import RemoteScorer

    async with open_backend(settings) as producer:
        yield RemoteScorer(producer, settings.model)


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
    concurrency: Annotated[int, typer.Option(
        "--concurrency", "-j", min=1, max=256, help="Requests in flight at once (a server; "
        "a local model scores one text at a time)", rich_help_panel=batch.BATCH)] = 4,
    resume: Annotated[bool, typer.Option(
        "--resume", help="Skip ids already scored in --output FILE (the rest is appended)",
        rich_help_panel=batch.BATCH)] = False,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
    max_retries: opt.MaxRetries = None,
) -> None:
    """Log-probabilities of TEXT: per token, summed, perplexity.

    A local model by default; with a base URL, the server's echoed prompt
    log-probabilities, checked for consistency before they are trusted.

    Examples:

      streamkit score " Paris." --context "The capital of France is"

      streamkit score "The quick brown fox" --top 3 --json | jq .perplexity

      streamkit score --jsonl -i pairs.jsonl -o scores.jsonl --resume

      streamkit score " Paris." -C "The capital of France is" --base-url http://127.0.0.1:8000/v1
    """

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile, base_url=base_url, api_key=api_key, model=model,
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, timeout=None,
            max_retries=max_retries,
        )
        spans = [parse_range(r) for r in ranges or ()]
        if jsonl or input_path:
            if text is not None:
                raise UsageError("--jsonl takes its texts from the input, not an argument")
            if resume and output_path is None:
                raise UsageError("--resume needs --output FILE")
        else:
            value = await read_prompt_argument(text)
        async with open_scorer(settings) as scorer:
            if jsonl or input_path:
                code = await _score_jsonl(scorer, top, input_path, output_path, resume,
                                          concurrency if settings.base_url else 1, interrupts)
            else:
                code = 0
                with interrupts.guard() as scope, scope:
                    result = await scorer.score(None, context, value, top=top, ranges=spans)
                if scope.cancelled_caught:
                    return 0
                if as_json:
                    sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
                else:
                    _print_table(result)
            return _untrusted(scorer.problem, settings.base_url) or code

    raise typer.Exit(run_command(body))


def _untrusted(problem: str | None, base_url: str | None) -> int:
    """Exit code (and a line on stderr) for a server whose scores failed the check."""
    if problem is None:
        return 0
    error = ProtocolError(f"{base_url}: scores not trusted (each result says "
                          f'"trusted": false): {problem}')
    report(error)
    return error.exit_code


def _print_table(result: ScoreResult) -> None:
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
    scorer: Scorer, top: int, input_path: Path | None, output_path: Path | None,
    resume: bool, concurrency: int, interrupts: Interrupts,
) -> int:
    """Records in groups: sorted by context for prefix reuse, written in input order.

    On Ctrl-C the finished records of the current group are written too, so
    ``--resume`` starts after them.
    """
    read = input_path.read_bytes if input_path else sys.stdin.buffer.read
    try:
        source = await trio.to_thread.run_sync(read, abandon_on_cancel=True)
    except OSError as exc:
        raise UsageError(f"cannot read {input_path}: {exc.strerror}") from None
    splitter = LineSplitter()
    lines = [(n, line) for n, line in splitter.feed(source) + splitter.close() if line.strip()]
    skip = finished_ids(output_path) if resume and output_path else frozenset()
    jobs = [job for job in map(_parse_record, lines) if id_key(job[1]) not in skip]
    try:
        out = output_path.open("ab" if resume else "wb") if output_path else sys.stdout.buffer
    except OSError as exc:
        raise UsageError(f"cannot write {output_path}: {exc.strerror}") from None
    progress = None
    if sys.stderr.isatty():
        from streamkit.sinks.progress import BatchProgress  # rich.progress: terminals only

        progress = BatchProgress(len(jobs))
    failed = 0
    try:
        with interrupts.guard() as scope, scope, progress or contextlib.nullcontext():
            for start in range(0, len(jobs), GROUP):
                group = jobs[start : start + GROUP]
                results: dict[int, dict] = {}
                try:
                    await _score_group(scorer, group, top, concurrency, results, progress)
                finally:
                    for number, *_ in group:
                        if number in results:
                            failed += "error" in results[number]
                            out.write(msgspec.json.encode(results[number]) + b"\n")
                    out.flush()
    finally:
        if output_path:
            out.close()
    if interrupts.exit_code is None and failed:
        error = PartialBatchError(f"{failed} of {len(jobs)} lines failed")
        report(error)
        return error.exit_code
    return 0


def _parse_record(numbered: tuple[int, bytes]) -> tuple[int, Any, str | None, str]:
    """(line number, id, context, continuation), or context None and an error message."""
    number, line = numbered
    try:
        record = msgspec.json.decode(line, type=_ScoreRecord)
    except msgspec.DecodeError as exc:
        return number, number, None, f"line {number}: {exc}"
    record_id = record.id if record.id is not None else number
    continuation = record.continuation if record.continuation is not None else record.text
    if continuation is None:
        return number, record_id, None, (f"line {number}: a record needs `continuation` "
                                         "(with `context`) or `text`")
    return number, record_id, record.context, continuation


async def _score_group(
    scorer: Scorer, group: list[tuple[int, Any, str | None, str]], top: int, concurrency: int,
    results: dict[int, dict], progress: Any,
) -> None:
    """Score one group into ``results``, by line number, in context order.

    A server that cannot score at all ends the run; other failures become
    the record's error.
    """
    limiter = trio.CapacityLimiter(concurrency)  # FIFO: context order is kept

    async def one(number: int, record_id: Any, context: str, continuation: str) -> None:
        async with limiter:
            if progress is not None:
                progress.started()
            try:
                result = await scorer.score(record_id, context, continuation, top=top)
                results[number] = msgspec.to_builtins(result)
            except CannotScore:
                raise
            except StreamkitError as exc:
                results[number] = {"id": record_id, "error": {"type": exc.kind,
                                                              "message": exc.message}}
            if progress is not None:
                progress.finished(results[number])

    async with trio.open_nursery() as nursery:
        for number, record_id, context, continuation in sorted(
            group, key=lambda job: (job[2] is None, job[2] or "", job[3])
        ):
            if context is None:
                results[number] = {"id": record_id, "error": {"type": "input",
                                                              "message": continuation}}
            else:
                nursery.start_soon(one, number, record_id, context, continuation)
