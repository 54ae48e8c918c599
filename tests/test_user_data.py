"""The data a user gives is never destroyed: batch input and output, stdout, exit codes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

from streamkit.protocol.ndjson import DEFAULT_MAX_LINE_BYTES

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
    result = run_cli("complete", "--jsonl", "--base-url", fault_url("ok"),
                     input=jsonl({"id": "a", "prompt": "p"}, overlong, {"id": "c", "prompt": "q"}))
    assert result.code == 7
    assert "Traceback" not in result.stderr
    first, middle, last = records(result.stdout)
    assert (first["id"], first["text"]) == ("a", "Hello, world")
    assert middle["id"] == 2 and middle["error"]["type"] == "input"
    assert "longer than" in middle["error"]["message"]
    assert (last["id"], last["text"]) == ("c", "Hello, world")


def test_an_endless_line_is_reported_at_once(fault_url, cli_env):
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "chat", "--jsonl", "-i", "/dev/zero",
         "--base-url", fault_url("ok")],
        env=cli_env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
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
    source.write_text(jsonl({"id": "a", "context": CONTEXT, "continuation": " Paris."},
                            "y" * (DEFAULT_MAX_LINE_BYTES + 10),
                            {"id": "c", "text": "Hello there"}))
    result = run_cli("score", "--jsonl", "-i", str(source))
    assert result.code == 7, result.stderr
    assert "Traceback" not in result.stderr
    out = records(result.stdout)
    assert [r["id"] for r in out] == ["a", 2, "c"]
    assert out[1]["error"]["type"] == "input" and "longer than" in out[1]["error"]["message"]
    assert out[0]["n_tokens"] >= 1 and out[2]["n_tokens"] >= 1
