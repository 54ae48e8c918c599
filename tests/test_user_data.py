"""The data a user gives is never destroyed: batch input and output, stdout, exit codes."""

from __future__ import annotations

import json
import resource
import signal
import subprocess
import sys

import pytest

from streamkit.protocol.context_limit import exceeds_context
from streamkit.protocol.ndjson import DEFAULT_MAX_LINE_BYTES
from streamkit.store.database import Store

CONTEXT = "The capital of France is"


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def jsonl(*items: object) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


def one_error_line(stderr: str) -> str:
    """The single ``streamkit: ...`` line a failure must be."""
    assert "Traceback" not in stderr, stderr
    (line,) = stderr.splitlines()
    assert line.startswith("streamkit: ")
    return line


# -- an overlong line is one error record; the batch goes on --------------------------


def test_an_overlong_line_is_one_input_error_and_the_batch_goes_on(run_cli, fault_url):
    overlong = "x" * (DEFAULT_MAX_LINE_BYTES + 1)
    result = run_cli(
        "complete",
        "--jsonl",
        "--base-url",
        fault_url("ok"),
        input=jsonl({"id": "a", "prompt": "p"}, overlong, {"id": "c", "prompt": "q"}),
    )
    assert result.code == 7
    assert "Traceback" not in result.stderr
    first, middle, last = records(result.stdout)
    assert (first["id"], first["text"]) == ("a", "Hello, world")
    assert middle["id"] == 2 and middle["error"]["type"] == "input"
    assert "longer than" in middle["error"]["message"]
    assert (last["id"], last["text"]) == ("c", "Hello, world")


def test_an_endless_line_is_reported_at_once(fault_url, cli_env):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "chat",
            "--jsonl",
            "-i",
            "/dev/zero",
            "--base-url",
            fault_url("ok"),
        ],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        record = json.loads(proc.stdout.readline())  # while /dev/zero is still being read
        assert record["id"] == 1 and record["error"]["type"] == "input"
        proc.send_signal(signal.SIGINT)
        rest, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130
    assert rest == b"" and b"Traceback" not in stderr


