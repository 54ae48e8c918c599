"""``streamkit mcp``: the MCP servers of the config (or a file), their tools, a call by hand."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import msgspec
import typer

from streamkit.config import McpServerSpec, load_config
from streamkit.errors import StreamkitError, ToolServerError, UsageError
from streamkit.pipeline.command import run_command
from streamkit.pipeline.interrupts import Interrupts
from streamkit.tools.mcp_config import load_mcp_json, select_servers
from streamkit.tools.mcp_sources import manual

TOOLS = "Tools"
McpNames = Annotated[
    list[str] | None,
    typer.Option(
        "--mcp",
        help="Offer the tools of this MCP server (repeatable): an [mcp.NAME] "
        "table of the config, or a server of --mcp-config",
        rich_help_panel=TOOLS,
        show_default=False,
    ),
]
McpConfigs = Annotated[
    list[Path] | None,
    typer.Option(
        "--mcp-config",
        help="An mcpServers JSON file (as other MCP clients use); "
        "without --mcp, all its servers are offered (repeatable)",
        rich_help_panel=TOOLS,
        show_default=False,
        dir_okay=False,
    ),
]


def warn(line: str) -> None:
    """A notice that does not stop the command (an MCP server that failed)."""
    print(f"streamkit: {line}", file=sys.stderr, flush=True)


mcp_app = typer.Typer(
    name="mcp",
    no_args_is_help=True,
    help="MCP servers: their state and tools, and a tool called by hand.",
)


@mcp_app.command("list")
def list_command(
    configs: McpConfigs = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object a server")] = False,
) -> None:
    """Start each enabled server and list it: its state and its tools, one line each.

    Exit 13 when a server could not be started (it is listed with the reason).

    Examples:

      streamkit mcp list

      streamkit mcp list --mcp-config ~/.config/claude/claude_desktop_config.json
    """

    async def body(interrupts: Interrupts) -> int:
        specs = _all_servers(configs or [])
        with interrupts.guard() as scope, scope:  # Ctrl-C: the servers stop, exit 130
            rows = await manual().list_servers(specs)
        if scope.cancelled_caught:
            return interrupts.exit_code or 0
        for row in rows:
            if as_json:
                print(json.dumps(row, ensure_ascii=False))
                continue
            state = f"failed: {row['error']}" if row["state"] == "failed" else row["state"]
            count = f" ({len(row['tools'])} tools)" if row["state"] == "running" else ""
            print(f"{row['name']}\t{state}{count}")
            for tool in row["tools"]:
                hidden = "" if tool["offered"] else " [not offered: allow/deny]"
                print(f"  {tool['name']}\t{tool['description']}{hidden}")
        if not rows:
            print(
                "streamkit: no MCP servers configured ([mcp.NAME] tables, --mcp-config)",
                file=sys.stderr,
            )
        failed = [row["name"] for row in rows if row["state"] == "failed"]
        if failed:
            raise ToolServerError(f"could not start: {', '.join(failed)}")
        return 0

    raise typer.Exit(run_command(body))


@mcp_app.command("call")
def call_command(
    server: Annotated[str, typer.Argument(help="The server, by its name", show_default=False)],
    tool: Annotated[
        str, typer.Argument(help="The tool, by the server's name for it", show_default=False)
    ],
    arguments: Annotated[str, typer.Argument(help="The arguments, a JSON object")] = "{}",
    configs: McpConfigs = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            min=0.001,
            help="Seconds the call may take [default: the server's `timeout`, else 30]",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Call one tool of a server by hand; the result, as MCP's JSON, on stdout.

    The arguments are checked against the tool's schema first (exit 2).
    Exit 1 when the tool reports an error (the result is still printed),
    5 when it does not finish in time, 13 when the server fails.

    Examples:

      streamkit mcp call files list_directory '{"path": "."}'

      streamkit mcp call everything get-sum '{"a": 2, "b": 3}' | jq .structuredContent
    """

    async def body(interrupts: Interrupts) -> int:
        try:
            parsed = json.loads(arguments)
        except json.JSONDecodeError as exc:
            raise UsageError(f"the arguments are not JSON: {exc}") from None
        if not isinstance(parsed, dict):
            raise UsageError("the arguments must be a JSON object")
        spec = select_servers([server], configs or [], load_config().mcp)[server]
        if timeout is not None:
            spec = msgspec.structs.replace(spec, timeout=timeout)
        with interrupts.guard() as scope, scope:  # Ctrl-C: the call is cancelled, exit 130
            result = await manual().call_tool(server, spec, tool, parsed)
        if scope.cancelled_caught:
            return interrupts.exit_code or 0
        print(json.dumps(result, ensure_ascii=False))
        if result.get("isError"):
            raise StreamkitError(f"{server}/{tool} reported an error")
        return 0

    raise typer.Exit(run_command(body))


def _all_servers(configs: list[Path]) -> dict[str, McpServerSpec]:
    """The config's servers and those of the files (a file's win a shared name)."""
    servers = dict(load_config().mcp)
    for path in configs:
        servers.update(load_mcp_json(path))
    return servers
