"""The stdio transport for MCP servers, on Trio's own processes: the whole group ends.

The SDK's ``stdio_client`` closes the server's stdin and signals its process
group only if the server itself outlives a grace period; a server that exits
at once (as ``npx`` wrappers and most servers do) leaves whatever it started
running. Here the server runs in a session of its own (as command tools do)
and, however the connection ends -- the command finished, Ctrl-C, SIGTERM,
a failed start -- its stdin is closed, it gets ``EXIT_GRACE`` seconds to
exit, and then whatever is left of its process group is stopped
(``commands.end_group``: SIGTERM, then SIGKILL).

The server's stderr is not shown (servers log freely there); its last line
is kept to explain a server that failed, and ``--debug`` passes it through.
Messages are JSON-RPC, one per line, as the MCP stdio transport defines.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
import mcp_types
import trio
from mcp.client._transport import TransportStreams
from mcp.shared.message import SessionMessage

from streamkit.tools.commands import end_group

EXIT_GRACE = 1.0  # seconds a server has to exit once its stdin is closed
MAX_LINE = 64 << 20  # bytes of one message: a longer line ends the connection
_STDERR_TAIL = 4096
# What a server inherits (with its own ``env`` on top): the SDK's own list, so
# that API keys in streamkit's environment do not reach every server.
INHERITED = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER", "LANG", "TMPDIR")


class StderrTail:
    """The end of what a server wrote on stderr: its last words explain a failure."""

    def __init__(self) -> None:
        self.data = bytearray()

    async def drain(self, stream: trio.abc.ReceiveStream, echo: bool) -> None:
        while chunk := await stream.receive_some(65536):
            if echo:
                sys.stderr.buffer.write(chunk)
                sys.stderr.flush()
            self.data = (self.data + chunk)[-_STDERR_TAIL:]

    def last_line(self) -> str:
        lines = self.data.decode("utf-8", "replace").strip().splitlines()
        return lines[-1].strip() if lines else ""


def server_environment(extra: dict[str, str]) -> dict[str, str]:
    """The few variables a server needs from ours, and its configured ``env``."""
    return {k: v for k, v in os.environ.items() if k in INHERITED} | extra


@asynccontextmanager
async def stdio_transport(
    argv: list[str], env: dict[str, str], cwd: str | None, stderr: StderrTail, *, echo: bool
) -> AsyncIterator[TransportStreams]:
    """Start ``argv`` and carry MCP messages over its stdin and stdout.

    ``OSError`` when it cannot be started. The streams are the SDK's
    (AnyIO memory streams, which run on Trio).
    """
    process = await trio.lowlevel.open_process(
        argv,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert process.stdin and process.stdout and process.stderr
    to_session, from_server = anyio.create_memory_object_stream[SessionMessage | Exception](16)
    to_server, from_session = anyio.create_memory_object_stream[SessionMessage](16)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_read, process.stdout, to_session)
            nursery.start_soon(_write, from_session, process.stdin)
            nursery.start_soon(stderr.drain, process.stderr, echo)
            try:
                yield from_server, to_server
            finally:
                nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            await _stop(process)


async def _stop(process: trio.Process) -> None:
    """Close stdin, give the server ``EXIT_GRACE`` to exit, then end its whole group."""
    assert process.stdin and process.stdout and process.stderr
    await process.stdin.aclose()
    with trio.move_on_after(EXIT_GRACE):
        await process.wait()
    await end_group(process)
    await process.stdout.aclose()
    await process.stderr.aclose()


async def _read(
    stdout: trio.abc.ReceiveStream,
    to_session: anyio.abc.ObjectSendStream[SessionMessage | Exception],
) -> None:
    """Lines of stdout, each a message for the session; the end of stdout ends the stream."""
    pending = bytearray()
    async with to_session:
        try:
            while chunk := await stdout.receive_some(65536):
                if b"\n" not in chunk:  # a long message: look only at what is new
                    pending += chunk
                    if len(pending) > MAX_LINE:
                        await to_session.send(ValueError(f"a message over {MAX_LINE} bytes"))
                        return
                    continue
                *lines, rest = (pending + chunk).split(b"\n")
                pending = bytearray(rest)
                for line in lines:
                    if line.strip():
                        await to_session.send(_parse(line))
        except (anyio.BrokenResourceError, anyio.ClosedResourceError):
            return  # the session is closed: nothing reads the messages any more


def _parse(line: bytes) -> SessionMessage | Exception:
    try:
        return SessionMessage(mcp_types.jsonrpc_message_adapter.validate_json(line, by_name=False))
    except ValueError as exc:  # pydantic's ValidationError is one: the session reports it
        return exc


async def _write(
    from_session: anyio.abc.ObjectReceiveStream[SessionMessage], stdin: trio.abc.SendStream
) -> None:
    async with from_session:
        async for message in from_session:
            data = message.message.model_dump_json(by_alias=True, exclude_unset=True)
            try:
                await stdin.send_all(data.encode() + b"\n")
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                return  # the server is gone: the reader's end of stdout tells the session
