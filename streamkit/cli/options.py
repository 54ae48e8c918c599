"""Options shared by several commands, declared once."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from streamkit.config import Settings, load_config
from streamkit.errors import NothingToExtract, StreamkitError, UsageError
from streamkit.protocol.markdown_blocks import code_blocks
from streamkit.protocol.records import RANGES
from streamkit.providers.llama.files import known_local_models
from streamkit.request import GenerationOptions
from streamkit.sinks.printer import Display, ReasoningView, reasoning_view, text_display
from streamkit.store.database import default_db_path

CONNECTION = "Connection"
GENERATION = "Generation"
OUTPUT = "Output"

BaseURL = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        help="OpenAI-compatible API root, e.g. http://127.0.0.1:8000/v1 "
        "[env: STREAMKIT_BASE_URL, OPENAI_BASE_URL]",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
APIKey = Annotated[
    str | None,
    typer.Option(
        "--api-key",
        help="API key [env: STREAMKIT_API_KEY, OPENAI_API_KEY]; never printed or logged",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]


def _complete_profile(incomplete: str) -> list[str]:
    try:
        names = load_config().profiles
    except StreamkitError:
        return []
    return [name for name in names if name.startswith(incomplete)]


def _complete_model(incomplete: str) -> list[str]:
    try:
        configured = load_config().models
    except StreamkitError:
        configured = {}
    return [name for name, _ in known_local_models(configured) if name.startswith(incomplete)]


Profile = Annotated[
    str | None,
    typer.Option(
        "--profile",
        "-p",
        autocompletion=_complete_profile,
        help="Named profile from the config file [env: STREAMKIT_PROFILE]",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Model = Annotated[
    str | None,
    typer.Option(
        "--model",
        "-m",
        autocompletion=_complete_model,
        help="Model name [env: STREAMKIT_MODEL]",
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
ConnectTimeout = Annotated[
    float | None,
    typer.Option(
        help="Seconds to wait for the connection [default: 10]",
        min=0.001,
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
IdleTimeout = Annotated[
    float | None,
    typer.Option(
        help="Seconds without any data from the server before giving up [default: 120]",
        min=0.001,
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
Timeout = Annotated[
    float | None,
    typer.Option(
        help="Seconds for the whole reply, retries included [default: none]",
        min=0.001,
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
MaxRetries = Annotated[
    int | None,
    typer.Option(
        help="Retries of a failed request before any output [default: 2]",
        min=0,
        rich_help_panel=CONNECTION,
        show_default=False,
    ),
]
MaxTokens = Annotated[
    int | None,
    typer.Option(
        "--max-tokens",
        "-n",
        min=RANGES["max_tokens"].low,
        help="Most tokens to generate",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
Temperature = Annotated[
    float | None,
    typer.Option(
        "--temperature",
        "-t",
        min=RANGES["temperature"].low,
        help="Sampling temperature",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
TopP = Annotated[
    float | None,
    typer.Option(
        min=RANGES["top_p"].low,
        max=RANGES["top_p"].high,
        help="Nucleus sampling mass",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
Seed = Annotated[
    int | None,
    typer.Option(
        help="Sampling seed, for repeatable output", rich_help_panel=GENERATION, show_default=False
    ),
]
Stop = Annotated[
    list[str] | None,
    typer.Option(help="Stop sequence (repeatable)", rich_help_panel=GENERATION, show_default=False),
]
Logprobs = Annotated[
    int | None,
    typer.Option(
        "--logprobs",
        min=0,
        max=20,
        help="Log-probability of each token, and of "
        "the N best alternatives (0: the token's own); shown with --events",
        rich_help_panel=GENERATION,
        show_default=False,
    ),
]
Events = Annotated[
    bool,
    typer.Option(
        "--events",
        help="Print the event stream as JSON lines instead of text",
        rich_help_panel=OUTPUT,
    ),
]


def generation_options(
    max_tokens: int | None,
    temperature: float | None,
    top_p: float | None,
    seed: int | None,
    stop: list[str] | None,
    logprobs: int | None = None,
) -> GenerationOptions:
    return GenerationOptions(
        max_tokens=max_tokens,
        temperature=temperature,
        top_p=top_p,
        seed=seed,
        stop=tuple(stop or ()),
        logprobs=logprobs,
    )


HideReasoning = Annotated[
    bool,
    typer.Option(
        "--hide-reasoning",
        help="Do not show a reasoning model's thinking [config: show_reasoning = false]",
        rich_help_panel=OUTPUT,
    ),
]
ShowReasoning = Annotated[
    bool,
    typer.Option(
        "--reasoning",
        help="Show the thinking on stderr when stdout is not a "
        "terminal (stdout keeps the answer alone)",
        rich_help_panel=OUTPUT,
    ),
]


def reasoning_display(
    settings: Settings, *, hide: bool, to_stderr: bool, events: bool
) -> ReasoningView | None:
    """Where a reasoning model's thinking is shown, from the flags and the config."""
    if hide and to_stderr:
        raise UsageError("--hide-reasoning and --reasoning contradict each other")
    if events and (hide or to_stderr):
        raise UsageError(
            "--events carries reasoning as its own events: drop "
            f"{'--hide-reasoning' if hide else '--reasoning'}"
        )
    return reasoning_view(show=settings.show_reasoning and not hide, to_stderr=to_stderr)


