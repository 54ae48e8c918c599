"""The conversation log: real SQLite files, real subprocesses, real signals."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import msgspec
import trio

from streamkit.events import Finish, TextDelta
from streamkit.pipeline.stream import run_stream
from streamkit.request import GenerationRequest
from streamkit.sinks.recorder import ConversationLog
from streamkit.store.async_store import AsyncStore
from streamkit.store.database import Store
from streamkit.store.migrations import MIGRATIONS, SCHEMA_VERSION

from test_signals_cli import start_streaming


def assistant_rows(db: Path) -> list[tuple]:
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT content, status, finish_reason, error FROM messages"
            " WHERE role = 'assistant' ORDER BY id"
        ).fetchall()


def test_real_server_reply_is_stored_as_printed(run_cli, llama_server, tmp_path):
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        "Name a fruit.",
        "--base-url",
        llama_server,
        "-n",
        "16",
        "--seed",
        "4",
        "--db",
        str(db),
    )
    assert result.code == 0, result.stderr
    [(content, status, finish, error)] = assistant_rows(db)
    assert content + "\n" == result.stdout
    assert (status, error) == ("complete", None)
    assert finish in ("stop", "length")
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT content FROM messages WHERE role='user'").fetchall() == [
            ("Name a fruit.",)
        ]
        assert conn.execute("SELECT count(*) FROM message_chunks").fetchone() == (0,)


def test_sigint_leaves_interrupted_reply_equal_to_what_was_printed(fault_url, cli_env, tmp_path):
    db = tmp_path / "log.db"
    proc, received = start_streaming(
        ["chat", "hi", "--base-url", fault_url("slow"), "--db", str(db)], cli_env
    )
    proc.send_signal(signal.SIGINT)
    rest, _ = proc.communicate(timeout=10)
    assert proc.returncode == 130
    printed = (received + rest).decode()
    [(content, status, finish, _)] = assistant_rows(db)
    assert status == "interrupted"
    assert finish == "cancelled"
    assert content + "\n" == printed
    assert content.startswith("t0 t1 ")


def test_kill_9_keeps_the_partial_reply_and_the_next_run_marks_it(
    fault_url, cli_env, tmp_path, run_cli
):
    db = tmp_path / "log.db"
    proc, received = start_streaming(
        ["chat", "hi", "--base-url", fault_url("slow"), "--db", str(db)], cli_env
    )
    deadline = time.monotonic() + 30
    while _streamed_chunks(db) < 2:  # wait for some 200 ms store batches
        assert time.monotonic() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    rest, _ = proc.communicate(timeout=10)
    printed = (received + rest).decode()
    with sqlite3.connect(db) as conn:  # opens cleanly: WAL recovery
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        (status,) = conn.execute("SELECT status FROM messages WHERE role = 'assistant'").fetchone()
        assert status == "streaming"
    partial = Store(db).messages(_only_conversation(db))[-1].content
    # What was received up to the last store batch: a whole-token prefix of
    # what the server sent. (The printer may be a little ahead or behind.)
    sent = "".join(f"t{i} " for i in range(100_000))
    assert partial and sent.startswith(partial) and partial.endswith(" ")
    assert sent.startswith(printed.rstrip("\n"))
    # The next start (any command that opens the log) marks it interrupted.
    assert run_cli("logs", "list", "--db", str(db)).code == 0
    [(content, status, _, error)] = assistant_rows(db)
    assert status == "interrupted"
    assert content == partial
    assert "ended before the reply" in error


def streamed_batches(conn: sqlite3.Connection) -> int:
    """How many batches of streaming replies are in the log: each reply's first, which
    is its row's content, and the chunks written after it."""
    (first,) = conn.execute(
        "SELECT count(*) FROM messages WHERE status = 'streaming' AND content != ''"
    ).fetchone()
    (chunks,) = conn.execute("SELECT count(*) FROM message_chunks").fetchone()
    return first + chunks


def _streamed_chunks(db: Path) -> int:
    with sqlite3.connect(db) as conn:
        return streamed_batches(conn)


