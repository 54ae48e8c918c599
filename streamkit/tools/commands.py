"""Running a command tool: no shell, a session of its own, its whole group ended.

A command tool starts a new session, so it and every process it starts share
one process group apart from streamkit's: Ctrl-C at the terminal reaches only
streamkit, which then ends the group itself. The group is ended however the
call ends -- the command answered, its timeout passed, a signal cancelled the
command: SIGTERM, then SIGKILL after ``KILL_GRACE`` seconds. It is ended even
when the command itself has already exited: a background child
(``sleep 300 &``) would otherwise live on and, holding stdout open, keep the
read of the answer from ever ending.

What the tool wrote before it was stopped is kept: the caller hands in the
buffer, and still has it when its timeout cancels the call.
"""

from __future__ import annotations

import os
import signal
import subprocess

import trio

from streamkit.tools.registry import ToolFailed

KILL_GRACE = 1.0  # seconds a tool's processes get between SIGTERM and SIGKILL
_POLL = 0.02  # seconds between checks that a signalled group is gone
_STDERR_CAP = 2048


class CappedOutput:
    """Keeps the first ``cap`` bytes of a stream and counts the rest."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.kept = bytearray()
        self.dropped = 0

    async def drain(self, stream: trio.abc.ReceiveStream) -> None:
        """Read ``stream`` to its end (left open: a later drain picks up after a cancel)."""
        while data := await stream.receive_some(65536):
            room = self.cap - len(self.kept)
            self.kept += data[:room]
            self.dropped += max(0, len(data) - room)

    def text(self) -> str:
        text = self.kept.decode("utf-8", "replace")
        if self.dropped:
            text += f"\n[output truncated: {self.dropped} more bytes]"
        return text


async def run_command(argv: list[str], stdin: bytes, out: CappedOutput) -> str:
    """Run ``argv`` with ``stdin``; its stdout (also left in ``out``), or ``ToolFailed``."""
    try:
        process = await trio.lowlevel.open_process(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise ToolFailed(f"cannot run {argv[0]!r}: {exc.strerror}") from None
    assert process.stdin and process.stdout and process.stderr
    err = CappedOutput(_STDERR_CAP)
    ended = False  # once the group is gone, its id is not signalled again
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_feed, process.stdin, stdin)
            nursery.start_soon(out.drain, process.stdout)
            nursery.start_soon(err.drain, process.stderr)
            await process.wait()
            await end_group(process)
            ended = True
            # The group is gone, so the pipes end once what they hold is read --
            # unless a process that left the group holds them: it is not waited for.
            nursery.cancel_scope.deadline = trio.current_time() + KILL_GRACE
    finally:
        with trio.CancelScope(shield=True):
            if not ended:  # a timeout or a signal: stop the group, keep what it wrote
                await end_group(process)
                with trio.move_on_after(KILL_GRACE):
                    await out.drain(process.stdout)
            await process.stdout.aclose()
            await process.stderr.aclose()
    if process.returncode != 0:
        detail = err.text().strip().splitlines()[-1:] or [""]
        raise ToolFailed(f"exit status {process.returncode}: {detail[0]}".rstrip(": "))
    return out.text()


async def end_group(process: trio.Process) -> None:
    """SIGTERM to the command's process group; SIGKILL after ``KILL_GRACE`` to what is left.

    The group is named by the command's pid, which the kernel keeps from reuse
    while any process of the group lives, even once the command was reaped. A
    zombie still counts until it is reaped, so a group of orphans may get its
    SIGKILL when it needed none: harmless.
    """
    if _signal_group(process.pid, signal.SIGTERM):
        with trio.move_on_after(KILL_GRACE):
            await process.wait()
            while _signal_group(process.pid, 0):  # noqa: ASYNC110 (no event tells of it)
                await trio.sleep(_POLL)
            return
        _signal_group(process.pid, signal.SIGKILL)
    if process.returncode is None:
        process.kill()  # the command left its group, or has just been killed with it
        with trio.move_on_after(KILL_GRACE):
            await process.wait()


def _signal_group(pgid: int, signum: int) -> bool:
    """Send ``signum`` to the group; whether it still had a process to receive it."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):  # gone, or nothing left that is ours
        return False
    return True


async def _feed(stream: trio.abc.SendStream, data: bytes) -> None:
    async with stream:
        try:
            if data:
                await stream.send_all(data)
        except trio.BrokenResourceError:
            pass  # the tool did not read its input: its answer still counts
