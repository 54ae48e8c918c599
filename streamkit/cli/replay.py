"""``streamkit replay``: send a failed request's stored body again and stream the answer."""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Annotated

import msgspec
import trio
import typer

from streamkit.cli import options as opt
from streamkit.cli import sampling_options as so
from streamkit.config import resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import reply_exit_code, run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.turn import print_stream
from streamkit.providers.backend import open_backend
from streamkit.store.database import Store
from streamkit.store.records import FailedRequest
from streamkit.store.replay import replay_body, replay_target


def replay(
    request_id: Annotated[
        int,
        typer.Argument(
            help="A failed request's id (see `streamkit logs list --failed`)", show_default=False
        ),
    ],
    base_url: opt.BaseURL = None,
    model: Annotated[
        str | None,
        typer.Option(
            "--model",
            "-m",
            help="Ask this model instead (the one field changed in the body)",
            rich_help_panel=opt.CONNECTION,
            show_default=False,
        ),
    ] = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    idle_timeout: opt.IdleTimeout = None,
    timeout: opt.Timeout = None,
    max_retries: opt.MaxRetries = None,
    events: opt.Events = False,
    stats: opt.Stats = False,
    debug: so.Debug = False,
    db: opt.Database = None,
) -> None:
    """Send the body of failed request REQUEST_ID again, byte for byte, and stream the answer.

    It goes to the server that failed unless --base-url names another; the API
    key comes from the usual settings (it is never stored).

    Examples:

      streamkit logs list --failed

      streamkit replay 42 --debug

      streamkit replay 42 --base-url http://127.0.0.1:8000/v1 --model smollm2 --events
    """

    async def body(interrupts: Interrupts) -> int:
        settings = resolve_settings(
            profile=profile,
            base_url=None,
            api_key=api_key,
            model=None,
            connect_timeout=connect_timeout,
            idle_timeout=idle_timeout,
            timeout=timeout,
            max_retries=max_retries,
            debug=debug,
        )
        path = opt.database_path(db, settings)
        stored = await trio.to_thread.run_sync(_load_failed, path, request_id)
        target = replay_target(stored, base_url, settings.base_url)
        settings = msgspec.structs.replace(settings, base_url=target)
        async with open_backend(settings) as backend:
            with interrupts.guard(settings.timeout) as scope:
                reply = await print_stream(
                    partial(backend.stream_body, stored.endpoint, replay_body(stored, model)),
                    stop=scope,
                    events=events,
                    stats=stats,
                )
        return reply_exit_code(reply, interrupts)

    raise typer.Exit(run_command(body))


def _load_failed(path: Path, request_id: int) -> FailedRequest:
    store = Store(path)
    try:
        stored = store.failed_request(request_id)
    finally:
        store.close()
    if stored is None:
        raise UsageError(
            f"no failed request {request_id} in the log (see `streamkit logs list --failed`)"
        )
    return stored
