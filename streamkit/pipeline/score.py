"""The score engine: one scorer (local model or server) behind one protocol, and JSONL batches.

A batch is read in groups sorted by context, so the local scorer reuses each
prefix's evaluation; results are still written in input order, and a group's
finished records are written even on Ctrl-C so ``--resume`` starts after them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Protocol

import msgspec
import trio

from streamkit.config import Settings
from streamkit.errors import PartialBatchError, StreamkitError
from streamkit.pipeline.batch_files import BatchFiles
from streamkit.pipeline.command import report
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.jsonl_lines import LineReader, count_lines
from streamkit.protocol.echo import CannotScore
from streamkit.protocol.ndjson import BatchIds, TooLong, id_key, too_long_message
from streamkit.protocol.scoring import ScoreResult
from streamkit.providers.llama.files import resolve_local_model
from streamkit.providers.llama.score import LocalScorer

GROUP = 256  # records sorted together for prefix reuse, then written in input order


class _ScoreRecord(msgspec.Struct):
    id: str | int | None = None
    context: str = ""
    continuation: str | None = None
    text: str | None = None


class Scorer(Protocol):
    problem: str | None  # why the numbers are not trusted (a server that failed the check)

    async def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        *,
        top: int = 0,
        ranges: Sequence[tuple[int, int]] = (),
    ) -> ScoreResult: ...


class _ThreadedScorer:
    """A local scorer driven from Trio: one text at a time, in a worker thread."""

    def __init__(self, scorer: LocalScorer) -> None:
        self.scorer = scorer
        self.problem: str | None = None  # local numbers need no server check

    async def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        *,
        top: int = 0,
        ranges: Sequence[tuple[int, int]] = (),
    ) -> ScoreResult:
        return await trio.to_thread.run_sync(
            lambda: self.scorer.score(record_id, context, continuation, top=top, ranges=ranges)
        )


@asynccontextmanager
async def open_scorer(settings: Settings) -> AsyncIterator[Scorer]:
    """The server's scorer when a base URL is set, else the local model's."""
    if not settings.base_url:
        _, path = resolve_local_model(settings.model, settings.local_models)
        yield _ThreadedScorer(await trio.to_thread.run_sync(LocalScorer, path))
        return
    from streamkit.providers.backend import open_backend
    from streamkit.providers.score_remote import RemoteScorer

    async with open_backend(settings) as producer:
        yield RemoteScorer(producer, settings.model)


async def score_jsonl(
    scorer: Scorer,
    top: int,
    files: BatchFiles,
    input_path: Path | None,
    concurrency: int,
    interrupts: Interrupts,
) -> int:
    """Records in groups: sorted by context for prefix reuse, written in input order.

    On Ctrl-C the finished records of the current group are written too, so
    ``--resume`` starts after them. ``input_path`` (None: stdin) sizes the
    progress bar.
    """
    progress = None
    if sys.stderr.isatty():
        from streamkit.sinks.progress import BatchProgress  # rich.progress: terminals only

        progress = BatchProgress(count_lines(input_path) if input_path else None)
    reader = LineReader(files.source)
    ids = BatchIds()
    failed = total = 0
    with interrupts.guard() as scope, scope, progress or contextlib.nullcontext():
        while group := await _next_group(reader, ids, files.skip_ids):
            results: dict[int, dict] = {}
            try:
                await _score_group(scorer, group, top, concurrency, results, progress)
            finally:
                done = [results[number] for number, *_ in group if number in results]
                total += len(done)
                failed += sum("error" in record for record in done)
                if done and not files.output.failed:
                    files.output.write(b"".join(msgspec.json.encode(r) + b"\n" for r in done))
    if interrupts.exit_code is None and failed:
        error = PartialBatchError(f"{failed} of {total} lines failed")
        report(error)
        return error.exit_code
    return 0


async def _next_group(
    reader: LineReader, ids: BatchIds, skip: frozenset[bytes]
) -> list[tuple[int, Any, str | None, str]]:
    """Up to ``GROUP`` records still to score, in input order (empty at the end)."""
    group: list[tuple[int, Any, str | None, str]] = []
    while len(group) < GROUP and (numbered := await reader.next_line()) is not None:
        number, record_id, context, continuation = _parse_record(numbered)
        taken = ids.duplicate(number, record_id)
        if taken is not None and context is not None:
            context, continuation = None, taken
        if id_key(record_id) not in skip:
            group.append((number, record_id, context, continuation))
    return group


def _parse_record(numbered: tuple[int, bytes | TooLong]) -> tuple[int, Any, str | None, str]:
    """(line number, id, context, continuation), or context None and an error message."""
    number, line = numbered
    if isinstance(line, TooLong):
        return number, number, None, too_long_message(number, line)
    try:
        record = msgspec.json.decode(line, type=_ScoreRecord)
    except msgspec.DecodeError as exc:
        return number, number, None, f"line {number}: {exc}"
    record_id = record.id if record.id is not None else number
    continuation = record.continuation if record.continuation is not None else record.text
    if continuation is None:
        return (
            number,
            record_id,
            None,
            (f"line {number}: a record needs `continuation` (with `context`) or `text`"),
        )
    return number, record_id, record.context, continuation


async def _score_group(
    scorer: Scorer,
    group: list[tuple[int, Any, str | None, str]],
    top: int,
    concurrency: int,
    results: dict[int, dict],
    progress: Any,
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
                results[number] = {
                    "id": record_id,
                    "error": {"type": exc.kind, "message": exc.message},
                }
            if progress is not None:
                progress.finished(results[number])

    async with trio.open_nursery() as nursery:
        for number, record_id, context, continuation in sorted(
            group, key=lambda job: (job[2] is None, job[2] or "", job[3])
        ):
            if context is None:
                results[number] = {
                    "id": record_id,
                    "error": {"type": "input", "message": continuation},
                }
            else:
                nursery.start_soon(one, number, record_id, context, continuation)
