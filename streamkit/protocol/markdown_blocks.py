"""Markdown cut into blocks as it streams: what is settled, and the one block still open.

A streamed reply is Markdown arriving a few characters at a time. To draw it
on a terminal without redrawing the whole reply for every token, the text is
cut into top-level blocks: a block is settled once nothing later can change
how it looks, and only the open block is ever redrawn. The cuts:

- a blank line ends a block, unless the next line is indented (a list item's
  second paragraph, an indented code block): that decision waits for the
  next line's first character;
- a fenced code block (```` ``` ```` or ``~~~``) is its own block, cut from
  any text before it, and ends at its closing fence; a long one is cut every
  ``CODE_SEGMENT`` lines into ``code`` segments, so that even a
  thousand-line listing redraws at most that many lines per update.

Sans-IO: ``feed`` takes text and returns the blocks it settled; ``open``
is what is still open; ``close`` settles it at the end. The cuts depend only
on the text, never on how it was split into chunks.

``code_blocks`` is the same reading over a whole text: the fenced code
blocks' contents, for ``--extract``.
"""

from __future__ import annotations

from dataclasses import dataclass

CODE_SEGMENT = 12  # lines of a fenced block drawn per segment


@dataclass(frozen=True)
class Block:
    """A top-level piece of the reply.

    ``kind`` is ``markdown`` (paragraphs, headings, lists, tables, quotes;
    ``text`` is their source) or ``code`` (lines of a fenced block, fences
    left out; ``language`` from the opening fence's info string).
    ``gap_before``: a blank line separated it from the block before.
    ``first`` / ``last``: a code segment that opens / closes its fence.
    """

    kind: str
    text: str
    language: str = ""
    gap_before: bool = False
    first: bool = True
    last: bool = True


def _fence_of(line: str) -> str | None:
    """The fence (e.g. ``"```"``) that ``line`` opens, if it opens one."""
    stripped = line.lstrip(" ")
    if len(line) - len(stripped) > 3:
        return None
    for char in "`~":
        if stripped.startswith(char * 3):
            run = len(stripped) - len(stripped.lstrip(char))
            if char == "`" and "`" in stripped[run:]:
                return None  # ```a`b is inline code, not a fence
            return char * run
    return None


def _closes(line: str, fence: str) -> bool:
    stripped = line.strip()
    return (
        len(line) - len(line.lstrip(" ")) <= 3
        and stripped.startswith(fence)
        and stripped == fence[0] * len(stripped)
    )


class BlockSplitter:
    """Cuts streamed Markdown into settled blocks and the open one."""

    def __init__(self) -> None:
        self._partial = ""  # the line still arriving (no newline yet)
        self._lines: list[str] = []  # the open block's whole lines
        self._gap = False  # the open block follows a blank line
        self._started = False  # a block was settled before
        self._blank = False  # a blank line ended the open block (unless the next is indented)
        self._fence: str | None = None  # inside a fenced block: its fence
        self._language = ""
        self._first_segment = True

    def feed(self, text: str) -> list[Block]:
        """Take more of the reply; the blocks it settled, in order."""
        settled: list[Block] = []
        lines = (self._partial + text).split("\n")
        self._partial = lines.pop()
        for line in lines:
            self._line(line, settled)
        if self._blank and self._partial and not self._partial[0].isspace():
            settled.append(self._settle())  # a line that is not indented starts a block
            self._gap = True
        return settled

    @property
    def open(self) -> Block | None:
        """The block still open, as far as it has arrived (its last line may be partial)."""
        lines = self._lines + ([self._partial] if self._partial else [])
        if self._fence is not None:
            return Block(
                "code",
                "\n".join(lines),
                self._language,
                self._gap,
                first=self._first_segment,
                last=False,
            )
        if not lines:
            return None
        return Block("markdown", "\n".join(lines), gap_before=self._gap)

    def close(self) -> list[Block]:
        """The end of the reply: everything still open, settled."""
        settled: list[Block] = []
        if self._partial:
            self._line(self._partial, settled)
            self._partial = ""
        if self._fence is not None:  # a fence never closed: what came of it is code
            settled.append(self._code(last=True))
            self._fence = None
        elif self._lines:
            settled.append(self._settle())
        return settled

    def _line(self, line: str, settled: list[Block]) -> None:
        if self._fence is not None:
            if _closes(line, self._fence):
                settled.append(self._code(last=True))
                self._fence = None
                return
            self._lines.append(line)
            if len(self._lines) >= CODE_SEGMENT:
                settled.append(self._code(last=False))
            return
        if not line.strip():
            if self._lines:
                self._blank = True
            else:
                self._gap = self._started
            return
        fence = _fence_of(line)
        if self._blank and (fence is not None or not line[0].isspace()):
            if self._lines:
                settled.append(self._settle())
            self._gap = True
        elif fence is not None and self._lines:
            settled.append(self._settle())  # a fence interrupts a paragraph
            self._gap = False
        elif self._blank:
            self._lines.append("")  # an indented continuation, in the same block
        self._blank = False
        if fence is not None:
            self._fence = fence
            self._language = line.strip()[len(fence) :].strip().split(" ")[0]
            self._first_segment = True
            return
        self._lines.append(line)

    def _settle(self) -> Block:
        self._started = True
        block = Block("markdown", "\n".join(self._lines), gap_before=self._gap)
        self._lines = []
        self._gap = False
        self._blank = False
        return block

    def _code(self, *, last: bool) -> Block:
        self._started = True
        block = Block(
            "code",
            "\n".join(self._lines),
            self._language,
            self._gap,
            first=self._first_segment,
            last=last,
        )
        self._lines = []
        self._gap = False
        self._first_segment = last
        return block


def code_blocks(text: str) -> list[str]:
    """The contents of every fenced code block in ``text``, in order (a fence left
    open at the end counts, as far as it goes)."""
    splitter = BlockSplitter()
    blocks = splitter.feed(text) + splitter.close()
    found: list[str] = []
    parts: list[str] = []
    for block in blocks:
        if block.kind != "code":
            continue
        parts.append(block.text)
        if block.last:
            found.append("\n".join(parts))
            parts = []
    return found
