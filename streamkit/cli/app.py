"""The ``streamkit`` Typer application: commands grouped by job."""

from __future__ import annotations

import importlib
import os
import platform
from collections.abc import Sequence
from typing import Annotated

import typer

from streamkit import __version__

EXIT_CODES = """Exit codes: 0 ok, 1 other failure, 2 usage, 3 cannot connect,
4 HTTP error, 5 timeout, 6 protocol error, 7 batch with failed lines,
8 model error, 9 tool hop limit, 10 reply not valid against --schema,
11 the log failed (the reply was delivered), 12 output not writable,
13 an MCP server failed (mcp list, mcp call), 14 no code block to --extract,
15 the Ray cluster failed, 130 Ctrl-C, 141 stdout closed, 143 SIGTERM."""

app = typer.Typer(
    name="streamkit",
    help="Stream language-model output from the command line.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def disable_colour_if_asked(argv: list[str]) -> None:
    """``NO_COLOR`` (any value) or ``--no-color``: no ANSI styling at all, help included.

    Set before Typer parses anything, because ``--help`` is rendered while
    parsing, before any callback could react to ``--no-color``.
    """
    if os.environ.get("NO_COLOR") or "--no-color" in argv:
        # Imported only here: typer loads its rich help (and rich's Markdown)
        # only to draw help or an error, not on every run.
        from typer import rich_utils

        os.environ["NO_COLOR"] = "1"
        rich_utils.COLOR_SYSTEM = None


def _version(value: bool) -> None:
    if not value:
        return
    from streamkit.providers.llama.files import llama_cpp_status

    local = llama_cpp_status()
    print(f"streamkit {__version__}\nPython {platform.python_version()}\n{local}")
    raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            callback=_version,
            is_eager=True,
            help="Show versions (streamkit, Python, llama-cpp-python) and exit",
        ),
    ] = False,
    no_color: Annotated[
        bool, typer.Option("--no-color", help="No colour, even on a terminal [env: NO_COLOR]")
    ] = False,
) -> None:
    """Stream language-model output from the command line."""
    # --no-color itself is acted on in disable_colour_if_asked, before parsing.


# Every command: (module, attribute, help panel), in the order help lists them.
# Functions are commands; Typer apps are groups of subcommands.
COMMANDS: dict[str, tuple[str, str, str]] = {
    "chat": ("streamkit.cli.chat", "chat", "Generate"),
    "complete": ("streamkit.cli.complete", "complete", "Generate"),
    "score": ("streamkit.cli.score", "score", "Evaluate"),
    "models": ("streamkit.cli.models", "models", "Servers and models"),
    "relay": ("streamkit.cli.relay", "relay", "Servers and models"),
    "replay": ("streamkit.cli.replay", "replay", "Conversation log"),
    "mcp": ("streamkit.cli.mcp", "mcp_app", "Servers and models"),
    "bench": ("streamkit.cli.bench", "bench_app", "Evaluate"),
    "logs": ("streamkit.cli.logs", "logs_app", "Conversation log"),
    "config": ("streamkit.cli.config_cmd", "config_app", "Settings"),
}


def named_command(argv: Sequence[str]) -> str | None:
    """The command ``argv`` runs, if it names one before any help flag."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            return arg if arg in COMMANDS else None
    return None


def register(names: Sequence[str]) -> None:
    """Add these commands to ``app``, importing each one's module."""
    for name in names:
        module, attribute, panel = COMMANDS[name]
        target = getattr(importlib.import_module(module), attribute)
        if isinstance(target, typer.Typer):
            app.add_typer(target, name=name, rich_help_panel=panel)
        else:
            app.command(name, rich_help_panel=panel)(target)


def app_for(argv: Sequence[str]) -> typer.Typer:
    """``app`` with the one command ``argv`` runs, or with all of them.

    Why: Typer builds a Click command, with every option, for each registered
    command at every start, and each command's module pulls in its own
    imports; a run needs only its own (about 50 ms less start-up, which a
    JSONL pipeline pays per call). Help, completion and an unknown or missing
    command get every command, so their listings and suggestions are whole.
    """
    if not app.registered_commands and not app.registered_groups:
        name = named_command(argv)
        register([name] if name else list(COMMANDS))
    return app
