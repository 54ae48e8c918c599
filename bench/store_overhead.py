"""What the conversation log costs a fast stream, and what it writes.

Why: every ``chat`` and ``complete`` logs its reply to SQLite while it
streams (``streamkit/sinks/store.py``). The log is meant to be close to free:
the receiving task only appends text to a buffer, and a second task writes
the buffer in a worker thread about every 200 ms or 1 KiB. This checks both
halves of that claim -- the throughput cost, and that the reply is written in
a few batched rows rather than one row per token.

(a) Throughput, whole process. ``tests/fault_server.py`` is started once; its
``many-N`` scenario streams N one-word chat chunks (``"tok "``) as fast as it
can. Timed from ``Popen`` to exit, stdout to /dev/null:

* ``python -m streamkit complete x --base-url URL --max-retries 0 --no-log``
* the same with ``--db FILE`` instead of ``--no-log``, a fresh FILE every run
  (so each logged run also creates the schema).

The two alternate (the one that goes first switches every round), after one
untimed warm-up each; every run uses a fresh scenario key. Chunks/s is N /
median wall time; the child's CPU time (user + system, from ``os.wait4``) is
reported too, as it is less disturbed by other work on a shared machine. The
same pair also runs against ``many-1`` in every round: its time is the fixed
cost of a run (interpreter start-up, imports, opening and creating the
database), so ``(t(N) - t(1)) / N`` is the cost of one chunk, and the ratio
of those is the streaming part's own ratio. Goal: logged / unlogged >= 0.97
in chunks/s (wall clock).

The ratio of the medians moves with the machine: two runs of the same code
gave 0.78 and 0.93, the unlogged median itself differing by half. So each
round's two runs, taken one right after the other, also give a ratio of
their own, and the median of those paired ratios is printed with its range
(the way ``farm-bench`` pairs its commands): a drift in the machine's speed
between rounds then moves both runs of a pair, not the ratio.

(b) What one reply writes. In this process: one ``many-10000`` reply (10,000
tokens) through ``streamkit.pipeline.stream.run_stream`` with the real producer
(``OpenAIHTTPProducer`` on ``build_transport``) and the real recorder
(``ConversationLog(AsyncStore(Store(path)), ...).reply_recorder(...)``)
beside a ``Printer`` (output discarded) -- the consumers ``complete`` runs --
plus one that counts text deltas and batches (one batch per network read).
Both the 10,000-token reply and one of the (a) length are run.
The ``Store`` instance's ``append_chunk`` is wrapped to count its calls (one
``message_chunks`` row each) and their text; SQLite's trace callback counts
the statements executed; ``/proc/self/io`` gives the bytes this process
passed to ``write()`` during the reply (almost all of it SQLite: WAL pages).
The database and WAL file sizes are read right after the reply (connection
still open) and after the store is closed (the last connection checkpoints
the WAL into the database and removes it). A fresh database each of
``--replies`` runs.

Run: ``python bench/store_overhead.py`` (about 30 s), ``--quick`` (about 5 s).
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server

GOAL = 0.97
MODES = ("--no-log", "--db (fresh file)")
TOKEN = "tok "


@dataclass
class Run:
    wall: float
    cpu: float


@dataclass
class Samples:
    full: list[Run] = field(default_factory=list)  # many-N
    fixed: list[Run] = field(default_factory=list)  # many-1


def complete_argv(port: int, scenario: str, mode: str, tmp: Path) -> list[str]:
    url = f"http://127.0.0.1:{port}/{scenario}/{fresh_key()}/v1"
    argv = [PYTHON, "-m", "streamkit", "complete", "x", "--base-url", url, "--max-retries", "0"]
    if mode == "--no-log":
        return [*argv, "--no-log"]
    return [*argv, "--db", str(tmp / f"log-{fresh_key()}.db")]


def timed_run(argv: Sequence[str], env: dict[str, str]) -> Run:
    """Wall time from Popen to exit, and the child's CPU time (user + system)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[3:]} exited {proc.returncode}: {err!r}")
    return Run(wall, usage.ru_utime + usage.ru_stime)


