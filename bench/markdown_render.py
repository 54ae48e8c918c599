"""What drawing a reply as Markdown costs per chunk, against printing it as it comes.

Why: on a terminal, ``chat`` draws the reply with rich as it streams
(``streamkit.sinks.markdown``). Settled blocks are rendered once and only the
open block again at each flush, so the cost per chunk should not grow with
the reply; this script checks that, and what the drawing costs against the
plain printer, in the same run.

A long Markdown reply is built (``--tokens``, default 10,000 chunks of one
word or so each): headings, paragraphs with emphasis and inline code, bullet
and numbered lists, tables, quotes, fenced Python and shell blocks (30
lines, longer than a drawn segment), the same mix in every section. Each
printer consumes it through ``run_stream``, one chunk a batch, from a
producer that sends as fast as the printer takes them: the printers' own
coalescing (16 chunks, 50 ms; the Markdown printer draws at
most every 50 ms) decides when they write. Output goes to a real
pseudo-terminal (``os.openpty``) whose other end a thread drains, so the
terminal's side is real writes, not a buffer.

Printed: chunks/s of each printer (best of ``--rounds``), the ratio, the
rendering time per chunk, and the mean time per chunk over each tenth of the
reply, the first against the last (flat means linear; the drawing at the
end, once per reply, is left out of the last chunk's time and shown apart).
Then the cost as a share of a stream at 100 and 1,000 chunks/s: the
fraction of each second the drawing takes (a stream slower than the
Markdown printer's own rate is not slowed at all: the drawing only uses
that share of a core).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import trio

from streamkit.events import TextDelta
from streamkit.pipeline import stream
from streamkit.pipeline.stream import run_stream
from streamkit.sinks.markdown import MarkdownPrinter
from streamkit.sinks.printer import Printer

SECTION = """## Section {n}

A paragraph about item {n} with **bold words**, *some emphasis* and `inline code`,
long enough to wrap on an eighty-column terminal more than once, as replies do.

- first point of {n}, with a [link](https://example.org)
- second point, **strong**
- third point

1. step one
2. step two

| name | value | note |
|------|-------|------|
| a{n} | {n}   | ok   |
| b{n} | {n}0  | fine |

> A quoted remark about {n}.

```python
def section_{n}(x: int) -> int:
    \"\"\"Return the answer.\"\"\"
    return x * {n} + 1
```

"""
LONG_CODE = "```sh\n" + "".join(f"echo line {i} | tr a-z A-Z\n" for i in range(30)) + "```\n\n"


def reply_chunks(tokens: int) -> list[str]:
    """The reply cut into word-sized chunks (a word and its space), ``tokens`` of them."""
    text, n = "", 0
    while text.count(" ") + text.count("\n") < tokens:
        text += SECTION.format(n=n) + LONG_CODE  # every tenth of the reply alike
        n += 1
    chunks: list[str] = []
    word = ""
    for char in text:
        word += char
        if char in " \n":
            chunks.append(word)
            word = ""
    return chunks[:tokens]


def drain(fd: int, stop: threading.Event) -> None:
    """Read the terminal's side until stopped, so that writes never block."""
    while not stop.is_set():
        try:
            if not os.read(fd, 1 << 16):
                return
        except OSError:
            return


def run(chunks: list[str], markdown: bool, out) -> list[float]:
    """Stream every chunk through ``run_stream`` into a printer, as fast as it takes
    them; the time each chunk's ``send`` took (the channel holds one batch, so a
    send waits for the printer); then the time of the end (the last drawing)."""
    times: list[float] = []

    async def produce(send: trio.MemorySendChannel) -> None:
        clock = time.perf_counter
        for chunk in chunks:
            start = clock()
            await send.send([TextDelta(chunk)])
            times.append(clock() - start)

    async def main() -> None:
        printer = (
            MarkdownPrinter(out, width=100, height=40, color_system="256")
            if markdown
            else Printer(out)
        )
        start = time.perf_counter()
        await run_stream(produce, [printer])
        printer.end()
        times.append(time.perf_counter() - start - sum(times))

    trio.run(main)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2,000 chunks, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.tokens, args.rounds = 2_000, 1
    chunks = reply_chunks(args.tokens)
    stream.BUFFER = 1  # each send waits for the printer: its time is the chunk's cost
    master, slave = os.openpty()
    stop = threading.Event()
    reader = threading.Thread(target=drain, args=(master, stop), daemon=True)
    reader.start()
    out = os.fdopen(slave, "wb", buffering=0)
    best: dict[bool, list[float]] = {}
    try:
        run(chunks[:600], True, out)  # warm-up: rich's and pygments' first-use loading
        for _ in range(args.rounds):
            for markdown in (False, True):  # interleaved: both see the same machine load
                times = run(chunks, markdown, out)
                if markdown not in best or sum(times) < sum(best[markdown]):
                    best[markdown] = times
    finally:
        stop.set()
        out.close()
        os.close(master)
    plain, drawn = sum(best[False]), sum(best[True])
    n = len(chunks)
    tenth = max(n // 10, 1)
    per_send = best[True][:-1]
    tenths = [statistics.fmean(per_send[i : i + tenth]) * 1e6 for i in range(0, n, tenth)]
    first, last = tenths[0], tenths[-1]
    per_chunk = (drawn - plain) / n
    print(
        f"reply: {n} chunks, {sum(map(len, chunks))} characters, to a pty 100x40, "
        f"best of {args.rounds}"
    )
    print(f"{'printer':<10} {'chunks/s':>12} {'µs/chunk':>10}")
    print(f"{'plain':<10} {n / plain:>12,.0f} {plain / n * 1e6:>10.1f}")
    print(f"{'markdown':<10} {n / drawn:>12,.0f} {drawn / n * 1e6:>10.1f}")
    print(
        f"markdown / plain time: {drawn / plain:.1f}x; drawing costs {per_chunk * 1e6:.1f} µs "
        "a chunk"
    )
    print(
        "markdown µs/chunk by tenth of the reply: " + " ".join(f"{value:.0f}" for value in tenths)
    )
    print(
        f"last / first tenth {last / first:.2f} (goal: flat, about 1); the end's drawing "
        f"{best[True][-1] * 1e3:.1f} ms once"
    )
    for rate in (100, 1_000):
        print(
            f"at {rate:,} chunks/s the drawing takes {per_chunk * rate:.1%} of the stream's "
            "time (goal < 20%)"
        )


if __name__ == "__main__":
    main()
