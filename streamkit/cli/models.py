"""``streamkit models``: what the server offers, and the preflight check."""

from __future__ import annotations

import typer

from streamkit.backend import open_backend
from streamkit.cli import options as opt
from streamkit.cli.runner import run_command
from streamkit.config import resolve_settings
from streamkit.interrupts import Interrupts


def models(
    model: opt.Model = None,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
) -> None:
    """List the models the server offers, one per line.

    With --model, check instead that the server is reachable and offers that
    model (exit 0), before any prompt is sent: a preflight for scripts.

    Examples:

      streamkit models --base-url http://127.0.0.1:8000/v1

      streamkit models --profile work --model gpt-4o-mini && ./run-batch.sh
    """

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile, base_url=base_url, api_key=api_key, model=model,
            connect_timeout=connect_timeout, idle_timeout=idle_timeout, timeout=None,
            max_retries=0,
        )
        async with open_backend(settings) as backend:
            if model:
                await backend.check_model(model)
                print(model)
            else:
                for name in await backend.list_models():
                    print(name)
        return 0

    raise typer.Exit(run_command(body))