def check_output(port: int, chunks: int, env: dict[str, str], tmp: Path) -> None:
    """Both modes print the whole text; the logged one stores it, complete."""
    import sqlite3

    for mode in MODES:
        argv = complete_argv(port, f"many-{chunks}", mode, tmp)
        out = subprocess.run(argv, capture_output=True, env=env, check=False)
        assert out.returncode == 0, out.stderr
        assert out.stdout == TOKEN.encode() * chunks + b"\n", len(out.stdout)
        if mode != "--no-log":
            db = sqlite3.connect(argv[-1])
            rows = db.execute("SELECT content, status FROM messages WHERE role = 'assistant'")
            assert rows.fetchall() == [(TOKEN * chunks, "complete")]
            db.close()


def measure_throughput(
    port: int, env: dict[str, str], tmp: Path, chunks: int, rounds: int
) -> dict[str, Samples]:
    samples = {mode: Samples() for mode in MODES}
    for round_ in range(rounds + 1):  # round 0 is the warm-up
        order = MODES if round_ % 2 == 0 else MODES[::-1]
        for mode in order:
            full = timed_run(complete_argv(port, f"many-{chunks}", mode, tmp), env)
            fixed = timed_run(complete_argv(port, "many-1", mode, tmp), env)
            if round_:
                samples[mode].full.append(full)
                samples[mode].fixed.append(fixed)
        for path in tmp.glob("log-*"):
            path.unlink()
    return samples


def report_throughput(samples: dict[str, Samples], chunks: int, rounds: int) -> None:
    print(
        f"(a) Throughput: `streamkit complete` on many-{chunks} ({chunks:,} chunks), stdout "
        f"to /dev/null; median of {rounds} alternating rounds after one warm-up each."
    )
    print(
        f"    {'mode':<18}{'wall s':>8}{'best s':>8}{'chunks/s':>10}{'CPU s':>7}"
        f"{'many-1 s':>10}{'CPU s':>7}{'us/chunk':>10}{'CPU us/chunk':>14}"
    )
    rates: dict[str, tuple[float, float, float, float]] = {}
    for mode in MODES:
        s = samples[mode]
        wall = statistics.median(r.wall for r in s.full)
        cpu = statistics.median(r.cpu for r in s.full)
        fixed_wall = statistics.median(r.wall for r in s.fixed)
        fixed_cpu = statistics.median(r.cpu for r in s.fixed)
        per_chunk = (wall - fixed_wall) / chunks
        per_chunk_cpu = (cpu - fixed_cpu) / chunks
        rates[mode] = (chunks / wall, chunks / cpu, per_chunk, per_chunk_cpu)
        print(
            f"    {mode:<18}{wall:>8.3f}{min(r.wall for r in s.full):>8.3f}"
            f"{chunks / wall:>10,.0f}{cpu:>7.3f}{fixed_wall:>10.3f}{fixed_cpu:>7.3f}"
            f"{per_chunk * 1e6:>10.2f}{per_chunk_cpu * 1e6:>14.2f}"
        )
    unlogged, logged = rates[MODES[0]], rates[MODES[1]]
    for kind in ("wall", "cpu"):
        paired = sorted(
            getattr(u, kind) / getattr(lo, kind)
            for u, lo in zip(samples[MODES[0]].full, samples[MODES[1]].full, strict=True)
        )
        print(
            f"    paired rounds, logged / unlogged chunks/s by {kind}: median "
            f"{statistics.median(paired):.3f} (range {paired[0]:.3f}-{paired[-1]:.3f}, "
            f"{len(paired)} pairs)"
        )
    ratio = logged[0] / unlogged[0]
    verdict = "meets" if ratio >= GOAL else "BELOW"
    print(
        f"    ratio logged / unlogged, chunks/s: {ratio:.3f} wall clock (goal >= {GOAL}: "
        f"{verdict}); {logged[1] / unlogged[1]:.3f} by CPU time"
    )
    print(
        f"    streaming part only (per chunk, the many-1 run subtracted): "
        f"{unlogged[2] / logged[2]:.3f} wall, {unlogged[3] / logged[3]:.3f} CPU; "
        f"the log adds {(logged[2] - unlogged[2]) * 1e6:.2f} us wall / "
        f"{(logged[3] - unlogged[3]) * 1e6:.2f} us CPU per chunk"
    )

    def fixed(mode: str, kind: str) -> float:
        return statistics.median(getattr(r, kind) for r in samples[mode].fixed)

    print(
        f"    fixed cost of logging (many-1 logged - unlogged: creating the schema in a "
        f"fresh file, the checkpoint at close): "
        f"{(fixed(MODES[1], 'wall') - fixed(MODES[0], 'wall')) * 1e3:+.1f} ms wall, "
        f"{(fixed(MODES[1], 'cpu') - fixed(MODES[0], 'cpu')) * 1e3:+.1f} ms CPU"
    )


