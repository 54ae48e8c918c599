"""``streamkit chat``: one message, or an interactive conversation."""

from __future__ import annotations

import signal
import sys
from typing import Annotated

import msgspec
import trio
import typer

from streamkit.backend import Backend, open_backend
from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli.complete import read_prompt_argument
from streamkit.cli.runner import report, run_command
from streamkit.config import Settings, resolve_settings
from streamkit.errors import UsageError
from streamkit.history import fit_history
from streamkit.interrupts import Interrupts
from streamkit.request import GenerationOptions, GenerationRequest, Message
from streamkit.sinks.store import ConversationLog, open_conversation
from streamkit.turn import stream_turn

EXIT_COMMANDS = {"/exit", "/quit"}


def chat(
    message: Annotated[
        str | None,
        typer.Argument(
            help="Message to send; without one, stdin is read when piped, "
            "else an interactive conversation starts",
            show_default=False,
        ),
    ] = None,
    system: Annotated[
        str | None,
        typer.Option("--system", "-s", help="System prompt", rich_help_panel=opt.GENERATION,
                     show_default=False),
    ] = None,
    model: opt.Model = None,
    max_tokens: opt.MaxTokens = None,
    temperature: opt.Temperature = None,
    top_p: opt.TopP = None,
    seed: opt.Seed = None,
    stop: opt.Stop = None,
    events: opt.Events = False,
    stats: opt.Stats = False,
    jsonl: batch.JSONL = False,
    input_path: batch.InputFile = None,
    output_path: batch.OutputFile = None,
    concurrency: batch.Concurrency = 8,
    unordered: batch.Unordered = False,
    resume: batch.Resume = False,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
    timeout: opt.Timeout = None,
    max_retries: opt.MaxRetries = None,
    continue_last: Annotated[
        bool,
        typer.Option("--continue", "-c", help="Continue the last conversation",
                     rich_help_panel=opt.LOG),
    ] = False,
    conversation_id: Annotated[
        str | None,
        typer.Option("--cid", help="Continue the conversation with this id (see `logs list`)",
                     rich_help_panel=opt.LOG, show_default=False),
    ] = None,
    db: opt.Database = None,
    no_log: opt.NoLog = False,
) -> None:
    """Chat with a model: stream the reply to MESSAGE, or converse interactively.

    In a conversation, /exit or Ctrl-D ends it; Ctrl-C stops the reply being
    written and returns to the prompt (Ctrl-C at the prompt exits).

    Examples:

      streamkit chat "Name three primes" --max-tokens 32

      git diff | streamkit chat -s "Review this diff" --profile work

      streamkit chat --base-url http://127.0.0.1:8000/v1

      jq -c '{id, prompt: .question}' qs.jsonl | streamkit chat --jsonl > answers.jsonl

      streamkit chat -c "And in French?"
    """

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile, base_url=base_url, api_key=api_key, model=model,
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, timeout=timeout,
            max_retries=max_retries,
        )
        options = opt.generation_options(max_tokens, temperature, top_p, seed, stop)
        if jsonl or input_path:
            if message is not None:
                raise UsageError("--jsonl takes its messages from the input, not an argument")
            return await batch.run_jsonl(
                kind="chat", settings=settings, options=options, interrupts=interrupts,
                input_path=input_path, output_path=output_path, concurrency=concurrency,
                ordered=not unordered, events=events, resume=resume,
            )
        conversation = open_conversation(
            opt.database_path(db, settings), enabled=settings.log and not no_log,
            continue_last=continue_last, conversation_id=conversation_id, system=system,
        )
        async with open_backend(settings) as backend, conversation as (log, history):
            if message is None and sys.stdin.isatty():
                await backend.check_model(settings.model)
                return await _converse(backend, settings, options, history, log=log,
                                       interrupts=interrupts, events=events, stats=stats)
            text = await read_prompt_argument(message)
            history.append(Message("user", text))
            request = await fitted_request(backend, settings.model, options, history)
            with interrupts.guard(settings.timeout) as reply_scope:
                reply = await stream_turn(
                    backend, request, stop=reply_scope, events=events, stats=stats,
                    log=log, prompt_text=text,
                )
        error = reply.exception()
        if error is not None and interrupts.exit_code is None:
            report(error)
            return error.exit_code
        return 0

    raise typer.Exit(run_command(body))


async def _converse(
    backend: Backend,
    settings: Settings,
    options: GenerationOptions,
    history: list[Message],
    *,
    log: ConversationLog | None,
    interrupts: Interrupts,
    events: bool,
    stats: bool,
) -> int:
    """The interactive loop: history in memory, every turn in the log."""
    print("Chatting. /exit or Ctrl-D to end; Ctrl-C stops a reply.", file=sys.stderr)
    while True:
        sys.stderr.write("> ")
        sys.stderr.flush()
        with interrupts.guard() as scope, scope:
            line = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
        if interrupts.exit_code is not None:
            sys.stderr.write("\n")
            return interrupts.exit_code
        if not line:  # Ctrl-D
            sys.stderr.write("\n")
            return 0
        text = line.rstrip("\n")
        if text.strip() in EXIT_COMMANDS:
            return 0
        if not text.strip():
            continue
        history.append(Message("user", text))
        request = await fitted_request(backend, settings.model, options, history)
        with interrupts.guard(settings.timeout) as reply_scope:
            reply = await stream_turn(
                backend, request, stop=reply_scope, events=events, stats=stats,
                log=log, prompt_text=text,
            )
        if reply.text:
            history.append(Message("assistant", reply.text))
        else:
            history.pop()  # nothing came back: let the user ask again
        error = reply.exception()
        if error is not None:
            report(error)
        if interrupts.exit_code is not None:
            if interrupts.signum != signal.SIGINT:  # SIGTERM ends the conversation
                return interrupts.exit_code
            interrupts.forget()


async def fitted_request(
    backend: Backend, model: str | None, options: GenerationOptions, history: list[Message]
) -> GenerationRequest:
    """The chat request for ``history``, its oldest turns dropped if the model needs it.

    ``history`` itself keeps everything (it is what the log and later turns
    see); only what is sent shrinks, and the user is told.
    """
    request = GenerationRequest("chat", model, options, messages=tuple(history))
    budget = await backend.context_budget(request)
    if budget is None:
        return request
    limit, count = budget
    messages, dropped = fit_history(history, limit, count)
    if dropped:
        print(f"streamkit: the conversation is longer than the context window; "
              f"sending it without its {dropped} oldest message(s)", file=sys.stderr)
    return msgspec.structs.replace(request, messages=tuple(messages))
