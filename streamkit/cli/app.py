"""The ``streamkit`` Typer application: commands grouped by job."""

from __future__ import annotations

import os
import platform
from typing import Annotated

import typer

from streamkit import __version__
from streamkit.cli.bench import bench_app
from streamkit.cli.chat import chat
from streamkit.cli.complete import complete
from streamkit.cli.config_cmd import config_app
from streamkit.cli.logs import logs_app
from streamkit.cli.mcp import mcp_app
from streamkit.cli.models import models
from streamkit.cli.relay import relay
from streamkit.cli.replay import replay
from streamkit.cli.score import score

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


app.command(rich_help_panel="Generate")(chat)
app.command(rich_help_panel="Generate")(complete)
app.command(rich_help_panel="Evaluate")(score)
app.command(rich_help_panel="Servers and models")(models)
app.command(rich_help_panel="Servers and models")(relay)
app.add_typer(mcp_app, rich_help_panel="Servers and models")
app.add_typer(bench_app, rich_help_panel="Evaluate")
app.add_typer(logs_app, rich_help_panel="Conversation log")
app.command(rich_help_panel="Conversation log")(replay)
app.add_typer(config_app, rich_help_panel="Settings")
