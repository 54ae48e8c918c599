"""The MCP path's entry: the SDK is imported only when a run uses a server.

Commands import this module, never the SDK-importing ones directly, so that
an ordinary ``chat`` neither pays for importing the SDK nor needs it
installed (it is the ``mcp`` extra).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import ModuleType

from streamkit.config import McpServerSpec
from streamkit.errors import UsageError
from streamkit.tools.dispatch import ToolSource


@asynccontextmanager
async def open_tool_sources(
    specs: dict[str, McpServerSpec], *, warn: Callable[[str], None], debug: bool = False
) -> AsyncIterator[list[ToolSource]]:
    """The dispatcher's sources for ``specs``: none at all, or their servers.

    The ``mcp`` SDK is imported here, only when a run uses a server.
    """
    if not specs:
        yield []
        return
    async with sdk().open_servers(specs, warn=warn, debug=debug) as servers:
        yield [servers]


def sdk() -> ModuleType:
    """``streamkit.tools.mcp_servers``, which imports the ``mcp`` SDK: only for MCP runs.

    Without the SDK installed, a usage error saying how to get it.
    """
    try:
        from streamkit.tools import mcp_servers
    except ModuleNotFoundError as exc:
        if exc.name not in ("mcp", "mcp_types", "httpx2"):
            raise
        raise UsageError("MCP servers need the mcp extra: pip install 'streamkit[mcp]'") from None
    return mcp_servers


def manual() -> ModuleType:
    """``tools.mcp_manual`` (``mcp list``, ``mcp call``), once the SDK is known to be there."""
    sdk()
    from streamkit.tools import mcp_manual

    return mcp_manual
