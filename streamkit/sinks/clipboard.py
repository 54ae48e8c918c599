"""Copying text to the clipboard through the terminal: OSC 52.

The terminal that shows the chat is the one clipboard always at hand -- over
ssh, in a container, without X or Wayland tools -- and ``ESC ] 52 ; c ;
BASE64 BEL`` asks it to put the text there. Whether it does is the
terminal's choice (some ask, some refuse, tmux needs ``set-clipboard on``),
and nothing comes back to say, so the line reported says the text was sent,
not that it arrived. Inside tmux the sequence is wrapped so tmux hands it on.
"""

from __future__ import annotations

import base64
import os
from typing import BinaryIO

MAX_BYTES = 1 << 20  # terminals cap what they take; past this, nothing is sent


def osc52(text: str, *, tmux: bool = False) -> bytes:
    """The escape sequence that sets the clipboard to ``text``."""
    sequence = b"\x1b]52;c;" + base64.b64encode(text.encode()) + b"\x07"
    if tmux:  # tmux's passthrough: its own escape, with every ESC doubled
        return b"\x1bPtmux;" + sequence.replace(b"\x1b", b"\x1b\x1b") + b"\x1b\\"
    return sequence


def copy_through_terminal(text: str, what: str, out: BinaryIO, *, is_terminal: bool) -> str:
    """Send ``text`` to the clipboard through ``out``; one line saying what happened."""
    if not is_terminal:
        return f"not copied: stdout is not a terminal, so there is no clipboard to send {what} to"
    size = len(text.encode())
    if size > MAX_BYTES:
        return f"not copied: {what} is {size} bytes, more than terminals take ({MAX_BYTES})"
    out.write(osc52(text, tmux=bool(os.environ.get("TMUX"))))
    out.flush()
    return (
        f"{what} ({len(text)} characters) sent to the terminal's clipboard (OSC 52; "
        "a terminal may refuse it)"
    )