Stats = Annotated[
    bool,
    typer.Option(
        "--stats",
        help="After each reply, print time to first token and tokens/s on stderr",
        rich_help_panel=OUTPUT,
    ),
]
LOG = "Conversation log"
Database = Annotated[
    Path | None,
    typer.Option(
        "--db",
        help="Log database [env: STREAMKIT_DB; default: in the user data dir]",
        rich_help_panel=LOG,
        show_default=False,
        dir_okay=False,
    ),
]
NoLog = Annotated[
    bool,
    typer.Option(
        "--no-log", help="Do not write this run to the conversation log", rich_help_panel=LOG
    ),
]


def log_database(flag: Path | None, settings: Settings, no_log: bool) -> Path | None:
    """The log database to write to, or None when logging is off (``--no-log``, config)."""
    return database_path(flag, settings) if settings.log and not no_log else None


def database_path(flag: Path | None, settings: Settings) -> Path:
    """``--db``, else ``$STREAMKIT_DB``, else the config's ``db``, else the default."""
    if flag is not None:
        return flag
    if os.environ.get("STREAMKIT_DB"):
        return Path(os.environ["STREAMKIT_DB"])
    return Path(settings.db).expanduser() if settings.db else default_db_path()


RequestId = Annotated[
    str | None,
    typer.Option(
        "--request-id",
        help="Idempotency key: if a request with this key already "
        "completed, print its stored reply instead of asking the model again",
        rich_help_panel=LOG,
        show_default=False,
    ),
]


def print_replayed(text: str, key: str) -> None:
    """A replayed reply: the stored text on stdout, a notice on stderr."""
    sys.stdout.write(text if text.endswith("\n") else text + "\n")
    sys.stdout.flush()
    print(f"streamkit: replayed the stored reply of request {key!r}", file=sys.stderr)


Plain = Annotated[
    bool,
    typer.Option(
        "--plain",
        "--no-markdown",
        help="Print the reply as it comes, not drawn "
        "as Markdown on a terminal [config: markdown = false]",
        rich_help_panel=OUTPUT,
    ),
]
Extract = Annotated[
    bool,
    typer.Option(
        "--extract",
        "-x",
        help="Print only the reply's first fenced code block (exit 14 if it has none)",
        rich_help_panel=OUTPUT,
    ),
]
ExtractAll = Annotated[
    bool,
    typer.Option(
        "--extract-all",
        help="Print only the reply's fenced code blocks, all of them, one after the other",
        rich_help_panel=OUTPUT,
    ),
]


def reply_display(
    settings: Settings | None, *, plain: bool, extract: bool, events: bool, batch: bool
) -> Display:
    """How the reply's text is shown; ``settings`` is None where Markdown never applies
    (``complete`` continues text, it does not answer in Markdown)."""
    if extract and (events or batch):
        raise UsageError(
            f"--extract prints code from the reply's text: it cannot apply "
            f"to {'--events' if events else '--jsonl'}"
        )
    if plain and (events or batch):
        raise UsageError(
            f"--plain is about the reply drawn on a terminal: it cannot "
            f"apply to {'--events' if events else '--jsonl'}"
        )
    if extract:
        return "none"
    return text_display(markdown=settings is not None and settings.markdown and not plain)


def print_extracted(text: str, *, every: bool) -> None:
    """The reply's first fenced code block (or all of them), each ending on a newline."""
    blocks = code_blocks(text)
    if not blocks:
        raise NothingToExtract(
            "the reply has no fenced code block to extract (the log "
            "keeps the whole reply: streamkit logs show)"
        )
    chosen = blocks if every else blocks[:1]
    sys.stdout.write("".join(block + "\n" for block in chosen))
    sys.stdout.flush()
