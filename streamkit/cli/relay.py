"""``streamkit relay``: a model behind a WebSocket server."""

from __future__ import annotations

import ipaddress
import sys
from functools import partial
from pathlib import Path
from typing import Annotated

import trio
import typer

from streamkit.cli import options as opt
from streamkit.cli.mcp import McpConfigs, McpNames, warn
from streamkit.config import RelayLimits, resolve_settings
from streamkit.errors import UsageError
from streamkit.pipeline.command import run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.tool_hops import ToolHops
from streamkit.providers.backend import open_backend
from streamkit.store.async_store import AsyncStore
from streamkit.tools.builtins import builtin_tools
from streamkit.tools.confirm import approved_in_advance
from streamkit.tools.dispatch import Dispatcher
from streamkit.tools.mcp_config import select_servers
from streamkit.tools.mcp_sources import open_tool_sources
from streamkit.tools.registry import select_tools

RELAY = "Relay"
TOOLS = "Tools"
_DEFAULTS = RelayLimits()


def relay(
    host: Annotated[
        str, typer.Option(help="Address to listen on", rich_help_panel=RELAY)
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, help="Port (0: any free port)", rich_help_panel=RELAY)
    ] = 8765,
    token: Annotated[
        str | None,
        typer.Option(
            help="Clients must send `Authorization: Bearer TOKEN` (or ?token=TOKEN) "
            "[env: STREAMKIT_RELAY_TOKEN]",
            envvar="STREAMKIT_RELAY_TOKEN",
            rich_help_panel=RELAY,
            show_default=False,
        ),
    ] = None,
    allowed_origin: Annotated[
        list[str] | None,
        typer.Option(
            help="Browser Origin allowed to connect (repeatable; * for any) "
            "[default: the relay's own origin and local files]",
            rich_help_panel=RELAY,
            show_default=False,
        ),
    ] = None,
    max_connections: Annotated[
        int, typer.Option(min=1, rich_help_panel=RELAY)
    ] = _DEFAULTS.max_connections,
    max_requests: Annotated[
        int, typer.Option(min=1, help="Concurrent requests per connection", rich_help_panel=RELAY)
    ] = _DEFAULTS.max_requests_per_connection,
    max_message_bytes: Annotated[
        int, typer.Option(min=1024, rich_help_panel=RELAY)
    ] = _DEFAULTS.max_message_bytes,
    idle_timeout: Annotated[
        float,
        typer.Option(
            "--client-idle-timeout",
            min=0.001,
            help="Seconds without a frame before a client is closed",
            rich_help_panel=RELAY,
        ),
    ] = _DEFAULTS.idle_timeout,
    slow_client_timeout: Annotated[
        float,
        typer.Option(
            min=0.001,
            help="Seconds a frame may wait for a client before it is dropped",
            rich_help_panel=RELAY,
        ),
    ] = _DEFAULTS.slow_client_timeout,
    max_tokens: opt.MaxTokens = None,
    model: opt.Model = None,
    base_url: opt.BaseURL = None,
    api_key: opt.APIKey = None,
    profile: opt.Profile = None,
    connect_timeout: opt.ConnectTimeout = None,
    upstream_idle_timeout: opt.IdleTimeout = None,
    max_retries: opt.MaxRetries = None,
    log: Annotated[
        bool,
        typer.Option(
            "--log", help="Keep relayed requests in the conversation log", rich_help_panel=opt.LOG
        ),
    ] = False,
    db: opt.Database = None,
    tool_names: Annotated[
        list[str] | None,
        typer.Option(
            "--tool",
            help="Offer this tool to the model (repeatable): a built-in or one from "
            "the config file; calls run on the relay's side",
            rich_help_panel=TOOLS,
            show_default=False,
        ),
    ] = None,
    mcp_names: McpNames = None,
    mcp_configs: McpConfigs = None,
    yes: Annotated[
        bool,
        typer.Option(
            "--yes",
            "-y",
            help="Run tools marked `confirm` (no one is asked here: without "
            "--yes they are refused)",
            rich_help_panel=TOOLS,
        ),
    ] = False,
    max_hops: Annotated[
        int,
        typer.Option(
            "--max-hops",
            min=1,
            help="Replies with tool calls before a request fails",
            rich_help_panel=TOOLS,
        ),
    ] = 8,
) -> None:
    """Serve a model over WebSocket: JSON frames in, streamed events out.

    With --tool or --mcp, a chat request's tool calls run here (each result a
    `tool_result` frame) and the model is asked again, until it answers.

    Examples:

      streamkit relay --port 8765

      streamkit relay --host 0.0.0.0 --token "$(openssl rand -hex 16)" --base-url http://127.0.0.1:8000/v1

      streamkit relay --port 0 -m ~/models/tiny.gguf 2>&1 | head -1

      streamkit relay --base-url http://127.0.0.1:8000/v1 --mcp files
    """

    async def body(interrupts: Interrupts) -> int:
        if token is not None and not token.strip():
            raise UsageError(
                "--token is empty: an empty token is no token "
                '(give a secret, e.g. --token "$(openssl rand -hex 16)")'
            )
        if token is None and not _is_loopback(host):
            raise UsageError(
                f"refusing to listen on {host} without --token "
                "(anyone who can reach it could use the model)"
            )
        settings = resolve_settings(
            profile=profile,
            base_url=base_url,
            api_key=api_key,
            model=model,
            connect_timeout=connect_timeout,
            idle_timeout=upstream_idle_timeout,
            timeout=None,
            max_retries=max_retries,
        )
        limits = RelayLimits(
            max_message_bytes=max_message_bytes,
            max_connections=max_connections,
            max_requests_per_connection=max_requests,
            idle_timeout=idle_timeout,
            max_tokens=max_tokens,
            slow_client_timeout=slow_client_timeout,
        )
        from streamkit.pipeline.relay import Relay

        tools = select_tools(tool_names or [], [], settings.tools, builtin_tools(Path.cwd()))
        servers = select_servers(mcp_names or [], mcp_configs or [], settings.mcp)
        store = await AsyncStore.open(opt.database_path(db, settings)) if log else None
        async with (
            open_backend(settings) as backend,
            open_tool_sources(servers, warn=warn, debug=settings.debug) as sources,
        ):
            hops = (
                ToolHops(
                    Dispatcher(tools, approve=partial(approved_in_advance, yes), sources=sources),
                    max_hops,
                )
                if tools or sources
                else None
            )
            server = Relay(
                backend,
                limits=limits,
                token=token,
                allowed_origins=tuple(allowed_origin or ()),
                default_model=settings.model,
                store=store,
                tools=hops,
            )
            async with trio.open_nursery() as nursery:
                bound = await nursery.start(server.serve, host, port)
                print(f"listening on ws://{host}:{bound}/", file=sys.stderr, flush=True)
                with interrupts.guard() as scope, scope:
                    await trio.sleep_forever()
                server.stop()  # Ctrl-C / SIGTERM: a graceful end, within a second
        if store is not None:
            await store.aclose()
        return 0

    raise typer.Exit(run_command(body))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
