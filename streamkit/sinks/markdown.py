"""The reply as Markdown on a terminal, drawn as it streams (rich).

Redrawing the whole reply for every token would cost time growing with the
square of its length and flicker. Instead ``BlockSplitter`` cuts the text
into blocks: a settled block is rendered once and written above a small live
region, and only the open block is rendered again, at each of the printer's
coalesced flushes, and at most every 50 ms. The live region is
erased and redrawn in one write, inside the terminal's synchronized-update
mode (``ESC [ ? 2026 h``) where the terminal has it, so nothing half drawn
shows. The cost of a flush depends on the open block only: a paragraph,
a list, or at most ``CODE_SEGMENT`` lines of a fenced block.

The live region never grows past the screen (a line scrolled away cannot be
redrawn): lines of an open block taller than that are written for good as
they pass the top. The cursor is never hidden, so a reply stopped by Ctrl-C
leaves a clean terminal: the stop settles the open block like an end.

Fenced code is drawn with ``rich.syntax`` directly (not through
``rich.markdown``), without padding above and below, so that the segments of
a long block join into one listing.
"""

from __future__ import annotations

import io
import math
import shutil
from typing import BinaryIO

import trio

from streamkit.events import Batch
from streamkit.protocol.markdown_blocks import Block, BlockSplitter
from streamkit.sinks.printer import FLUSH_INTERVAL, Printer, ReasoningView

CODE_THEME = "monokai"
SYNC_ON, SYNC_OFF = "\x1b[?2026h", "\x1b[?2026l"


class BlockRenderer:
    """Blocks to the ANSI text a terminal of ``width`` columns shows for them."""

    def __init__(self, width: int, color_system: str | None) -> None:
        from rich.console import Console  # rich costs start-up time: terminals only

        self._buffer = io.StringIO()
        self.console = Console(
            file=self._buffer,
            width=width,
            force_terminal=True,
            color_system=color_system,
            highlight=False,
            emoji=False,
        )  # type: ignore[arg-type]

    def render(self, block: Block) -> list[str]:
        """The lines (each without its newline) that ``block`` takes on the screen."""
        from rich.markdown import Markdown
        from rich.syntax import Syntax

        if block.kind == "code":
            if not block.text:
                return []
            renderable = Syntax(
                block.text,
                block.language or "text",
                theme=CODE_THEME,
                word_wrap=True,
                padding=(0, 1),
            )
        else:
            renderable = Markdown(block.text, code_theme=CODE_THEME, hyperlinks=False)
        self.console.print(renderable)
        text = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        lines = text.split("\n")[:-1]
        while lines and not _visible(lines[0]):  # rich opens some blocks with a blank line
            lines.pop(0)
        while lines and not _visible(lines[-1]):
            lines.pop()
        return lines


def _visible(line: str) -> bool:
    """Whether an ANSI line shows anything but spaces."""
    plain, inside = [], False
    for char in line:
        if char == "\x1b":
            inside = True
        elif inside:
            inside = not char.isalpha()
        else:
            plain.append(char)
    return bool("".join(plain).strip())


class LiveBlocks:
    """The terminal side: settled blocks written once, the open one redrawn in place."""

    def __init__(self, renderer: BlockRenderer, height: int) -> None:
        self.renderer = renderer
        self.max_live = max(height - 2, 1)
        self.splitter = BlockSplitter()
        self._live_lines = 0  # lines of the live region now on the screen
        self._kept = 0  # lines of the open block already written for good
        self._wrote_block = False
        self._after_code = False  # the last block written closed a fenced block

    def update(self, text: str) -> str:
        """What to write for ``text`` arriving: settled blocks, then the open one redrawn."""
        out = [self._erase()]
        for block in self.splitter.feed(text):
            out.append(self._settled(block))
        block = self.splitter.open
        if block is not None:
            out.append(self._draw_open(block))
        return SYNC_ON + "".join(out) + SYNC_OFF

    def close(self) -> str:
        """The end of the reply (or its interruption): the open block, settled."""
        out = [self._erase()]
        for block in self.splitter.close():
            out.append(self._settled(block))
        return SYNC_ON + "".join(out) + SYNC_OFF

    def _erase(self) -> str:
        if not self._live_lines:
            return ""
        lines, self._live_lines = self._live_lines, 0
        return f"\x1b[{lines}F\x1b[J"  # up to the live region's first line, clear below

    def _separator(self, block: Block) -> str:
        """A blank line where the source had one, and around each fenced block."""
        if not self._wrote_block:
            return ""
        around_code = (block.kind == "code" and block.first) or self._after_code
        return "\n" if block.gap_before or around_code else ""

    def _settled(self, block: Block) -> str:
        lines = self.renderer.render(block)
        kept, self._kept = self._kept, 0
        if not lines:
            return ""
        head = self._separator(block) if not kept else ""
        self._wrote_block = True
        self._after_code = block.kind == "code" and block.last
        return head + "".join(line + "\n" for line in lines[kept:])

    def _draw_open(self, block: Block) -> str:
        lines = self.renderer.render(block)
        if not lines:
            return ""
        head = self._separator(block) if not self._kept else ""
        out = []
        if len(lines) - self._kept > self.max_live:  # too tall: the top lines stay for good
            keep = len(lines) - self.max_live
            out.append(head + "".join(line + "\n" for line in lines[self._kept : keep]))
            self._kept, head = keep, ""
        shown = lines[self._kept :]
        self._live_lines = len(shown) + (1 if head else 0)
        out.append(head + "".join(line + "\n" for line in shown))
        return "".join(out)


class MarkdownPrinter(Printer):
    """The printer of a terminal reply, its text drawn as Markdown (see the module).

    Thinking is written as ``Printer`` writes it; the answer's text goes
    through ``LiveBlocks``. Each piece of answer still counts as a pending
    chunk, so the coalescing of writes is the plain printer's.
    """

    def __init__(
        self,
        out: BinaryIO,
        *,
        reasoning: ReasoningView | None = None,
        width: int | None = None,
        height: int | None = None,
        color_system: str | None = None,
    ) -> None:
        super().__init__(out, reasoning=reasoning)
        size = shutil.get_terminal_size()
        if color_system is None:
            from rich.console import Console

            color_system = Console(force_terminal=True).color_system
        self.live = LiveBlocks(
            BlockRenderer(width or size.columns, color_system), height or size.lines
        )
        self._text: list[str] = []
        self._last_draw = -math.inf

    async def __call__(self, receive: trio.MemoryReceiveChannel[Batch]) -> None:
        try:
            await super().__call__(receive)
        finally:  # the end, a failure or Ctrl-C: nothing stays half drawn
            self._draw()
            self._write_text(self.live.close())

    def _answer(self, text: str) -> None:
        self._text.append(text)
        self._pending.append(b"")  # counted as a chunk, so the printer's timer runs

    def flush(self) -> None:
        """Draw, unless the last drawing is less than ``FLUSH_INTERVAL`` old: a fast
        stream is drawn 20 times a second, not every 16 chunks, so what drawing
        costs a second does not grow with the stream's speed. The text waits in
        ``_pending``, and the printer's timer comes back for it."""
        if self._text and trio.current_time() - self._last_draw < FLUSH_INTERVAL:
            return
        self._draw()

    def _draw(self) -> None:
        super().flush()  # the thinking, if any
        if self._text:
            text = "".join(self._text)
            self._text.clear()
            self._write_text(self.live.update(text))
            self._last_draw = trio.current_time()

    def _write_text(self, data: str) -> None:
        if data != SYNC_ON + SYNC_OFF and self._write(data.encode()):
            self.wrote_text = True
            self.ends_with_newline = True
