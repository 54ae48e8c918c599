"""A failing conversation log never takes a command down: real SQLite files, real CLI runs.

The reply is printed (a batch's results written) whatever the log does; the
failure is one ``streamkit: the log failed: ...`` line and exit 11 when
nothing else failed.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
import trio
from test_store import assistant_rows, streamed_batches

from streamkit.errors import LogError
from streamkit.events import Finish, TextDelta
from streamkit.pipeline.stream import run_stream
from streamkit.request import GenerationRequest
from streamkit.sinks.recorder import ConversationLog
from streamkit.store.async_store import AsyncStore
from streamkit.store.database import Store

from conftest import TESTS, Result

LAUNCHER = str(TESTS / "log_fault_cli.py")


@pytest.fixture
def run_faulty(cli_env):
    """``streamkit ARGS`` as a real subprocess, with the log's limits of ``log_fault_cli``."""

    def run(*args: str, input: str = "", **faults: str) -> Result:
        env = {**cli_env, **{f"LOG_TEST_{k.upper()}": v for k, v in faults.items()}}
        proc = subprocess.run(
            [sys.executable, LAUNCHER, *args],
            input=input,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run


@pytest.fixture
def locked_db(tmp_path):
    """A log database whose write lock another connection holds (``BEGIN EXCLUSIVE``)."""
    db = tmp_path / "log.db"
    Store(db).close()
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    yield db
    holder.execute("ROLLBACK")
    holder.close()


def warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "the log failed" in line]


def test_chat_prints_its_reply_when_the_log_stays_locked(run_faulty, fault_url, locked_db):
    result = run_faulty(
        "chat", "hi", "--base-url", fault_url("ok"), "--db", str(locked_db), busy_ms="100"
    )
    assert result.stdout == "Hello, world\n"
    assert result.code == 11, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("streamkit: the log failed: database is locked")
    assert "the reply was not fully saved" in line


def test_a_failed_reply_keeps_its_own_exit_code_beside_a_failed_log(
    run_faulty, fault_url, locked_db
):
    result = run_faulty(
        "chat", "hi", "--base-url", fault_url("drop"), "--db", str(locked_db), busy_ms="100"
    )
    assert result.stdout == "partial text\n"
    assert result.code == 6
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and len(warnings(result.stderr)) == 1
    assert any("broke" in line for line in lines)


def test_a_batch_writes_every_result_when_the_log_stays_locked(run_faulty, fault_url, locked_db):
    lines = "".join(json.dumps({"id": i, "prompt": f"p{i}"}) + "\n" for i in range(3))
    result = run_faulty(
        "chat",
        "--jsonl",
        "--base-url",
        fault_url("ok"),
        "--db",
        str(locked_db),
        input=lines,
        busy_ms="100",
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["id"], r["text"]) for r in records] == [(i, "Hello, world") for i in range(3)]
    assert result.code == 11, result.stderr
    assert len(result.stderr.splitlines()) == 1 and len(warnings(result.stderr)) == 1


def test_a_full_disk_mid_reply_prints_it_all_and_keeps_what_was_saved(
    run_faulty, fault_url, tmp_path
):
    db = tmp_path / "log.db"
    result = run_faulty(
        "chat", "hi", "--base-url", fault_url("many-20000"), "--db", str(db), full="1"
    )
    assert result.stdout == "tok " * 20000 + "\n"
    assert result.code == 11, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("streamkit: the log failed: database or disk is full")
    # The next open finds the writer gone: what was saved before the disk
    # filled is kept, marked interrupted.
    Store(db).close()
    [(content, status, _, _)] = assistant_rows(db)
    assert status == "interrupted"
    assert ("tok " * 20000).startswith(content)


