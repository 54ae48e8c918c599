"""The live region of the Markdown printer: what ends on the screen, however it streamed.

A small model of a terminal (lines, a cursor, the few sequences ``LiveBlocks``
writes) replays everything written. Drawn chunk by chunk -- the open block
erased and redrawn at each step -- the screen must end exactly as when the
whole reply is drawn at once: no line left over, none erased twice.
"""

from __future__ import annotations

import re

from streamkit.sinks.markdown import SYNC_OFF, SYNC_ON, BlockRenderer, LiveBlocks

SGR = re.compile(r"\x1b\[[0-9;]*m")
MOVE = re.compile(r"\x1b\[(\d+)F\x1b\[J")

REPLY = (
    """# Notes

Some **bold** text that is long enough to wrap at forty columns, and then some.

- one
- two

```python
"""
    + "".join(f"x_{i} = {i}\n" for i in range(30))
    + """```
| a | b |
|---|---|
| 1 | 2 |

The end, with a paragraph long enough to be taller than the screen is high when
it is drawn at a width of forty columns, which it is: it goes on and on and on
and on, past the top of the live region.
"""
)


def screen(written: str) -> list[str]:
    """The lines a terminal shows after ``written`` (styles dropped)."""
    lines: list[str] = [""]
    text = SGR.sub("", written).replace(SYNC_ON, "").replace(SYNC_OFF, "")
    position = 0
    for match in MOVE.finditer(text):
        lines = _write(lines, text[position : match.start()])
        up = int(match.group(1))
        assert up < len(lines), "moved above what was written"
        lines = [*lines[: len(lines) - 1 - up], ""]  # up ``up`` lines, clear below
        position = match.end()
    return _write(lines, text[position:])


def _write(lines: list[str], text: str) -> list[str]:
    assert "\x1b" not in text, repr(text)
    for char in text:
        if char == "\n":
            lines.append("")
        else:
            lines[-1] += char
    return lines


def draw(chunks: list[str], height: int) -> list[str]:
    live = LiveBlocks(BlockRenderer(40, "256"), height)
    written = "".join(live.update(chunk) for chunk in chunks) + live.close()
    return [line.rstrip() for line in screen(written)]


def test_drawn_chunk_by_chunk_the_screen_ends_as_drawn_at_once():
    whole = draw([REPLY], 200)
    assert any("bold" in line for line in whole) and "x_29 = 29" in "\n".join(whole)
    assert whole == draw(list(REPLY), 200)
    assert whole == draw([REPLY[i : i + 7] for i in range(0, len(REPLY), 7)], 200)


def test_a_block_taller_than_the_screen_is_kept_as_it_passes_the_top():
    whole = draw([REPLY], 200)
    assert draw(list(REPLY), 6) == whole


def test_the_live_region_is_the_open_block_only():
    live = LiveBlocks(BlockRenderer(40, "256"), 40)
    live.update("First paragraph.\n\nSecond")
    redraw = live.update(" paragraph")
    # Only the open block's line is erased and drawn again; the settled one stays.
    assert MOVE.search(redraw).group(1) == "2"  # the blank line before it, and its line
    assert "First" not in redraw and "Second paragraph" in SGR.sub("", redraw)
