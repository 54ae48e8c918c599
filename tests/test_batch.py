"""JSONL batch mode: every line one record, bounded concurrency, resume, pipes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import typing

import pytest

from streamkit.cli import options as opt
from streamkit.protocol.ndjson import (
    BatchIds,
    BatchRecord,
    InputProblem,
    LineSplitter,
    LineTooLong,
    TooLong,
    id_key,
    parse_record,
)
from streamkit.protocol.records import RANGES
from streamkit.request import GenerationOptions


def records(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


def jsonl(*items: object) -> str:
    return "".join((item if isinstance(item, str) else json.dumps(item)) + "\n" for item in items)


# -- sans-IO: lines and records ------------------------------------------------


def test_line_splitter_same_result_however_chunked():
    data = b'{"a":1}\r\n\n{"b":2}\n{"c":3}'
    whole = LineSplitter()
    expected = whole.feed(data) + whole.close()
    assert expected == [(1, b'{"a":1}'), (2, b""), (3, b'{"b":2}'), (4, b'{"c":3}')]
    for cut in range(len(data) + 1):
        splitter = LineSplitter()
        got = splitter.feed(data[:cut]) + splitter.feed(data[cut:]) + splitter.close()
        assert got == expected


def test_line_splitter_skips_an_overlong_line_in_bounded_memory():
    data = b'{"a":1}\n' + b"x" * 25 + b'\n{"b":2}\r\n' + b"y" * 11 + b"\r\n" + b"z" * 40
    whole = LineSplitter(10, skip_overlong=True)
    expected = whole.feed(data) + whole.close()
    assert expected == [
        (1, b'{"a":1}'),
        (2, TooLong(10)),
        (3, b'{"b":2}'),
        (4, TooLong(10)),
        (5, TooLong(10)),
    ]
    for cut in range(len(data) + 1):
        for step in (1, 3, 7):  # the tail fed in small reads, as from a pipe
            splitter = LineSplitter(10, skip_overlong=True)
            got = splitter.feed(data[:cut])
            for start in range(cut, len(data), step):
                got += splitter.feed(data[start : start + step])
                assert splitter.held_bytes <= 10
            assert got + splitter.close() == expected
    with pytest.raises(LineTooLong, match="line 2 is longer than 10 bytes"):
        LineSplitter(10).feed(b"ok\n" + b"x" * 11 + b"\n")


def test_batch_ids_name_one_line_each():
    ids = BatchIds()
    assert ids.duplicate(1, "a") is None
    assert ids.duplicate(2, 3) is None  # given as 3 on line 2
    assert ids.duplicate(3, 3) == (
        "line 3: the id 3 is already line 2's (ids must be unique "
        "in a batch; a line without one is named by its number)"
    )
    assert "already line 1's" in ids.duplicate(4, "a")
    assert ids.duplicate(5, "3") is None  # the string "3" is not the number 3
    assert ids.duplicate(6, 6) is None
    assert ids.duplicate(6, 6) is None  # the same line asking again


def test_batch_ids_agree_with_one_key_per_line_whatever_the_order():
    """Runs of counting integer ids answer exactly as a key per id would: random
    mixes of counting, repeated, shuffled, string and boolean ids."""
    import random

    def oracle_duplicate(seen: dict, line: int, record_id) -> int | None:
        first = seen.setdefault(id_key(record_id), line)
        return None if first == line else first

    for seed in range(200):
        rng = random.Random(seed)
        ids, seen, line = BatchIds(), {}, 0
        for _ in range(rng.randint(1, 60)):
            line += rng.choice((1, 1, 1, 2))  # a blank line now and then
            record_id = rng.choice(
                (line, line - 1, line + 1, rng.randint(0, 40), str(line), True, False)
            )
            for _ in range(rng.choice((1, 1, 2))):  # the same line may ask again
                expected = oracle_duplicate(seen, line, record_id)
                got = ids.duplicate(line, record_id)
                assert (got is None) == (expected is None), (seed, line, record_id)
                if expected is not None:
                    assert f"already line {expected}'s" in got


def test_batch_ids_of_counting_lines_take_no_memory_per_line():
    import tracemalloc

    ids = BatchIds()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for line in range(1, 100_001):
            assert ids.duplicate(line, line - 1) is None  # "id": 0, 1, 2, ...
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 10_000  # a key per line would be about 10 MB
    assert "already line 5's" in ids.duplicate(100_001, 4)


def test_parse_record_fields_defaults_and_problems():
    defaults = GenerationOptions(max_tokens=10, temperature=0.5)
    ok = parse_record(
        3,
        b'{"prompt": "hi", "stop": "x", "max_tokens": 2, "extra": 1}',
        kind="completion",
        model="m",
        defaults=defaults,
    )
    assert isinstance(ok, BatchRecord)
    assert ok.id == 3  # no id: the line number
    assert ok.request.options == GenerationOptions(max_tokens=2, temperature=0.5, stop=("x",))
    assert ok.request.model == "m"
    chat = parse_record(
        1,
        b'{"id": "q", "prompt": "hi", "system": "be brief"}',
        kind="chat",
        model=None,
        defaults=defaults,
    )
    assert [(m.role, m.content) for m in chat.request.messages] == [
        ("system", "be brief"),
        ("user", "hi"),
    ]
    for line, fragment in [
        (b"{oops", "not valid JSON"),
        (b'"a string"', "expected a JSON object"),
        (b'{"id": "x", "prompt": 5}', "$.prompt"),
        (b'{"id": "x", "messages": [{"role": "user"}]}', "content"),
        (b'{"id": "x"}', "no `prompt`"),
    ]:
        problem = parse_record(9, line, kind="completion", model=None, defaults=defaults)
        assert isinstance(problem, InputProblem), line
        assert fragment in problem.message
        assert problem.message.startswith("line 9: ")
    assert (
        parse_record(9, b'{"id": "x", "prompt": 5}', kind="chat", model=None, defaults=defaults).id
        == "x"
    )


@pytest.mark.parametrize(
    "fields, fragment",
    [
        ({"max_tokens": 0}, "`max_tokens` is 0: it must be at least 1"),
        ({"max_tokens": -5}, "`max_tokens` is -5: it must be at least 1"),
        ({"temperature": -1}, "`temperature` is -1: it must be at least 0"),
        ({"top_p": 5}, "`top_p` is 5: it must be between 0 and 1"),
        ({"top_p": -0.5}, "`top_p` is -0.5: it must be between 0 and 1"),
    ],
)
def test_record_values_the_flags_refuse_are_input_problems(fields, fragment):
    line = json.dumps({"id": "r", "prompt": "hi", **fields}).encode()
    problem = parse_record(4, line, kind="chat", model=None, defaults=GenerationOptions())
    assert isinstance(problem, InputProblem)
    assert (problem.id, problem.message) == ("r", f"line 4: {fragment}")


def test_records_and_flags_share_their_ranges():
    edges = b'{"prompt": "hi", "max_tokens": 1, "temperature": 0, "top_p": 1}'
    ok = parse_record(1, edges, kind="completion", model=None, defaults=GenerationOptions())
    assert isinstance(ok, BatchRecord)
    for flag, name in (
        (opt.MaxTokens, "max_tokens"),
        (opt.Temperature, "temperature"),
        (opt.TopP, "top_p"),
    ):
        option = typing.get_args(flag)[1]
        assert (option.min, option.max) == (RANGES[name].low, RANGES[name].high)


# -- against servers -------------------------------------------------------------


@pytest.mark.parametrize("order", ["ordered", "unordered"])
def test_real_server_batch_of_20(run_cli, llama_server, order):
    lines = [
        {"id": f"q{i}", "prompt": f"Question {i}: what is {i} + {i}?", "max_tokens": 4}
        for i in range(20)
    ]
    args = ["chat", "--jsonl", "--base-url", llama_server, "-j", "4", "--seed", "1"]
    if order == "unordered":
        args.append("--unordered")
    result = run_cli(*args, input=jsonl(*lines))
    assert result.code == 0, result.stderr
    out = records(result.stdout)
    ids = [r["id"] for r in out]
    if order == "ordered":
        assert ids == [line["id"] for line in lines]
    else:
        assert sorted(ids) == sorted(line["id"] for line in lines)
    for record in out:
        assert record["text"]
        assert record["finish_reason"] in ("stop", "length")
        assert record["latency"]["total_s"] >= record["latency"]["ttft_s"] > 0
    assert result.stderr == ""


def test_mixed_faults_every_line_has_exactly_one_record(run_cli, fault_url):
    scenarios = ["ok"] * 16 + ["always-500", "malformed", "stall", "drop"]
    lines = [{"id": f"r{i}", "prompt": f"p{i}", "model": name} for i, name in enumerate(scenarios)]
    lines.insert(5, "this line is not JSON")
    result = run_cli(
        "complete",
        "--jsonl",
        "--base-url",
        fault_url("by-model"),
        "--max-retries",
        "1",
        "--idle-timeout",
        "1",
        "-j",
        "8",
        input=jsonl(*lines),
    )
    assert result.code == 7
    out = records(result.stdout)
    assert len(out) == len(lines)
    by_id = {r["id"]: r for r in out}
    assert len(by_id) == len(lines)  # one record per line, no duplicates
    assert by_id[6]["error"]["type"] == "input"  # the bad line, named by its line number
    failed = {i: by_id[f"r{i}"]["error"]["type"] for i in (16, 17, 18, 19)}
    assert failed == {16: "http", 17: "protocol", 18: "timeout", 19: "protocol"}
    assert by_id["r16"]["error"]["status"] == 500
    assert by_id["r19"]["text"] == "partial text"  # received before the drop: kept
    assert all(by_id[f"r{i}"]["text"] == "Hello, world" for i in range(16))
    assert all("error" not in by_id[f"r{i}"] for i in range(16))
    assert result.stderr.strip().splitlines()[-1] == (
        "streamkit: 5 of 21 lines failed (see their error records)"
    )


def test_batch_events_are_tagged_with_ids(run_cli, fault_url):
    result = run_cli(
        "chat",
        "--jsonl",
        "--events",
        "--base-url",
        fault_url("ok"),
        input=jsonl({"id": "a", "prompt": "x"}, {"id": "b", "prompt": "y"}),
    )
    assert result.code == 0
    out = records(result.stdout)
    assert {r["id"] for r in out} == {"a", "b"}
    assert [r["type"] for r in out if r["id"] == "a"] == ["delta", "delta", "finish", "result"]


def test_resume_after_sigint_covers_every_id_exactly_once(fault_url, cli_env, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text(jsonl(*({"id": i, "prompt": f"p{i}"} for i in range(40))))
    output = tmp_path / "out.jsonl"
    url = fault_url("delayed")
    args = [
        sys.executable,
        "-m",
        "streamkit",
        "chat",
        "--jsonl",
        "-i",
        str(source),
        "-o",
        str(output),
        "-j",
        "2",
        "--base-url",
        url,
    ]
    proc = subprocess.Popen(args, env=cli_env, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while not output.exists() or output.read_text().count("\n") < 6:
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    assert b"Traceback" not in stderr
    first = records(output.read_text())
    assert 6 <= len(first) < 40
    # A torn line from a crash must not break the resumed file.
    with output.open("a") as handle:
        handle.write('{"id": 39, "te')
    second = subprocess.run([*args, "--resume"], env=cli_env, capture_output=True, timeout=60)
    assert second.returncode == 0, second.stderr
    ids = [r["id"] for r in records(output.read_text())]
    assert sorted(ids) == list(range(40))


def test_closed_stdout_ends_quietly(fault_url, cli_env):
    lines = jsonl(*({"id": i, "prompt": "x"} for i in range(200)))
    proc = subprocess.run(
        f"{sys.executable} -m streamkit complete --jsonl --base-url {fault_url('ok')} | head -1",
        shell=True,
        input=lines.encode(),
        capture_output=True,
        env=cli_env,
        timeout=60,
    )
    assert proc.returncode == 0
    assert json.loads(proc.stdout)["id"] == 0
    assert proc.stderr == b""