def _only_conversation(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        [(cid,)] = conn.execute("SELECT id FROM conversations").fetchall()
    return cid


def test_stream_error_is_stored_with_status_and_text(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    result = run_cli("chat", "hi", "--base-url", fault_url("drop"), "--db", str(db))
    assert result.code == 6
    [(content, status, _, error)] = assistant_rows(db)
    assert (content, status) == ("partial text", "error")
    assert "broke mid-stream" in error


def test_continue_sends_the_logged_history(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    url = fault_url("ok")
    assert run_cli("chat", "first question", "--base-url", url, "--db", str(db)).code == 0
    assert run_cli("chat", "-c", "second question", "--base-url", url, "--db", str(db)).code == 0
    store = Store(db)
    [conversation] = store.conversations()
    assert conversation.messages == 4
    assert [m.content for m in store.messages(conversation.id)] == [
        "first question",
        "Hello, world",
        "second question",
        "Hello, world",
    ]
    missing = run_cli("chat", "--cid", "nope", "x", "--base-url", url, "--db", str(db))
    assert missing.code == 2
    assert "no conversation 'nope'" in missing.stderr


def test_api_key_never_reaches_the_database(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    key = "sk-very-secret-key-424242"
    assert (
        run_cli("chat", "hi", "--base-url", fault_url("ok"), "--api-key", key, "--db", str(db)).code
        == 0
    )
    assert (
        run_cli(
            "complete",
            "hi",
            "--base-url",
            fault_url("ok"),
            "--db",
            str(db),
            env={"OPENAI_API_KEY": key},
        ).code
        == 0
    )
    assert (
        run_cli(
            "chat", "hi", "--base-url", fault_url("401"), "--api-key", key, "--db", str(db)
        ).code
        == 4
    )
    files = [p for p in tmp_path.iterdir() if p.name.startswith("log.db")]
    assert files
    for path in files:
        assert key.encode() not in path.read_bytes()


def test_no_log_writes_nothing(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    assert (
        run_cli("chat", "hi", "--base-url", fault_url("ok"), "--db", str(db), "--no-log").code == 0
    )
    assert not db.exists()


def test_two_processes_log_to_one_file_at_once(fault_url, cli_env, tmp_path):
    db = tmp_path / "log.db"
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "streamkit",
                "chat",
                f"question {i}",
                "--base-url",
                fault_url("delayed"),
                "--db",
                str(db),
            ],
            env=cli_env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for i in range(4)
    ]
    for proc in procs:
        _, stderr = proc.communicate(timeout=60)
        assert proc.returncode == 0, stderr
    store = Store(db)
    assert len(store.conversations()) == 4
    hits = store.search("world")
    assert len(hits) == 4
    assert all("[world]" in snippet for _, snippet in hits)


def test_migration_from_version_1_keeps_the_data(tmp_path):
    db = tmp_path / "old.db"
    with sqlite3.connect(db) as conn:
        conn.executescript(MIGRATIONS[0])
        conn.execute("PRAGMA user_version = 1")
        conn.execute("INSERT INTO conversations VALUES ('c1', 1.0, 1.0, NULL)")
        conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at)"
            " VALUES ('c1', 'assistant', 'an old zebra reply', 1.0)"
        )
    store = Store(db)
    assert store.db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    assert [m.content for m in store.messages("c1")] == ["an old zebra reply"]
    [(message, _)] = store.search("zebra")  # the new index covers the old rows
    assert message.conversation_id == "c1"


def test_the_full_text_indexes_match_the_messages_after_every_kind_of_write(tmp_path):
    """The store writes the indexes' entries itself (migration 10 -> 11): FTS5's own
    check of each index against the messages table finds them in step after a
    migration, a recovery, a streamed and a whole reply with thinking, a reply finished
    with nothing new, and a delete."""
    db = tmp_path / "log.db"
    with sqlite3.connect(db) as conn:  # a log of the schema before, indexed by triggers
        for script in MIGRATIONS[:10]:
            conn.executescript(script)
        conn.execute("PRAGMA user_version = 10")
        conn.execute("INSERT INTO conversations (id, created_at, updated_at) VALUES ('c', 1, 1)")
        conn.execute(
            "INSERT INTO messages (conversation_id, role, content, created_at, status)"
            " VALUES ('c', 'assistant', 'an old yak', 1, 'streaming')"
        )  # left streaming by a process that is gone (no writer recorded)
        conn.execute("INSERT INTO message_chunks VALUES (1, 0, ' grazes')")
    store = Store(db)  # migrates, then recovers that reply
    conversation = store.new_conversation()
    store.add_message(conversation, "user", "a question about quokkas")
    streamed = store.add_message(conversation, "assistant", "", status="streaming")
    store.append_chunk(streamed, 0, "quokkas ")
    store.finish_message(streamed, tail="smile", status="complete", reasoning="about wombats")
    store.finish_message(streamed, tail="", status="complete", reasoning="about marsupials")
    whole = store.add_message(conversation, "assistant", "all at once", status="streaming")
    for _ in range(2):  # its text and then its thinking left as they were
        store.finish_message(whole, tail="", status="complete", reasoning="same musing")
    store.add_ended_reply(
        conversation,
        "short",
        request_id=None,
        model=None,
        provider=None,
        status="complete",
        reasoning="a brief thought",
    )
    gone = store.new_conversation()
    store.add_message(gone, "user", "soon deleted")
    store.delete_conversation(gone)
    # rank 1: the index is compared with the text of every message; the thinking's
    # index holds only the messages that have some, so it is checked in itself
    store.db.execute("INSERT INTO messages_fts(messages_fts, rank) VALUES ('integrity-check', 1)")
    store.db.execute("INSERT INTO reasoning_fts(reasoning_fts) VALUES ('integrity-check')")
    assert [m.content for m, _ in store.search("yak")] == ["an old yak grazes"]
    assert sorted(m.content for m, _ in store.search("quokkas")) == [
        "a question about quokkas",
        "quokkas smile",
    ]
    assert store.search("deleted") == []
    assert [m.id for m, _ in store.search("marsupials", reasoning=True)] == [streamed]
    assert store.search("wombats", reasoning=True) == []  # finished again: only the last
    assert [m.content for m, _ in store.search("brief", reasoning=True)] == ["short"]
    assert [m.id for m, _ in store.search("once")] == [whole]
    assert [m.id for m, _ in store.search("musing", reasoning=True)] == [whole]


def test_a_reply_written_whole_equals_one_streamed_then_finished(tmp_path):
    """``add_ended_reply`` (a short reply) leaves the row and the indexes the
    streaming path leaves."""
    store = Store(tmp_path / "log.db")
    ending = {
        "status": "complete",
        "finish_reason": "stop",
        "prompt_tokens": 3,
        "completion_tokens": 2,
        "ttft_s": 0.1,
        "duration_s": 0.2,
        "tool_calls": '[{"id":"c","name":"f","arguments":"{}"}]',
        "reasoning": "pondering aardvarks",
        "reasoning_tokens": 4,
    }
    rows = []
    for whole in (False, True):
        conversation = store.new_conversation()
        if whole:
            store.add_ended_reply(
                conversation, "quokka says", request_id=None, model="m", provider="p", **ending
            )
        else:
            message_id = store.add_message(
                conversation, "assistant", "quokka", model="m", provider="p", status="streaming"
            )
            store.finish_message(message_id, tail=" says", **ending)
        [message] = store.messages(conversation)
        row = msgspec.structs.asdict(message)
        rows.append({k: v for k, v in row.items() if k not in ("id", "conversation_id")})
        assert rows[-1].pop("created_at") and rows[-1]["undone_at"] is None
        assert [m.id for m, _ in store.search("quokka")][-1] == message.id
        assert [m.id for m, _ in store.search("aardvarks", reasoning=True)][-1] == message.id
    assert rows[0] == rows[1]
    assert rows[1]["content"] == "quokka says" and rows[1]["reasoning_tokens"] == 4
    assert len(store.search("quokka")) == 2  # each indexed once: no stale entry left


async def test_a_reply_read_in_one_piece_is_written_once(tmp_path, autojump_clock):
    store = Store(tmp_path / "log.db")
    whole, add_ended_reply = [], store.add_ended_reply
    store.add_ended_reply = lambda *args, **kwargs: (
        whole.append(args) or add_ended_reply(*args, **kwargs)
    )
    log = ConversationLog(AsyncStore(store), store.new_conversation())
    backend = SimpleNamespace(provider="test", model_name="m")
    recorder = await log.reply_recorder(GenerationRequest("completion", "m", prompt="x"), backend)

    async def produce(send):
        await send.send([TextDelta("Hello"), TextDelta(", world"), Finish("stop")])

    await run_stream(produce, [recorder], reply=recorder.reply)
    assert whole == [(log.conversation_id, "Hello, world")]
    [message] = store.messages(log.conversation_id)
    assert (message.content, message.status, message.finish_reason) == (
        "Hello, world",
        "complete",
        "stop",
    )
    assert log.last_reply_id == message.id


async def test_the_end_of_a_reply_does_not_wait_out_the_gap_between_writes(
    tmp_path, autojump_clock
):
    from streamkit.sinks.reply_recorder import MIN_GAP

    store = Store(tmp_path / "log.db")
    log = ConversationLog(AsyncStore(store), store.new_conversation())
    backend = SimpleNamespace(provider="test", model_name="m")
    recorder = await log.reply_recorder(GenerationRequest("completion", "m", prompt="x"), backend)
    ended_at = []

    async def produce(send):
        await send.send([TextDelta("first")])
        await trio.sleep(0.001)  # the row is written, and the gap after it begins
        await send.send([TextDelta(" last"), Finish("stop")])
        ended_at.append(trio.current_time())

    await run_stream(produce, [recorder], reply=recorder.reply)
    assert trio.current_time() - ended_at[0] < MIN_GAP / 2
    [message] = store.messages(log.conversation_id)
    assert (message.content, message.status) == ("first last", "complete")


async def test_a_reply_that_stalls_is_in_the_log_while_it_stalls(tmp_path, autojump_clock):
    """Many replies at once, one flusher: each reply's first text is written while it
    waits for more (a ``kill -9`` then keeps it), and its next within the interval."""
    from streamkit.sinks.reply_recorder import FLUSH_INTERVAL

    store = Store(tmp_path / "log.db")
    log_store = AsyncStore(store)
    backend = SimpleNamespace(provider="test", model_name="m")
    seen: dict[str, list[str]] = {}

    def stored(conversation: str) -> str:  # a streaming row's content has its chunks
        return "".join(m.content for m in store.messages(conversation))

    async def one(n: int) -> None:
        log = ConversationLog(log_store, store.new_conversation())
        request = GenerationRequest("completion", "m", prompt="x")
        recorder = await log.reply_recorder(request, backend)

        async def queued_so_far() -> None:  # the writes queued by now have run
            await log_store.outcome(log_store.post(lambda: None))

        async def produce(send):
            await send.send([TextDelta(f"first{n}")])
            await trio.sleep(0.5)  # a stall: what came is written meanwhile
            await queued_so_far()
            seen.setdefault(log.conversation_id, []).append(stored(log.conversation_id))
            await trio.sleep(0.5)
            await send.send([TextDelta(" second")])
            await trio.sleep(FLUSH_INTERVAL * 1.5)
            await queued_so_far()
            seen[log.conversation_id].append(stored(log.conversation_id))
            await send.send([Finish("stop")])

        await run_stream(produce, [recorder], reply=recorder.reply)
        [message] = store.messages(log.conversation_id)
        assert (message.content, message.status) == (f"first{n} second", "complete")

    async with trio.open_nursery() as nursery:
        for n in range(20):
            nursery.start_soon(one, n)
    assert len(seen) == 20
    for texts in seen.values():
        first = texts[0]
        assert first.startswith("first") and texts[1] == first + " second", texts


async def test_reply_is_written_in_batches_not_per_token(tmp_path, autojump_clock):
    store = Store(tmp_path / "log.db")
    writes: list[str] = []  # every write of reply text: the row's first, chunks, the tail
    append, add, finish = store.append_chunk, store.add_message, store.finish_message

    def counting_append(message_id: int, seq: int, text: str) -> None:
        writes.append(text)
        append(message_id, seq, text)

    def counting_add(conversation_id, role, content="", **kwargs):
        writes.append(content)
        return add(conversation_id, role, content, **kwargs)

    def counting_finish(message_id, *, tail="", **kwargs):
        writes.append(tail)
        finish(message_id, tail=tail, **kwargs)

    store.append_chunk, store.add_message = counting_append, counting_add
    store.finish_message = counting_finish
    log = ConversationLog(AsyncStore(store), store.new_conversation())
    backend = SimpleNamespace(provider="test", model_name="m")
    recorder = await log.reply_recorder(GenerationRequest("completion", "m", prompt="x"), backend)

    async def produce(send):
        for i in range(2000):  # 2000 tokens, one every 2 ms: 4 s of streaming
            await send.send([TextDelta(f"w{i} ")])
            await trio.sleep(0.002)
        await send.send([Finish("stop")])

    await run_stream(produce, [recorder], reply=recorder.reply)
    text = "".join(f"w{i} " for i in range(2000))
    assert "".join(writes) == text
    assert len(writes) < 2000 / 20  # batches of ~200 ms / 1 KiB, not tokens
    [message] = store.messages(log.conversation_id)
    assert (message.content, message.status) == (text, "complete")


def test_request_id_replays_a_completed_reply(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    first = run_cli(
        "chat", "hi", "--request-id", "job-7", "--base-url", fault_url("ok"), "--db", str(db)
    )
    assert first.code == 0 and first.stdout == "Hello, world\n"
    # The server is now unreachable: a replay must not need it.
    again = run_cli(
        "chat",
        "hi",
        "--request-id",
        "job-7",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--db",
        str(db),
    )
    assert again.code == 0
    assert again.stdout == "Hello, world\n"
    assert "replayed the stored reply of request 'job-7'" in again.stderr
    assert len(Store(db).conversations()) == 1  # the replay left no empty conversation
    # A key whose request failed is not replayed: the request is made again.
    failed = run_cli(
        "chat", "hi", "--request-id", "job-8", "--base-url", fault_url("drop"), "--db", str(db)
    )
    assert failed.code == 6
    retried = run_cli(
        "chat", "hi", "--request-id", "job-8", "--base-url", fault_url("ok"), "--db", str(db)
    )
    assert retried.code == 0 and "replayed" not in retried.stderr
    assert run_cli("chat", "hi", "--request-id", "k", "--no-log").code == 2


def test_batch_lines_are_logged_and_idempotency_keys_replay(run_cli, fault_url, tmp_path):
    import json

    db = tmp_path / "log.db"
    lines = "".join(
        json.dumps(r) + "\n"
        for r in [
            {"id": "a", "prompt": "first", "idempotency_key": "ka"},
            {
                "id": "b",
                "messages": [
                    {"role": "system", "content": "be brief"},
                    {"role": "user", "content": "second"},
                ],
            },
        ]
    )
    first = run_cli("chat", "--jsonl", "--base-url", fault_url("ok"), "--db", str(db), input=lines)
    assert first.code == 0, first.stderr
    store = Store(db)
    conversations = store.conversations()
    assert len(conversations) == 2
    contents = sorted(tuple(m.content for m in store.messages(c.id)) for c in conversations)
    assert contents == [("be brief", "second", "Hello, world"), ("first", "Hello, world")]
    batches = {row[0] for row in store.db.execute("SELECT batch FROM conversations")}
    assert len(batches) == 1 and None not in batches
    second = run_cli(
        "chat",
        "--jsonl",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--max-retries",
        "0",
        "--db",
        str(db),
        input=lines,
    )
    records = {r["id"]: r for r in map(json.loads, second.stdout.splitlines())}
    assert records["a"]["replayed"] is True and records["a"]["text"] == "Hello, world"
    assert records["b"]["error"]["type"] == "connection"  # no key: really asked again
    assert second.code == 7


def test_batch_resume_from_the_log_without_an_output_file(run_cli, fault_url, tmp_path):
    import json

    db = tmp_path / "log.db"
    source = tmp_path / "in.jsonl"
    source.write_text(
        "".join(
            json.dumps({"id": i, "prompt": f"p{i}", "model": m}) + "\n"
            for i, m in enumerate(["ok", "drop", "ok"])
        )
    )
    args = ["complete", "--jsonl", "-i", str(source), "--db", str(db), "--max-retries", "0"]
    first = run_cli(*args, "--base-url", fault_url("by-model"))
    assert first.code == 7  # line 1 broke off mid-stream
    # Resume against a server that now answers everything: only line 1 is asked again.
    again = run_cli(*args, "--resume", "--base-url", fault_url("ok"))
    assert again.code == 0, again.stderr
    records = {r["id"]: r for r in map(json.loads, again.stdout.splitlines())}
    assert sorted(records) == [0, 1, 2]
    assert records[0].get("replayed") and records[2].get("replayed")
    assert "replayed" not in records[1] and records[1]["text"] == "Hello, world"
    no_name = run_cli("complete", "--jsonl", "--resume", "--db", str(db), input="")
    assert no_name.code == 2 and "--batch NAME" in no_name.stderr


def test_logs_help_has_examples(run_cli):
    result = run_cli("logs", "--help")
    assert result.code == 0
    assert "Examples:" in result.stdout
    assert "streamkit logs search" in result.stdout


_WORDY = [
    "write to my e-mail address",
    "what's the weather",
    "version 3.5 is out",
    "I like C++ a lot",
    "nothing to see here",
]


def _wordy_log(tmp_path: Path) -> Path:
    db = tmp_path / "log.db"
    store = Store(db)
    conversation = store.new_conversation()
    for text in _WORDY:
        store.add_message(conversation, "user", text)
    store.close()
    return db


def test_logs_search_takes_plain_words(run_cli, tmp_path):
    import json

    db = _wordy_log(tmp_path)
    for query, expected in [
        ("e-mail", _WORDY[0]),
        ("what's", _WORDY[1]),
        ("3.5", _WORDY[2]),
        ("C++", _WORDY[3]),
    ]:
        result = run_cli("logs", "search", query, "--json", "--db", str(db))
        assert result.code == 0, (query, result.stderr)
        found = [json.loads(line)["content"] for line in result.stdout.splitlines()]
        assert found == [expected], query


def test_logs_search_fts_takes_the_query_syntax(run_cli, tmp_path):
    db = _wordy_log(tmp_path)
    result = run_cli("logs", "search", "--fts", "weather OR lot", "--db", str(db))
    assert result.code == 0, result.stderr
    assert len(result.stdout.splitlines()) == 2
    plain = run_cli("logs", "search", "weather OR lot", "--db", str(db))
    assert plain.code == 0 and plain.stdout == ""  # three words, all required
    bad = run_cli("logs", "search", "--fts", "e-mail", "--db", str(db))
    assert bad.code == 2 and bad.stderr.startswith("streamkit: bad search query")


async def test_a_batch_result_goes_out_only_once_its_rows_are_committed(tmp_path):
    """A batch line does not wait for its log writes (the next line starts), but its
    result is written only when its reply is committed, as another process sees it."""
    import json

    from streamkit.pipeline.batch import BatchRunner
    from streamkit.request import GenerationOptions

    path = tmp_path / "log.db"
    store = Store(path)
    reader = sqlite3.connect(path)  # a connection of its own: only committed rows

    class Backend:
        provider, model_name = "test", "m"

        async def stream(self, request, send) -> None:
            await trio.sleep(0.005)
            await send.send([TextDelta("Hello"), Finish("stop")])

    logged_when_written = []

    class Output:
        failed = False

        def write(self, data: bytes) -> None:
            for line in data.splitlines():
                record_id = json.dumps(json.loads(line)["id"])
                (complete,) = reader.execute(
                    "SELECT count(*) FROM conversations c JOIN messages m"
                    " ON m.conversation_id = c.id WHERE c.batch = 'b' AND c.record_id = ?"
                    " AND m.role = 'assistant' AND m.status = 'complete'",
                    (record_id,),
                ).fetchone()
                logged_when_written.append(complete)

    source = trio.testing.MemoryReceiveStream()
    source.put_data(b"".join(b'{"id": %d, "prompt": "p"}\n' % i for i in range(60)))
    source.put_eof()
    log = AsyncStore(store)
    runner = BatchRunner(
        Backend(),
        Output(),
        kind="completion",
        model="m",
        defaults=GenerationOptions(),
        concurrency=16,
        store=log,
        batch_name="b",
    )
    summary = await runner.run(source)
    await log.aclose()
    assert (summary.total, summary.failed) == (60, 0)
    assert logged_when_written == [1] * 60


async def test_a_logged_reply_is_freed_as_it_ends_not_by_the_collector(tmp_path):
    """A batch keeps hundreds of replies in flight: each one's objects must go by
    reference counting when it ends, not wait for the cycle collector, which would
    walk all of them again and again."""
    import gc
    import weakref

    store = Store(tmp_path / "log.db")
    log_store = AsyncStore(store)
    backend = SimpleNamespace(provider="test", model_name="m")

    async def one() -> weakref.ref:
        log = ConversationLog(log_store, store.new_conversation())
        request = GenerationRequest("completion", "m", prompt="x")
        recorder = await log.record_request(request, backend)

        async def produce(send):
            await send.send([TextDelta("hi"), Finish("stop")])

        await run_stream(produce, [recorder])
        return weakref.ref(recorder)

    gc.collect()
    gc.disable()
    try:
        gone = await one()
        await log_store.outcome(log_store.post(lambda: None))  # the log's last call: not it
        assert gone() is None
    finally:
        gc.enable()
    assert [m.content for m in store.messages(store.last_conversation())] == ["x", "hi"]
