"""``streamkit models``: what the server offers, and the preflight check."""

from __future__ import annotations

import typer

from streamkit.cli import options as opt
from streamkit.config import resolve_settings
from streamkit.pipeline.command import run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.providers.backend import open_backend
from streamkit.providers.llama.files import known_local_models


def models(
    model: opt.Model = None,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
) -> None:
    """List the models streamkit can use: NAME, local or remote, and where.

    One tab-separated line a model: the server's models when a base URL is
    configured, then the local GGUF models (the embedded default and those in
    the config file). With --model, check instead that the model is usable --
    the server is reachable and offers it, or the local file loads -- before
    any prompt is sent: a preflight for scripts.

    Examples:

      streamkit models --base-url http://127.0.0.1:8000/v1

      streamkit models --profile work --model gpt-4o-mini && ./run-batch.sh
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
            max_retries=0,
        )
        if model:
            async with open_backend(settings) as backend:
                await backend.check_model(model)
            print(model)
            return 0
        if settings.base_url:
            async with open_backend(settings) as backend:
                for name in await backend.list_models():
                    print(f"{name}\tremote\t{backend.provider}")
        for name, path in known_local_models(settings.local_models):
            print(f"{name}\tlocal\t{path}")
        return 0

    raise typer.Exit(run_command(body))
