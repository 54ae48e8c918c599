"""The ``--jsonl`` mode shared by ``chat`` and ``complete``: files, resume, exit code."""

from __future__ import annotations

import contextlib
import datetime
import sys
from pathlib import Path
from typing import Annotated

import trio
import typer

from streamkit.config import Settings
from streamkit.errors import PartialBatchError, UsageError
from streamkit.pipeline.batch import BatchRunner, BatchSummary
from streamkit.pipeline.batch_files import open_batch_files
from streamkit.pipeline.command import report
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.jsonl_lines import count_lines
from streamkit.pipeline.tool_hops import ToolHops
from streamkit.providers.backend import open_backend
from streamkit.request import GenerationOptions
from streamkit.store.async_store import AsyncStore

BATCH = "Batch (JSONL)"

JSONL = Annotated[
    bool,
    typer.Option(
        "--jsonl",
        help="Batch mode: one JSON record a line in, one result a line out",
        rich_help_panel=BATCH,
    ),
]
InputFile = Annotated[
    Path | None,
    typer.Option(
        "--input",
        "-i",
        help="Read JSONL from FILE instead of stdin",
        rich_help_panel=BATCH,
        show_default=False,
        dir_okay=False,
    ),
]
OutputFile = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        help="Write results to FILE instead of stdout",
        rich_help_panel=BATCH,
        show_default=False,
        dir_okay=False,
    ),
]
Concurrency = Annotated[
    int,
    typer.Option(
        "--concurrency",
        "-j",
        min=1,
        max=1024,
        help="Requests in flight at once",
        rich_help_panel=BATCH,
    ),
]
Unordered = Annotated[
    bool,
    typer.Option(
        "--unordered",
        help="Write results as they finish, not in input order",
        rich_help_panel=BATCH,
    ),
]
Resume = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Skip ids already answered: in --output FILE (the rest is "
        "appended), or else in the log's record of this --batch (their stored "
        "results are written again)",
        rich_help_panel=BATCH,
    ),
]
RayAddress = Annotated[
    str | None,
    typer.Option(
        "--ray",
        metavar="ADDRESS",
        help="Run on a Ray cluster: its address, "
        "`auto` (the one this machine is in) or `local` (one started here); "
        "needs streamkit[ray]",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
RayWorkers = Annotated[
    int | None,
    typer.Option(
        "--ray-workers",
        min=1,
        max=1024,
        help="Ray actors to spread the work over [default: one a node]",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]
BatchName = Annotated[
    str | None,
    typer.Option(
        "--batch",
        help="Name of this batch in the log [default: the --input file's absolute path]",
        rich_help_panel=BATCH,
        show_default=False,
    ),
]


def refuse_output_outside_batch(output_path: Path | None) -> None:
    """``--output`` is where a batch's results go; one reply goes to stdout, and a
    flag that would be silently ignored is refused instead."""
    if output_path is not None:
        raise UsageError(
            f"--output is for --jsonl batches; one reply goes to stdout "
            f"(to write it to a file: > {output_path})"
        )


def refuse_reasoning_view_in_batch(*, hide: bool, show: bool) -> None:
    """How thinking is shown is for a reply on a terminal; a batch record has its own
    ``reasoning`` field, so the flags would change nothing."""
    if hide or show:
        raise UsageError(
            "--jsonl results carry `reasoning` as a field: drop --hide-reasoning / --reasoning"
        )


def refuse_ray_outside_batch(ray: str | None) -> None:
    """``--ray`` spreads a batch's lines over a cluster; one reply has nothing to spread."""
    if ray is not None:
        raise UsageError("--ray is for --jsonl batches (and bench); one reply runs here")


async def run_jsonl(
    *,
    kind: str,
    argument: str | None,
    settings: Settings,
    options: GenerationOptions,
    interrupts: Interrupts,
    input_path: Path | None,
    output_path: Path | None,
    concurrency: int,
    ordered: bool,
    events: bool,
    resume: bool,
    db: Path | None,
    batch_name: str | None = None,
    tools: ToolHops | None = None,
    ray: str | None = None,
    ray_workers: int | None = None,
) -> int:
    """Run a JSONL batch; 0 when every line succeeded, 7 when some failed.

    With ``db``, every line is logged as a conversation of its own, tagged
    with the batch, and ``idempotency_key`` fields replay completed lines.
    ``argument`` is the command's positional argument, which a batch must not have.
    """
    if argument is not None:
        raise UsageError("--jsonl takes its input from stdin or --input, not an argument")
    if batch_name is None and input_path is not None:
        batch_name = str(await trio.Path(input_path).resolve())
    from_log = resume and output_path is None
    if from_log and (db is None or batch_name is None):
        raise UsageError(
            "--resume needs --output FILE, or the log and a batch name "
            "(--input FILE or --batch NAME) to resume from"
        )
    if ray is not None:
        refuse_on_cluster(events=events, from_log=from_log, tools=tools is not None)
    elif ray_workers is not None:
        raise UsageError("--ray-workers is for --ray runs")
    if input_path is None and sys.stdin.isatty():
        raise UsageError("--jsonl reads records from stdin or --input FILE; stdin is a terminal")
    if ray is not None:
        from streamkit.cluster.connect import import_ray  # Ray: only on this path
        from streamkit.cluster.rows import run_on_cluster

        import_ray()  # without the extra, one usage line before any file is touched
        summary = None  # stays None when Ctrl-C ends the run
        async with open_batch_files(input_path, output_path, resume=resume) as files:
            with interrupts.guard() as scope, scope:
                summary = await run_on_cluster(
                    ray,
                    ray_workers,
                    settings,
                    files,
                    output_path,
                    kind=kind,
                    defaults=options,
                    concurrency=concurrency,
                    ordered=ordered,
                    resume=resume,
                    batch_name=batch_name or f"stdin {datetime.datetime.now().isoformat()}",
                )
        return _exit_code(interrupts, summary)
    summary = None
    async with open_batch_files(input_path, output_path, resume=resume, log=db) as files:
        progress = None
        if sys.stderr.isatty():
            from streamkit.sinks.progress import BatchProgress  # rich.progress: terminals only

            progress = BatchProgress(count_lines(input_path) if input_path else None)
        store = await AsyncStore.open(db) if db is not None else None
        replay = None
        if from_log and store is not None:
            done = await store.completed_batch_replies(batch_name)
            replay = {key.encode(): message for key, message in done.items()}
        batch_name = batch_name or f"stdin {datetime.datetime.now().isoformat(timespec='seconds')}"
        try:
            async with open_backend(settings) as backend:
                runner = BatchRunner(
                    backend,
                    files.output,
                    kind=kind,
                    model=settings.model,
                    defaults=options,
                    concurrency=concurrency,
                    ordered=ordered,
                    events=events,
                    skip_ids=files.skip_ids,
                    request_timeout=settings.timeout,
                    progress=progress,
                    store=store,
                    batch_name=batch_name,
                    replay=replay,
                    tools=tools,
                )
                with interrupts.guard() as scope, scope, progress or contextlib.nullcontext():
                    summary = await runner.run(files.source)
        finally:
            if store is not None:
                with trio.CancelScope(shield=True):
                    await store.aclose()
    return _exit_code(interrupts, summary)


def refuse_on_cluster(*, events: bool, from_log: bool, tools: bool = False) -> None:
    """What a cluster batch cannot do, refused rather than silently dropped: the
    nodes cannot reach this machine's log, events would interleave from every node,
    and tools (built-in, command or MCP) run on this machine only."""
    if tools:
        raise UsageError("--tool and --mcp are for one machine; a --ray batch does not run tools")
    if events:
        raise UsageError("--events is for one machine; a --ray batch writes one result a line")
    if from_log:
        raise UsageError(
            "--resume with --ray needs --output FILE (a --ray batch is not "
            "written to the conversation log)"
        )


def _exit_code(interrupts: Interrupts, summary: BatchSummary | None) -> int:
    """Ctrl-C's code, else 7 when some lines failed (``summary`` is None only after Ctrl-C)."""
    if interrupts.exit_code is not None or summary is None:
        return interrupts.exit_code or 1
    if summary.failed:
        error = PartialBatchError(
            f"{summary.failed} of {summary.total} lines failed (see their error records)"
        )
        report(error)
        return error.exit_code
    return 0
