"""``streamkit config``: where the config file is, what it says, and a starter file."""

from __future__ import annotations

import sys
from typing import Annotated, Any

import msgspec
import typer

from streamkit.config import config_path, load_config
from streamkit.errors import UsageError
from streamkit.pipeline.command import run_blocking_command

config_app = typer.Typer(
    name="config", help="The config file: profiles, local models, tools.", no_args_is_help=True
)

EXAMPLE = """\
# streamkit configuration. Flags beat environment variables, which beat this file.

# The profile used when --profile and $STREAMKIT_PROFILE are not given.
# default_profile = "local-server"

# Keep every prompt and reply in the conversation log (streamkit logs --help).
log = true
# db = "~/streamkit-logs.db"

[profiles.local-server]
base_url = "http://127.0.0.1:8000/v1"
model = "smollm2"
idle_timeout = 60

[profiles.hosted]
base_url = "https://api.example.com/v1"
api_key_env = "EXAMPLE_API_KEY"   # read the key from this variable
model = "some-model"

# Local GGUF files, usable as --model NAME when no base URL is set.
[models]
# tiny = "~/models/tiny-q4_k_m.gguf"

# A tool the model may call when you pass --tool shout.
[tools.shout]
description = "Repeat a text in capitals"
parameters = { type = "object", properties = { text = { type = "string" } }, required = ["text"] }
command = ["python3", "-c", "import json, sys; print(json.load(sys.stdin)['text'].upper())"]
confirm = false
"""


@config_app.command("path")
def path() -> None:
    """Print where the config file is (or would be).

    Examples:

      streamkit config path

      $EDITOR "$(streamkit config path)"
    """
    print(config_path())


@config_app.command("show")
def show() -> None:
    """Print the config file as streamkit reads it, secrets masked.

    Examples:

      streamkit config show
    """

    def body() -> None:
        config = _without_nulls(msgspec.to_builtins(load_config()))
        for profile in config.get("profiles", {}).values():
            if profile.get("api_key"):
                profile["api_key"] = "***"
        for server in config.get("mcp", {}).values():  # tokens live in headers and env
            for table in ("headers", "env"):
                server[table] = dict.fromkeys(server.get(table) or {}, "***")
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(config)) + b"\n")

    raise typer.Exit(run_blocking_command(body))


@config_app.command("init")
def init(
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file")] = False,
) -> None:
    """Write a commented example config file (a profile, a local model, a tool).

    Examples:

      streamkit config init && streamkit config show
    """

    def body() -> None:
        target = config_path()
        if target.exists() and not force:
            raise UsageError(f"{target} exists; use --force to overwrite it")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(EXAMPLE)
        print(target)

    raise typer.Exit(run_blocking_command(body))


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    return value
