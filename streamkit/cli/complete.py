"""``streamkit complete``: one prompt to the completions endpoint."""

from __future__ import annotations

import sys
from typing import Annotated

import trio
import typer

from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli import sampling_options as so
from streamkit.config import resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import reply_exit_code, run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.turn import stream_turn
from streamkit.protocol.parameters import parse_id_list, with_extra_parameters
from streamkit.providers.backend import open_backend
from streamkit.request import GenerationRequest
from streamkit.sinks.recorder import logged_prompt, open_conversation, replay_or_record


def complete(
    prompt: Annotated[
        str | None,
        typer.Argument(
            help="Text to continue; '-' or nothing with piped stdin reads stdin", show_default=False
        ),
    ] = None,
    model: opt.Model = None,
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = None,
    top_p: opt.TopP = None,
    seed: opt.Seed = None,
    stop: opt.Stop = None,
    logprobs: opt.Logprobs = None,
    events: opt.Events = False,
    extract: opt.Extract = False,
    extract_all: opt.ExtractAll = False,
    hide_reasoning: opt.HideReasoning = False,
    show_reasoning: opt.ShowReasoning = False,
    stats: opt.Stats = False,
    jsonl: batch.JSONL = False,
    input_path: batch.InputFile = None,
    output_path: batch.OutputFile = None,
    concurrency: batch.Concurrency = 8,
    unordered: batch.Unordered = False,
    resume: batch.Resume = False,
    batch_name: batch.BatchName = None,
    ray: batch.RayAddress = None,
    ray_workers: batch.RayWorkers = None,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
    timeout: opt.Timeout = None,
    max_retries: opt.MaxRetries = None,
    db: opt.Database = None,
    no_log: opt.NoLog = False,
    request_id: opt.RequestId = None,
    top_k: so.TopK = None,
    min_p: so.MinP = None,
    repetition_penalty: so.RepetitionPenalty = None,
    stop_token_ids: so.StopTokenIds = None,
    priority: so.Priority = None,
    option_pairs: so.OptionPairs = None,
    extra: so.Extra = None,
    return_token_ids: so.ReturnTokenIds = False,
    debug: so.Debug = False,
    schema: so.SchemaText = None,
    schema_multi: so.SchemaMulti = False,
    prompt_ids: so.PromptIds = None,
) -> None:
    """Continue PROMPT with the completions endpoint, streaming the text to stdout.

    Examples:

      streamkit complete "The capital of France is" -n 16

      echo "Once upon a time" | streamkit complete --seed 1 --events | jq -c .

      streamkit complete --jsonl -i prompts.jsonl -o results.jsonl --resume -j 16

      streamkit complete --prompt-ids 504,3575,282 --return-token-ids --events

      streamkit complete "Once" --top-k 20 --min-p 0.05 -O ignore_eos=true
    """

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile,
            base_url=base_url,
            api_key=api_key,
            model=model,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            timeout=timeout,
            max_retries=max_retries,
            debug=debug,
        )
        options = opt.generation_options(max_tokens, temperature, top_p, seed, stop, logprobs)
        options = with_extra_parameters(
            options,
            top_k=top_k,
            min_p=min_p,
            repetition_penalty=repetition_penalty,
            stop_token_ids=stop_token_ids,
            priority=priority,
            extra=extra,
            option_pairs=option_pairs or (),
            return_token_ids=return_token_ids,
            schema=schema,
            schema_multi=schema_multi,
        )
        ids = parse_id_list(prompt_ids, "--prompt-ids")
        if ids and (prompt is not None or jsonl or input_path):
            raise UsageError(
                "--prompt-ids is the prompt: give no PROMPT argument, and in "
                "--jsonl records use the `prompt_ids` field"
            )
        extracting = extract or extract_all
        display = opt.reply_display(
            None, plain=False, extract=extracting, events=events, batch=bool(jsonl or input_path)
        )
        if jsonl or input_path:
            batch.refuse_reasoning_view_in_batch(hide=hide_reasoning, show=show_reasoning)
            return await batch.run_jsonl(
                argument=prompt,
                kind="completion",
                settings=settings,
                options=options,
                interrupts=interrupts,
                input_path=input_path,
                output_path=output_path,
                concurrency=concurrency,
                ordered=not unordered,
                events=events,
                resume=resume,
                db=opt.log_database(db, settings, no_log),
                batch_name=batch_name,
                ray=ray,
                ray_workers=ray_workers,
            )
        reasoning = opt.reasoning_display(
            settings, hide=hide_reasoning, to_stderr=show_reasoning, events=events
        )
        batch.refuse_output_outside_batch(output_path)
        batch.refuse_ray_outside_batch(ray)
        text = "" if ids else await read_prompt_argument(prompt)
        request = GenerationRequest(
            "completion", settings.model, options, prompt=text, prompt_ids=ids
        )
        conversation = open_conversation(opt.log_database(db, settings, no_log))
        async with open_backend(settings) as backend, conversation as (log, _):
            stored = await replay_or_record(log, request_id)
            if stored is not None:
                if extracting:
                    opt.print_extracted(stored.content, every=extract_all)
                else:
                    opt.print_replayed(stored.content, request_id or "")
                return 0
            with interrupts.guard(settings.timeout) as reply_scope:
                reply = await stream_turn(
                    backend,
                    request,
                    stop=reply_scope,
                    events=events,
                    stats=stats,
                    log=log,
                    prompt_text=logged_prompt(request),
                    reasoning=reasoning,
                    display=display,
                )
        code = reply_exit_code(reply, interrupts)
        if extracting and code == 0 and interrupts.exit_code is None:
            opt.print_extracted(reply.text, every=extract_all)
        return code

    raise typer.Exit(run_command(body))


async def read_prompt_argument(value: str | None) -> str:
    """The argument, or all of stdin when it is ``-`` or absent and stdin is piped."""
    if value is not None and value != "-":
        return value
    if value is None and sys.stdin.isatty():
        raise UsageError("no prompt: give one as an argument or pipe it on stdin")
    return await trio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
