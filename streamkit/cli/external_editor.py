"""``/edit``: a message written in the user's own editor ($VISUAL, else $EDITOR).

The editor gets the terminal as it is between prompts (cooked mode, the line
editor not running) and a temporary file holding the starting text; what
the file holds when the editor exits 0 is the message. Ctrl-C reaches the
editor and streamkit alike (one process group): the editor decides what it
means, and streamkit waits for it under a shielded scope, so that a key the
editor takes for itself does not end the chat. The terminal's modes are
restored afterwards, whatever the editor left.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
import tempfile
import termios
from pathlib import Path

import trio

from streamkit.errors import UsageError
from streamkit.pipeline.interrupts import Interrupts


def editor_command() -> list[str]:
    """$VISUAL, else $EDITOR, split as a shell would split it."""
    chosen = os.environ.get("VISUAL") or os.environ.get("EDITOR")
    if not chosen:
        raise UsageError("set $VISUAL or $EDITOR to write a message in your editor")
    try:
        return shlex.split(chosen)
    except ValueError as exc:
        raise UsageError(f"cannot read the editor command {chosen!r}: {exc}") from None


async def edit_text(initial: str, interrupts: Interrupts) -> str:
    """The text the user leaves in the editor, starting from ``initial``."""
    command = editor_command()
    with tempfile.TemporaryDirectory(prefix="streamkit-") as directory:
        path = Path(directory) / "message.md"
        path.write_text(initial, encoding="utf-8")
        modes = _terminal_modes()
        try:
            with interrupts.guard(), trio.CancelScope(shield=True):
                done = await trio.run_process([*command, str(path)], check=False, stdin=None)
        except OSError as exc:
            raise UsageError(
                f"cannot run the editor {command[0]!r}: {exc.strerror or exc}"
            ) from None
        finally:
            _restore(modes)
            interrupts.forget()
        if done.returncode != 0:
            raise UsageError(f"the editor exited with status {done.returncode}: nothing sent")
        return path.read_text(encoding="utf-8", errors="replace")


def _terminal_modes() -> list | None:
    try:
        return termios.tcgetattr(sys.stdin.fileno())
    except (termios.error, OSError):
        return None


def _restore(modes: list | None) -> None:
    if modes is not None:
        with contextlib.suppress(termios.error, OSError):
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, modes)