@dataclass
class ReplyWrites:
    tokens: int
    batches: int
    rows: int
    row_bytes: int
    max_row_bytes: int
    statements: collections.Counter[str]
    write_calls: int
    written: int
    db_open: int
    wal_open: int
    db_closed: int
    wal_closed: int
    seconds: float
    content_ok: bool


class Discard:
    """The printer's output: discarded without a system call, so that
    ``/proc/self/io`` counts only the log's writes (and the HTTP request)."""

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> int:
        self.written += len(data)
        return len(data)

    def flush(self) -> None:
        pass


def proc_io() -> dict[str, int]:
    with open("/proc/self/io") as f:
        return {k: int(v) for k, v in (line.split(":") for line in f)}


def file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def statement_kind(sql: str) -> str | None:
    """What a traced statement counts as (``None``: not counted).

    SQLite's trace reports a trigger's statements (FTS5 upkeep) prefixed
    with ``--``, and the triggering statement again around them, so only
    transactions, chunk INSERTs and FTS5 statements are counted.
    """
    if sql.startswith("--"):
        return "FTS5 statements" if "messages_fts" in sql else None
    if sql == "COMMIT":
        return "transactions"
    if sql.startswith("INSERT INTO message_chunks"):
        return "INSERT message_chunks"
    return None


def one_reply(url: str, path: Path) -> ReplyWrites:
    """One reply streamed in-process into a fresh database, with its writes counted."""
    import trio

    from streamkit.events import Batch, TextDelta
    from streamkit.pipeline.stream import run_stream
    from streamkit.providers.openai_http import OpenAIHTTPProducer
    from streamkit.providers.transports import build_transport
    from streamkit.request import GenerationRequest, Message
    from streamkit.sinks.printer import Printer
    from streamkit.sinks.recorder import ConversationLog
    from streamkit.store.async_store import AsyncStore
    from streamkit.store.database import Store

    store = Store(path)
    rows: list[str] = []
    original = store.append_chunk

    def counting_append(message_id: int, seq: int, text: str) -> None:
        rows.append(text)
        original(message_id, seq, text)

    store.append_chunk = counting_append  # type: ignore[method-assign]
    statements: collections.Counter[str] = collections.Counter()

    def trace(sql: str) -> None:
        kind = statement_kind(sql)
        if kind is not None:
            statements[kind] += 1

    store.db.set_trace_callback(trace)
    counts = {"tokens": 0, "batches": 0}

    async def count(receive: trio.MemoryReceiveChannel[Batch]) -> None:
        async with receive:
            async for batch in receive:
                counts["batches"] += 1
                counts["tokens"] += sum(1 for e in batch if type(e) is TextDelta)

    async def main() -> tuple[int, int, int, int, float, bool]:
        client = build_transport(url, None, connect_timeout=5, idle_timeout=30)
        try:
            producer = OpenAIHTTPProducer(client, max_retries=0)
            log = ConversationLog(AsyncStore(store), store.new_conversation())
            request = GenerationRequest("chat", None, messages=(Message("user", "x"),))
            recorder = await log.reply_recorder(request, producer)
            before = proc_io()
            start = time.perf_counter()
            printer = Printer(Discard())  # type: ignore[arg-type]
            reply = await run_stream(
                partial(producer.stream, request), [printer, recorder, count], reply=recorder.reply
            )
            seconds = time.perf_counter() - start
            after = proc_io()
        finally:
            await client.aclose()
        assert reply.error is None, reply.error
        [message] = store.messages(log.conversation_id)
        ok = message.content == reply.text and message.status == "complete"
        return (
            after["syscw"] - before["syscw"],
            after["wchar"] - before["wchar"],
            file_size(path),
            file_size(path.with_name(path.name + "-wal")),
            seconds,
            ok,
        )

    write_calls, written, db_open, wal_open, seconds, ok = trio.run(main)
    store.db.set_trace_callback(None)
    store.close()
    return ReplyWrites(
        tokens=counts["tokens"],
        batches=counts["batches"],
        rows=len(rows),
        row_bytes=sum(len(t.encode()) for t in rows),
        max_row_bytes=max((len(t.encode()) for t in rows), default=0),
        statements=statements,
        write_calls=write_calls,
        written=written,
        db_open=db_open,
        wal_open=wal_open,
        db_closed=file_size(path),
        wal_closed=file_size(path.with_name(path.name + "-wal")),
        seconds=seconds,
        content_ok=ok,
    )


