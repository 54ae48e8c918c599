"""``streamkit score``: how likely is this text (after this context) under the model."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli.complete import read_prompt_argument
from streamkit.config import Settings, resolve_settings
from streamkit.errors import ProtocolError, UsageError
from streamkit.pipeline.batch_files import open_batch_files
from streamkit.pipeline.command import report, run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.score import open_scorer, score_jsonl
from streamkit.protocol.scoring import ScoreResult, parse_range
from streamkit.protocol.urls import public_url


def score(
    text: Annotated[
        str | None, typer.Argument(help="Text to score ('-' reads stdin)", show_default=False)
    ] = None,
    context: Annotated[
        str, typer.Option("--context", "-C", help="Score TEXT as a continuation of this")
    ] = "",
    model: opt.Model = None,
    top: Annotated[
        int,
        typer.Option("--top", min=0, max=20, help="Also show the N likeliest tokens per position"),
    ] = 0,
    ranges: Annotated[
        list[str] | None,
        typer.Option(
            "--range",
            help="START:END character offsets of TEXT to sum over (repeatable)",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object")] = False,
    jsonl: batch.JSONL = False,
    input_path: batch.InputFile = None,
    output_path: batch.OutputFile = None,
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-j",
            min=1,
            max=256,
            help="Requests in flight at once (a server; a local model scores one text at a time)",
            rich_help_panel=batch.BATCH,
        ),
    ] = 4,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Skip ids already scored in --output FILE (the rest is appended)",
            rich_help_panel=batch.BATCH,
        ),
    ] = False,
    ray: batch.RayAddress = None,
    ray_workers: batch.RayWorkers = None,
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
            profile=profile,
            base_url=base_url,
            api_key=api_key,
            model=model,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            timeout=None,
            max_retries=max_retries,
        )
        spans = [parse_range(r) for r in ranges or ()]
        if jsonl or input_path:
            if text is not None:
                raise UsageError("--jsonl takes its texts from the input, not an argument")
            if resume and output_path is None:
                raise UsageError("--resume needs --output FILE")
            if ray is not None:
                return await _score_on_cluster(
                    ray,
                    ray_workers,
                    settings,
                    top,
                    input_path,
                    output_path,
                    resume,
                    concurrency,
                    interrupts,
                )
            if ray_workers is not None:
                raise UsageError("--ray-workers is for --ray runs")
            async with (
                open_batch_files(input_path, output_path, resume=resume) as files,
                open_scorer(settings) as scorer,
            ):
                code = await score_jsonl(
                    scorer,
                    top,
                    files,
                    input_path,
                    concurrency if settings.base_url else 1,
                    interrupts,
                )
                return _untrusted(scorer.problem, settings.base_url) or code
        batch.refuse_output_outside_batch(output_path)
        batch.refuse_ray_outside_batch(ray)
        value = await read_prompt_argument(text)
        async with open_scorer(settings) as scorer:
            with interrupts.guard() as scope, scope:
                result = await scorer.score(None, context, value, top=top, ranges=spans)
            if scope.cancelled_caught:
                return 0
            if as_json:
                sys.stdout.buffer.write(msgspec.json.encode(result) + b"\n")
            else:
                _print_table(result)
            return _untrusted(scorer.problem, settings.base_url)

    raise typer.Exit(run_command(body))


async def _score_on_cluster(
    ray: str,
    ray_workers: int | None,
    settings: Settings,
    top: int,
    input_path: Path | None,
    output_path: Path | None,
    resume: bool,
    concurrency: int,
    interrupts: Interrupts,
) -> int:
    """``score --jsonl --ray``: the same batch, each text scored on a node of the cluster."""
    from streamkit.cluster.connect import import_ray  # Ray: only on this path
    from streamkit.cluster.score import score_on_cluster

    import_ray()  # without the extra, one usage line before any file is touched
    async with open_batch_files(input_path, output_path, resume=resume) as files:
        code, problem = await score_on_cluster(
            ray, ray_workers, settings, top, files, concurrency, interrupts
        )
    return _untrusted(problem, settings.base_url) or code


def _untrusted(problem: str | None, base_url: str | None) -> int:
    """Exit code (and a line on stderr) for a server whose scores failed the check."""
    if problem is None:
        return 0
    error = ProtocolError(
        f"{public_url(base_url or '')}: scores not trusted (each result says "
        f'"trusted": false): {problem}'
    )
    report(error)
    return error.exit_code


def _print_table(result: ScoreResult) -> None:
    for index, (token, logprob) in enumerate(
        zip(result.tokens, result.token_logprobs, strict=True)
    ):
        line = f"{logprob:10.4f}  {token!r}"
        if result.top_logprobs:
            alternatives = ", ".join(
                f"{t!r} {v:.2f}" for t, v in result.top_logprobs[index].items()
            )
            line += f"    [{alternatives}]"
        print(line)
    print(
        f"sum {result.logprob:.4f} over {result.n_tokens} tokens, perplexity "
        f"{result.perplexity:.3f}, greedy: {'yes' if result.is_greedy else 'no'}"
    )
    for span in result.ranges or ():
        print(
            f"range {span['start']}:{span['end']}: {span['logprob']:.4f} "
            f"over {span['n_tokens']} tokens"
        )
