"""Crash recovery touches only replies whose writer is gone, with real processes."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import httpx
from test_log_failures import wait_for_chunks
from test_store import assistant_rows, streamed_batches

from streamkit.store.database import Store
from streamkit.store.liveness import process_start, writer_alive


def _chat(url: str, db, env) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "streamkit", "chat", "hi", "--base-url", url, "--db", str(db)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _status(db) -> str:
    with sqlite3.connect(db) as conn:
        (status,) = conn.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchone()
    return status


def test_logs_list_while_a_reply_streams_leaves_it_to_its_writer(
    fault_url, cli_env, run_cli, tmp_path
):
    db = tmp_path / "log.db"
    url = fault_url("held")
    proc = _chat(url, db, cli_env)
    try:
        wait_for_chunks(db, 1)
        listed = run_cli("logs", "list", "--db", str(db))
        assert listed.code == 0, listed.stderr
        assert _status(db) == "streaming"
        httpx.get(f"{url}/release")
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    assert out == b"before after\n"
    [(content, status, finish, error)] = assistant_rows(db)
    assert (content, status, finish, error) == ("before after", "complete", "stop", None)


def test_a_killed_writer_keeps_what_it_wrote_after_another_process_looked(
    fault_url, cli_env, run_cli, tmp_path
):
    db = tmp_path / "log.db"
    proc = _chat(fault_url("slow"), db, cli_env)
    try:
        wait_for_chunks(db, 2)
        assert run_cli("logs", "list", "--db", str(db)).code == 0
        assert _status(db) == "streaming"
        seen = Store(db).messages(_conversation(db))[-1].content  # a third process looks
        with sqlite3.connect(db) as conn:
            batches = streamed_batches(conn)
        wait_for_chunks(db, batches + 2)  # the writer goes on after being looked at
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=10)
    assert run_cli("logs", "list", "--db", str(db)).code == 0
    [(content, status, _, error)] = assistant_rows(db)
    assert status == "interrupted" and "ended before the reply" in error
    sent = "".join(f"t{i} " for i in range(100_000))
    assert sent.startswith(content) and content.startswith(seen) and len(content) > len(seen)


def _conversation(db) -> str:
    with sqlite3.connect(db) as conn:
        [(cid,)] = conn.execute("SELECT id FROM conversations").fetchall()
    return cid


def test_a_writer_is_alive_only_as_the_same_process():
    me = os.getpid()
    assert writer_alive(me, process_start(me))
    assert not writer_alive(me, "not when this process started")
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()  # reaped: its pid names no process now
    assert not writer_alive(gone.pid, None)
