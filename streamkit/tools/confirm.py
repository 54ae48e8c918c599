"""Asking the user before a tool marked ``confirm = true`` runs."""

from __future__ import annotations

import json
import sys
from typing import Any

import trio

from streamkit.tools.registry import Tool


async def confirm_on_terminal(yes: bool, tool: Tool, arguments: dict[str, Any]) -> bool:
    """``--yes`` approves; without a terminal to ask on, the call is refused."""
    if yes:
        return True
    if not (sys.stdin.isatty() and sys.stderr.isatty()):
        return False
    sys.stderr.write(f"Run tool {tool.name} with {json.dumps(arguments)}? [y/N] ")
    sys.stderr.flush()
    answer = await trio.to_thread.run_sync(sys.stdin.readline, abandon_on_cancel=True)
    return answer.strip().lower() in ("y", "yes")


async def approved_in_advance(yes: bool, tool: Tool, arguments: dict[str, Any]) -> bool:
    """Where no one can be asked (a batch): only ``--yes`` approves."""
    return yes