async def test_after_a_failure_the_recorder_writes_no_more(tmp_path):
    store = Store(tmp_path / "log.db")
    log = ConversationLog(AsyncStore(store), store.new_conversation())
    calls: list[str] = []
    for name in ("add_message", "append_chunk", "finish_message", "record_response"):
        original = getattr(store, name)

        def counted(*args, _name=name, _original=original, **kwargs):
            calls.append(_name)
            return _original(*args, **kwargs)

        setattr(store, name, counted)
    backend = SimpleNamespace(provider="test", model_name="m")
    recorder = await log.reply_recorder(GenerationRequest("completion", "m", prompt="x"), backend)
    (pages,) = store.db.execute("PRAGMA page_count").fetchone()
    store.db.execute(f"PRAGMA max_page_count = {pages}")

    async def produce(send):
        for i in range(3000):
            await send.send([TextDelta(f"word{i} " * 8)])
            if i % 100 == 0:
                await trio.sleep(0.01)  # let the recorder write
        await send.send([Finish("stop")])

    reply = await run_stream(produce, [recorder], reply=recorder.reply)
    assert reply.text == "".join(f"word{i} " * 8 for i in range(3000))
    failure = log.store.failure
    assert isinstance(failure, LogError) and "full" in failure.message
    # The write that failed was the last: no retries, no cascade.
    assert calls[-1] == "append_chunk" and calls.count("finish_message") == 0
    await log.store.aclose()


def test_logs_rm_of_the_conversation_while_it_streams(fault_url, cli_env, run_cli, tmp_path):
    db = tmp_path / "log.db"
    url = fault_url("held")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "chat", "hi", "--base-url", url, "--db", str(db)],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_chunks(db, 1)
        [(cid,)] = sqlite3.connect(db).execute("SELECT id FROM conversations").fetchall()
        removed = run_cli("logs", "rm", cid, "--db", str(db))
        assert removed.code == 0, removed.stderr
        httpx.get(f"{url}/release")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert out == b"before after\n"
    assert proc.returncode == 11, err
    [line] = err.decode().splitlines()
    assert line.startswith("streamkit: the log failed: the conversation was removed")
    assert assistant_rows(db) == []


def wait_for_chunks(db: Path, count: int) -> None:
    """Until the log holds ``count`` streamed batches (the writer is past its first flush)."""
    deadline = time.monotonic() + 60
    while True:
        if db.exists():
            with sqlite3.connect(db) as conn:
                try:
                    have = streamed_batches(conn)
                except sqlite3.OperationalError:  # the schema is not there yet
                    have = 0
            if have >= count:
                return
        assert time.monotonic() < deadline
        time.sleep(0.05)


def _corrupt_rows(tmp_path: Path) -> tuple[Path, str]:
    """A log whose header and schema are sound but whose message pages are garbage."""
    db = tmp_path / "corrupt.db"
    store = Store(db)
    cid = store.new_conversation()
    for i in range(200):
        store.add_message(cid, "user", f"message {i} " * 40)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    pages = [
        p
        for (p,) in store.db.execute(
            "SELECT pageno FROM dbstat WHERE name = 'messages' AND pagetype = 'leaf'"
        )
    ]
    (size,) = store.db.execute("PRAGMA page_size").fetchone()
    store.close()
    data = bytearray(db.read_bytes())
    for page in pages:
        data[(page - 1) * size : page * size] = b"\xff" * size
    db.write_bytes(bytes(data))
    return db, cid


def test_logs_commands_on_a_corrupt_database_say_so_in_one_line(run_cli, tmp_path):
    noise = tmp_path / "noise.db"
    noise.write_bytes(os.urandom(8192))
    corrupt, cid = _corrupt_rows(tmp_path)
    for db in (noise, corrupt):
        for args in (["list"], ["show", cid], ["search", "message"], ["export"]):
            result = run_cli("logs", *args, "--db", str(db))
            assert result.code == 2, (db, args, result.stderr)
            [line] = result.stderr.splitlines()
            assert line.startswith(f"streamkit: cannot use the log database {db}: "), line