def test_score_reads_its_input_with_the_same_bounded_reader(run_cli, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(
        jsonl(
            {"id": "a", "context": CONTEXT, "continuation": " Paris."},
            "y" * (DEFAULT_MAX_LINE_BYTES + 10),
            {"id": "c", "text": "Hello there"},
        )
    )
    result = run_cli("score", "--jsonl", "-i", str(source))
    assert result.code == 7, result.stderr
    assert "Traceback" not in result.stderr
    out = records(result.stdout)
    assert [r["id"] for r in out] == ["a", 2, "c"]
    assert out[1]["error"]["type"] == "input" and "longer than" in out[1]["error"]["message"]
    assert out[0]["n_tokens"] >= 1 and out[2]["n_tokens"] >= 1


# -- the output never overwrites what is read ----------------------------------------


def _batch_args(command: str, fault_url) -> list[str]:
    if command == "score":
        return ["score", "--jsonl"]
    return [command, "--jsonl", "--base-url", fault_url("ok")]


@pytest.mark.parametrize("command", ["chat", "complete", "score"])
@pytest.mark.parametrize("form", ["same path", "hard link", "symlink", "stdin", "resume"])
def test_an_output_that_is_the_input_is_refused(cli_env, fault_url, tmp_path, command, form):
    source = tmp_path / "in.jsonl"
    text = jsonl({"id": "a", "prompt": "p", "text": "t"}, {"id": "b", "prompt": "q", "text": "u"})
    source.write_text(text + '{"id": "torn"')  # --resume would cut a torn last line
    output = source
    if form == "hard link":
        output = tmp_path / "link.jsonl"
        output.hardlink_to(source)
    elif form == "symlink":
        output = tmp_path / "sym.jsonl"
        output.symlink_to(source)
    args = [sys.executable, "-m", "streamkit", *_batch_args(command, fault_url), "-o", str(output)]
    if form == "resume":
        args.append("--resume")
    with source.open("rb") as stdin:
        if form != "stdin":
            args += ["-i", str(source)]
        proc = subprocess.run(
            args, stdin=stdin, env=cli_env, capture_output=True, text=True, timeout=120
        )
    assert proc.returncode == 2
    assert "is the input" in one_error_line(proc.stderr)
    assert source.read_text() == text + '{"id": "torn"'


@pytest.mark.parametrize("command", ["chat", "score"])
def test_stdout_appended_to_the_input_is_refused(cli_env, fault_url, tmp_path, command):
    source = tmp_path / "in.jsonl"
    text = jsonl({"id": "a", "prompt": "p", "text": "t"})
    source.write_text(text)
    line = " ".join(
        [sys.executable, "-m", "streamkit", *_batch_args(command, fault_url), "-i", str(source)]
    )
    proc = subprocess.run(
        f"{line} >> {source}", shell=True, env=cli_env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 2
    assert "stdout is the input" in one_error_line(proc.stderr)
    assert source.read_text() == text


def test_an_output_that_is_the_log_is_refused(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    assert run_cli("complete", "x", "--base-url", fault_url("ok"), "--db", str(db)).code == 0
    before = db.read_bytes()
    result = run_cli(
        "complete",
        "--jsonl",
        "--base-url",
        fault_url("ok"),
        "--db",
        str(db),
        "-o",
        str(db),
        input=jsonl({"prompt": "p"}),
    )
    assert result.code == 2
    assert "is the log" in one_error_line(result.stderr)
    assert db.read_bytes() == before


# -- one id, one line ---------------------------------------------------------------


def test_ids_are_unique_in_a_batch_and_resume_from_the_log_replays_each_lines_own(
    run_cli, fault_url, tmp_path
):
    source = tmp_path / "in.jsonl"
    source.write_text(
        jsonl(
            {"id": "a", "prompt": "one"},
            {"id": "a", "prompt": "two"},  # given twice
            {"prompt": "three"},  # named 3 by its line
            {"id": 3, "prompt": "four"},  # 3 is line 3's already
            {"id": 6, "prompt": "five"},
            {"prompt": "six"},  # its number, 6, is line 5's id
        )
    )
    db = tmp_path / "log.db"
    args = ["complete", "--jsonl", "-i", str(source), "--db", str(db)]
    first = run_cli(*args, "--base-url", fault_url("ok"))
    assert first.code == 7
    out = records(first.stdout)
    assert [r["id"] for r in out] == ["a", "a", 3, 3, 6, 6]
    assert ["error" in r for r in out] == [False, True, False, True, False, True]
    assert "already line 1's" in out[1]["error"]["message"]
    assert "already line 3's" in out[3]["error"]["message"]
    assert "already line 5's" in out[5]["error"]["message"]
    assert all(r["error"]["type"] == "input" for r in out if "error" in r)
    again = run_cli(*args, "--resume", "--base-url", "http://127.0.0.1:9/v1")
    assert again.code == 7
    replayed = records(again.stdout)
    assert [r.get("replayed", False) for r in replayed] == [True, False, True, False, True, False]
    assert [r.get("text") for r in replayed[::2]] == ["Hello, world"] * 3


def test_score_ids_are_unique_too(run_cli):
    result = run_cli(
        "score",
        "--jsonl",
        input=jsonl(
            {"id": 2, "text": "Hello there"},
            {"text": "Hello again"},
            {"id": "c", "text": "Hi there"},
        ),
    )
    assert result.code == 7
    out = records(result.stdout)
    assert [r["id"] for r in out] == [2, 2, "c"]
    assert out[1]["error"]["type"] == "input" and "already line 1's" in out[1]["error"]["message"]
    assert "error" not in out[0] and "error" not in out[2]


# -- an output that cannot be written: one line, exit 12, what was written kept -------


EXIT_OUTPUT = 12


def _capped(limit: int):
    """A child whose files may grow to ``limit`` bytes (writes past it fail: EFBIG)."""
    return lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))


def _to_dev_full(args: list[str], env: dict, stdin: str = "") -> subprocess.CompletedProcess:
    with open("/dev/full", "wb") as full:
        return subprocess.run(
            [sys.executable, "-m", "streamkit", *args],
            input=stdin.encode(),
            stdout=full,
            stderr=subprocess.PIPE,
            env=env,
            timeout=120,
        )


@pytest.mark.parametrize(
    "args",
    [
        ["chat", "hi"],
        ["complete", "x", "--events"],
    ],
    ids=" ".join,
)
def test_a_full_disk_on_stdout_is_one_line_and_the_log_keeps_the_reply(
    args, cli_env, fault_url, tmp_path
):
    db = tmp_path / "log.db"
    proc = _to_dev_full([*args, "--base-url", fault_url("ok"), "--db", str(db)], cli_env)
    assert proc.returncode == EXIT_OUTPUT
    line = one_error_line(proc.stderr.decode())
    assert "cannot write" in line and "No space left on device" in line
    store = Store(db)
    (reply,) = [m for m in store.messages(store.last_conversation()) if m.role == "assistant"]
    assert (reply.content, reply.status) == ("Hello, world", "complete")


def test_what_reached_stdout_before_it_filled_is_kept(cli_env, fault_url, tmp_path):
    target = tmp_path / "reply.txt"
    with target.open("wb") as out:
        proc = subprocess.run(
            [
                sys.executable,
                "-m",
                "streamkit",
                "chat",
                "hi",
                "--no-log",
                "--base-url",
                fault_url("ok"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.PIPE,
            env=cli_env,
            timeout=120,
            preexec_fn=_capped(5),
        )
    assert proc.returncode == EXIT_OUTPUT
    assert "File too large" in one_error_line(proc.stderr.decode())
    assert target.read_bytes() == b"Hello"


@pytest.mark.parametrize("where", ["stdout", "-o"])
def test_a_full_disk_under_a_batch_is_one_line(where, cli_env, fault_url):
    args = ["complete", "--jsonl", "--base-url", fault_url("ok")]
    if where == "-o":
        args += ["-o", "/dev/full"]
    proc = _to_dev_full(args, cli_env, jsonl(*({"prompt": "p"} for _ in range(30))))
    assert proc.returncode == EXIT_OUTPUT
    assert "No space left on device" in one_error_line(proc.stderr.decode())


def test_a_batch_output_that_filled_keeps_its_records_and_resumes(cli_env, fault_url, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(*({"id": i, "prompt": f"p{i}"} for i in range(20))))
    output = tmp_path / "out.jsonl"
    args = [
        sys.executable,
        "-m",
        "streamkit",
        "complete",
        "--jsonl",
        "-i",
        str(source),
        "-o",
        str(output),
        "--no-log",
        "--base-url",
        fault_url("ok"),
    ]
    proc = subprocess.run(
        args,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=cli_env,
        timeout=120,
        preexec_fn=_capped(1000),
    )
    assert proc.returncode == EXIT_OUTPUT
    assert "File too large" in one_error_line(proc.stderr.decode())
    kept = output.read_bytes()
    assert len(kept) == 1000
    whole = records(kept[: kept.rfind(b"\n") + 1].decode())
    assert [r["id"] for r in whole] == list(range(len(whole))) and len(whole) >= 3
    resumed = subprocess.run(
        [*args, "--resume"], stdin=subprocess.DEVNULL, capture_output=True, env=cli_env, timeout=120
    )
    assert resumed.returncode == 0, resumed.stderr
    assert sorted(r["id"] for r in records(output.read_text())) == list(range(20))


@pytest.mark.parametrize(
    "args",
    [
        ["score", " Paris.", "-C", CONTEXT],
        ["score", " Paris.", "-C", CONTEXT, "--json"],
        ["score", "--jsonl", "-o", "/dev/full"],
        ["logs", "list"],
    ],
    ids=" ".join,
)
def test_a_full_disk_under_score_and_logs_is_one_line(args, cli_env, fault_url):
    subprocess.run(
        [sys.executable, "-m", "streamkit", "complete", "x", "--base-url", fault_url("ok")],
        env=cli_env,
        capture_output=True,
        timeout=60,
    )
    proc = _to_dev_full(args, cli_env, jsonl({"id": "a", "text": "Hello there"}))
    assert proc.returncode == EXIT_OUTPUT
    assert "No space left on device" in one_error_line(proc.stderr.decode())


# -- --output outside a batch ------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [["chat", "hi"], ["complete", "x"], ["score", "x y"]], ids=" ".join
)
def test_output_outside_a_batch_is_refused(run_cli, fault_url, tmp_path, command):
    target = tmp_path / "out.txt"
    result = run_cli(*command, "-o", str(target), "--base-url", fault_url("ok"))
    assert result.code == 2
    assert "--output is for --jsonl batches" in one_error_line(result.stderr)
    assert result.stdout == "" and not target.exists()


# -- a text longer than the context: one exit code ------------------------------------


EXIT_MODEL = 8


def test_a_text_longer_than_the_context_is_a_model_error_as_in_complete(run_cli, llama_server):
    long = "word " * 3000  # over both the scoring window (2048) and the server's n_ctx (2048)
    local = run_cli("score", long)
    assert local.code == EXIT_MODEL
    assert "scoring window" in one_error_line(local.stderr)
    remote = run_cli("score", long, "--base-url", llama_server)
    assert remote.code == EXIT_MODEL
    assert "context length" in one_error_line(remote.stderr)
    batch = run_cli(
        "score", "--jsonl", "--base-url", llama_server, input=jsonl({"id": "long", "text": long})
    )
    assert batch.code == 7
    (too_long,) = records(batch.stdout)
    assert too_long["error"]["type"] == "model"


def test_servers_context_errors_are_told_from_others():
    for message in [
        "HTTP 400 Bad Request from POST /v1/completions: This model's maximum context length "
        "is 512 tokens, however you requested 702 tokens",
        "HTTP 400 Bad Request from POST /v1/completions: the request exceeds the available "
        "context size, try increasing it",
        "HTTP 400: context_length_exceeded",
    ]:
        assert exceeds_context(message)
    assert not exceeds_context("HTTP 400 Bad Request from POST /v1/completions: bad `top_p`")
    assert not exceeds_context("HTTP 404 Not Found from POST /v1/completions: no such model")
