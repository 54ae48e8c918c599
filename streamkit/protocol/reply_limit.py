"""A cap on the size of one reply, sans-IO.

A stream that never ends -- a server stuck in a loop, a proxy replaying
bytes -- would otherwise grow the reply (and every consumer's copy of it)
until memory runs out, unless ``--timeout`` was given. Every producer passes
its batches through a ``ReplyLimit`` before sending them: the text and
tool-call arguments of all choices count, in UTF-8 bytes; the batch that
crosses the cap is cut at it, and a protocol error follows, so what arrived
up to the cap is printed and logged like any partial reply. The producer
then stops (closes its HTTP stream, stops its model thread).
"""

from __future__ import annotations

import msgspec

from streamkit.events import Event, StreamError, TextDelta, ToolCallDelta


class ReplyLimit:
    """Counts a reply's bytes against ``max_bytes`` (see the module docstring)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.exceeded = False

    def admit(self, batch: list[Event]) -> list[Event]:
        """``batch`` as far as the cap allows: whole while under it; cut at the cap and
        followed by the error once it is crossed; empty after that."""
        if self.exceeded:
            return []
        for position, event in enumerate(batch):
            if type(event) is TextDelta:
                piece = event.text
            elif type(event) is ToolCallDelta:
                piece = event.arguments
            else:
                continue
            size = len(piece) if piece.isascii() else len(piece.encode("utf-8"))
            if self.size + size <= self.max_bytes:
                self.size += size
                continue
            self.exceeded = True
            kept = batch[:position]
            cut = _cut(piece, self.max_bytes - self.size)
            if cut:
                if type(event) is TextDelta:
                    kept.append(
                        msgspec.structs.replace(event, text=cut, logprobs=None, token_ids=None)
                    )
                else:
                    kept.append(msgspec.structs.replace(event, arguments=cut))
            self.size = self.max_bytes
            kept.append(StreamError("protocol", self.message()))
            return kept
        return batch

    def message(self) -> str:
        return (
            f"the reply grew past {describe_size(self.max_bytes)} (max_reply_bytes in "
            "the config file) and was cut there"
        )


def describe_size(count: int) -> str:
    """``16 MiB``, ``64 KiB``, ``1000 bytes``: exact, in the largest unit that divides."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if count >= unit and count % unit == 0:
            return f"{count // unit} {name}"
    return f"{count} bytes"


def _cut(text: str, room: int) -> str:
    """The longest start of ``text`` that fits ``room`` UTF-8 bytes (whole characters)."""
    return text.encode("utf-8")[:room].decode("utf-8", "ignore")
