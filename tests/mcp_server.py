"""An MCP server for the tests, on the SDK's own server (``MCPServer``, once FastMCP).

``python tests/mcp_server.py stdio`` serves on stdin/stdout;
``python tests/mcp_server.py http PORT`` serves Streamable HTTP on 127.0.0.1:PORT
(path ``/mcp``), and with ``STREAMKIT_TEST_TOKEN`` set refuses requests that do
not carry ``Authorization: Bearer <token>``;
``python tests/mcp_server.py mute`` reads stdin and never answers, not even
``initialize``. ``STREAMKIT_TEST_CALLS`` names a file where the server notes
its start and ``add`` each call it gets; ``STREAMKIT_TEST_MARKER`` one where ``slow`` writes
``started PID``, then ``cancelled`` if it is cancelled.

Its tools cover what a client must handle: text, structured content, an
image, an error result, a slow call that reports progress (and writes a file
once it is cancelled), and a call that kills the server mid-way.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.utilities.types import Image

server = MCPServer("streamkit-test")
PIXEL = bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf000000030101005d0b7b0000000049454e44ae426082"
)


@server.tool(description="Add two integers.")
def add(a: int, b: int) -> str:
    calls = os.environ.get("STREAMKIT_TEST_CALLS")
    if calls:
        with open(calls, "a") as log:
            log.write(f"add {a} {b}\n")
    return str(a + b)


@server.tool(description="Say a word back, in a JSON object.")
def shout(word: str) -> dict[str, str]:
    return {"word": word.upper()}


@server.tool(description="N times the letter x.")
def big(n: int) -> str:
    return "x" * n


@server.tool(description="A one-pixel PNG.")
def pixel() -> Image:
    return Image(data=PIXEL, format="png")


@server.tool(description="Always fails.")
def fail(reason: str) -> str:
    raise ToolError(f"failed on purpose: {reason}")


@server.tool(description="Sleep for a while, reporting progress; marks its start and cancel.")
async def slow(seconds: float, ctx: Context) -> str:
    import anyio

    marker = os.environ.get("STREAMKIT_TEST_MARKER")
    if marker:
        _mark(marker, f"started {os.getpid()}")
    try:
        await ctx.report_progress(0, 2, "started")
        await anyio.sleep(seconds / 2)
        await ctx.report_progress(1, 2, "halfway")
        await anyio.sleep(seconds / 2)
    except anyio.get_cancelled_exc_class():
        if marker:
            _mark(marker, "cancelled")
        raise
    return "slept"


def _mark(path: str, text: str) -> None:
    Path(path).write_text(text)


@server.tool(description="Kill the server in the middle of the call.")
def crash() -> str:
    os._exit(3)


def serve_http(port: int) -> None:
    import uvicorn

    app = server.streamable_http_app(host="127.0.0.1")
    token = os.environ.get("STREAMKIT_TEST_TOKEN")
    if token:
        inner = app

        async def app(scope, receive, send):  # type: ignore[no-redef]
            headers = dict(scope.get("headers") or [])
            if (
                scope["type"] == "http"
                and headers.get(b"authorization") != f"Bearer {token}".encode()
            ):
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b"no"})
                return
            await inner(scope, receive, send)

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


if __name__ == "__main__":
    mode = sys.argv[1]
    if os.environ.get("STREAMKIT_TEST_CALLS"):
        with open(os.environ["STREAMKIT_TEST_CALLS"], "a") as log:
            log.write(f"start {mode}\n")
    if mode == "stdio":
        server.run("stdio")
    elif mode == "http":
        serve_http(int(sys.argv[2]))
    elif mode == "mute":
        sys.stdin.read()
