"""The ``streamkit`` Typer application: commands grouped by job."""

from __future__ import annotations

import typer

from streamkit.cli.chat import chat
from streamkit.cli.complete import complete
from streamkit.cli.logs import logs_app
from streamkit.cli.models import models

app = typer.Typer(
    name="streamkit",
    help="Stream language-model output from the command line.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

app.command(rich_help_panel="Generate")(chat)
app.command(rich_help_panel="Generate")(complete)
app.command(rich_help_panel="Servers and models")(models)
app.add_typer(logs_app, rich_help_panel="Conversation log")
