"""``streamkit chat``: one message, or an interactive conversation."""

from __future__ import annotations

import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import typer

from streamkit.cli import batchrun as batch
from streamkit.cli import options as opt
from streamkit.cli import sampling_options as so
from streamkit.cli.complete import read_prompt_argument
from streamkit.cli.mcp import McpConfigs, McpNames, warn
from streamkit.config import resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import reply_exit_code, run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.session import ChatSession
from streamkit.pipeline.tool_hops import ToolHops
from streamkit.protocol.parameters import with_extra_parameters
from streamkit.providers.backend import open_backend
from streamkit.sinks.recorder import open_conversation, replay_or_record
from streamkit.tools.builtins import builtin_tools
from streamkit.tools.confirm import approved_in_advance, confirm_on_terminal
from streamkit.tools.dispatch import DEFAULT_TIMEOUT, Approver, Dispatcher
from streamkit.tools.mcp_config import select_servers
from streamkit.tools.mcp_sources import open_tool_sources
from streamkit.tools.registry import select_tools

TOOLS = "Tools"


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
        typer.Option(
            "--system",
            "-s",
            help="System prompt",
            rich_help_panel=opt.GENERATION,
            show_default=False,
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
    plain: opt.Plain = False,
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
    continue_last: Annotated[
        bool,
        typer.Option(
            "--continue", "-c", help="Continue the last conversation", rich_help_panel=opt.LOG
        ),
    ] = False,
    conversation_id: Annotated[
        str | None,
        typer.Option(
            "--cid",
            help="Continue the conversation with this id (see `logs list`)",
            rich_help_panel=opt.LOG,
            show_default=False,
        ),
    ] = None,
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
    tool_names: Annotated[
        list[str] | None,
        typer.Option(
            "--tool",
            help="Offer this tool to the model (repeatable): a built-in "
            "(now, calculate, read_file) or one from the config file",
            rich_help_panel=TOOLS,
            show_default=False,
        ),
    ] = None,
    tools_files: Annotated[
        list[Path] | None,
        typer.Option(
            "--tools",
            help="Offer every tool of this TOML file (repeatable)",
            rich_help_panel=TOOLS,
            show_default=False,
            dir_okay=False,
        ),
    ] = None,
    mcp_names: McpNames = None,
    mcp_configs: McpConfigs = None,
    tool_choice: Annotated[
        str | None,
        typer.Option(
            "--tool-choice",
            help="Force the first reply to call this tool (or "
            "auto / none / required); later replies are free",
            rich_help_panel=TOOLS,
            show_default=False,
        ),
    ] = None,
    tool_timeout: Annotated[
        float,
        typer.Option(
            "--tool-timeout",
            min=0.001,
            help="Seconds a tool may run (a tool's own `timeout` in the config wins)",
            rich_help_panel=TOOLS,
        ),
    ] = DEFAULT_TIMEOUT,
    max_hops: Annotated[
        int,
        typer.Option(
            "--max-hops",
            min=1,
            help="Replies with tool calls before giving up (exit 9)",
            rich_help_panel=TOOLS,
        ),
    ] = 8,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Run tools marked `confirm` without asking (in a "
            "--jsonl batch, where no one is asked, only with --yes)",
            rich_help_panel=TOOLS,
        ),
    ] = False,
    vi: Annotated[
        bool,
        typer.Option(
            "--vi",
            help='Vi keys in the interactive prompt [config: editing_mode = "vi"]',
            rich_help_panel=opt.OUTPUT,
        ),
    ] = False,
    tool_root: Annotated[
        Path | None,
        typer.Option(
            "--tool-root",
            help="Directory the read_file tool may read [default: the current directory]",
            rich_help_panel=TOOLS,
            show_default=False,
            file_okay=False,
        ),
    ] = None,
) -> None:
    """Chat with a model: stream the reply to MESSAGE, or converse interactively.

    In a conversation, /help lists the commands; /exit or Ctrl-D ends it;
    Ctrl-C stops the reply being written and returns to the prompt (at the
    prompt it clears the line). Alt-Enter adds a line to the message.

    Examples:

      streamkit chat "Name three primes" --max-tokens 32

      git diff | streamkit chat -s "Review this diff" --profile work

      streamkit chat --base-url http://127.0.0.1:8000/v1

      jq -c '{id, prompt: .question}' qs.jsonl | streamkit chat --jsonl > answers.jsonl

      streamkit chat -c "And in French?"

      cmd=$(streamkit chat -x "a bash one-liner that counts lines of *.py")

      streamkit chat --tool calculate --tool now "What is 17% of 2350?"

      streamkit chat --mcp files "Which of my notes mention Trio?"

      streamkit chat "Hi" --top-k 40 --repetition-penalty 1.1 -O chat_template_kwargs='{"x":1}'
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
        interactive = message is None and sys.stdin.isatty() and not (jsonl or input_path)
        extracting = extract or extract_all
        if extracting and interactive:
            raise UsageError(
                "--extract is for one message (give MESSAGE or pipe it), not "
                "the interactive chat: there, /copy N takes a code block"
            )
        display = opt.reply_display(
            settings,
            plain=plain,
            extract=extracting,
            events=events,
            batch=bool(jsonl or input_path),
        )
        tools = select_tools(
            tool_names or [],
            tools_files or [],
            settings.tools,
            builtin_tools(tool_root or Path.cwd()),
        )
        servers = select_servers(mcp_names or [], mcp_configs or [], settings.mcp)
        # An MCP tool's name is known once its server runs: only then can it be checked.
        if tool_choice and not servers and tool_choice not in (*tools, "auto", "none", "required"):
            raise UsageError(f"--tool-choice {tool_choice!r} is not one of the tools offered")
        async with open_tool_sources(servers, warn=warn, debug=settings.debug) as sources:

            def dispatcher(approve: Approver) -> Dispatcher | None:
                if not (tools or sources):
                    return None
                return Dispatcher(tools, approve=approve, timeout=tool_timeout, sources=sources)

            if jsonl or input_path:
                batch.refuse_reasoning_view_in_batch(hide=hide_reasoning, show=show_reasoning)
                # No one to ask in a batch: a tool marked `confirm` runs only with --yes.
                found = dispatcher(partial(approved_in_advance, yes))
                return await batch.run_jsonl(
                    argument=message,
                    kind="chat",
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
                    tools=ToolHops(found, max_hops) if found is not None else None,
                )
            reasoning = opt.reasoning_display(
                settings, hide=hide_reasoning, to_stderr=show_reasoning, events=events
            )
            batch.refuse_output_outside_batch(output_path)
            batch.refuse_ray_outside_batch(ray)
            conversation = open_conversation(
                opt.log_database(db, settings, no_log),
                continue_last=continue_last,
                conversation_id=conversation_id,
                system=system,
            )
            async with open_backend(settings) as backend, conversation as (log, history):
                session = ChatSession(
                    backend,
                    settings,
                    options,
                    history,
                    interrupts=interrupts,
                    log=log,
                    events=events,
                    stats=stats,
                    dispatcher=dispatcher(partial(confirm_on_terminal, yes)),
                    max_hops=max_hops,
                    tool_choice=tool_choice,
                    reasoning=reasoning,
                    display=display,
                )
                if interactive:
                    from streamkit.cli.converse import converse  # the terminal's modules

                    await backend.check_model(settings.model)
                    return await converse(
                        session,
                        interrupts,
                        vi=vi or settings.editing_mode == "vi",
                        keep_history=log is not None,
                    )
                text = await read_prompt_argument(message)
                stored = await replay_or_record(log, request_id)
                if stored is not None:
                    if extracting:
                        opt.print_extracted(stored.content, every=extract_all)
                    else:
                        opt.print_replayed(stored.content, request_id or "")
                    return 0
                reply = await session.ask(text)
        code = reply_exit_code(reply, interrupts)
        if extracting and code == 0 and interrupts.exit_code is None:
            opt.print_extracted(reply.text, every=extract_all)
        return code

    raise typer.Exit(run_command(body))