def report_writes(port: int, tmp: Path, sizes: Sequence[int], replies: int) -> None:
    print(
        f"(b) Writes of one reply: in-process run_stream, real producer, Printer "
        f"(output discarded) and recorder;\n    {replies} replies of each size, a fresh "
        f"database each."
    )
    print(
        f"    {'reply':<16}{'tokens':>8}{'reads':>7}{'rows':>6}{'tok/row':>8}{'text B':>9}"
        f"{'max row B':>10}{'txns':>6}{'FTS5 st.':>9}{'writes':>7}{'written B':>11}"
        f"{'db B':>11}{'wal B':>11}{'db closed':>11}{'stream s':>9}"
    )
    for size in sizes:
        runs = []
        for i in range(replies):
            url = f"http://127.0.0.1:{port}/many-{size}/{fresh_key()}/v1"
            runs.append(one_reply(url, tmp / f"reply-{size}-{i}.db"))
        for i, r in enumerate(runs, 1):
            label = f"many-{size} #{i}"
            print(
                f"    {label:<16}{r.tokens:>8,}{r.batches:>7,}{r.rows:>6,}"
                f"{r.tokens / max(r.rows, 1):>8,.0f}{r.row_bytes:>9,}{r.max_row_bytes:>10,}"
                f"{r.statements['transactions']:>6,}{r.statements['FTS5 statements']:>9,}"
                f"{r.write_calls:>7,}{r.written:>11,}{r.db_open:>11,}{r.wal_open:>11,}"
                f"{r.db_closed:>11,}{r.seconds:>9.3f}"
            )
            assert r.statements["INSERT message_chunks"] == r.rows
            assert r.content_ok and r.wal_closed == 0 and r.tokens == size
        rows = statistics.median(r.rows for r in runs)
        written = statistics.median(r.written for r in runs)
        print(
            f"    {'':<16}median {rows:,.0f} rows for {size:,} tokens (1 row per "
            f"{size / max(rows, 1):,.0f} tokens); {written:,.0f} B written for "
            f"{len(TOKEN) * size:,} B of text ({written / (len(TOKEN) * size):.1f}x)"
        )
    print(
        "    tokens = text deltas; reads = batches from the producer (one per network "
        "read); rows = message_chunks INSERTs (append_chunk calls, = traced INSERTs);"
    )
    print(
        "    txns = transactions (COMMITs: request row, reply row, chunks, finish); FTS5 "
        "st. = statements the FTS5 triggers ran; writes / written B = write() calls and"
    )
    print(
        "    bytes of this process during the reply (/proc/self/io); db B / wal B = file "
        "sizes right after the reply (SQLite checkpoints the WAL into the db at 1,000"
    )
    print(
        "    pages, then reuses it: the WAL file does not shrink); db closed = after close "
        "(WAL checkpointed and removed)."
    )
    print(
        "    Every stored reply equals the streamed text, status complete; no WAL left after close."
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20,000 chunks, fewer rounds")
    parser.add_argument("--chunks", type=int, help="chunks per timed stream (default 100,000)")
    parser.add_argument("--rounds", type=int, help="timed rounds per mode (default 9)")
    parser.add_argument(
        "--replies", type=int, help="replies of each size whose writes are counted (default 5)"
    )
    args = parser.parse_args(argv)
    chunks = args.chunks or (20_000 if args.quick else 100_000)
    rounds = args.rounds or (2 if args.quick else 9)
    replies = args.replies or (1 if args.quick else 5)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = child_env(tmp, db=tmp / "never-used.db")  # --db or --no-log is always given
        server, port = start_server(env)
        try:
            print(
                f"Python {sys.version.split()[0]} on {os.cpu_count()} CPU(s), shared with "
                f"the server; load average (1 min) before: {load_before:.2f}"
            )
            check_output(port, chunks, env, tmp)
            samples = measure_throughput(port, env, tmp, chunks, rounds)
            report_throughput(samples, chunks, rounds)
            print()
            report_writes(port, tmp, (10_000, chunks), replies)
        finally:
            server.terminate()
            server.wait(timeout=10)
    print(f"load average (1 min) after: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
