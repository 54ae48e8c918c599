"""The cap on one reply's size (``max_reply_bytes``): a never-ending stream stops there,
with one protocol error, and what arrived up to the cap is printed and logged."""

from __future__ import annotations

import json

import pytest
from test_faults_cli import assert_one_error_line

from streamkit.events import Finish, StreamError, TextDelta, ToolCallDelta, Usage
from streamkit.protocol.reply_limit import ReplyLimit, describe_size


def test_under_and_at_the_cap_batches_pass_whole():
    limit = ReplyLimit(10)
    batch = [TextDelta("hello"), Usage(1, 1, 2), ToolCallDelta(0, "c", "f", "{}")]
    assert limit.admit(batch) is batch
    assert limit.admit([TextDelta("abc")]) == [TextDelta("abc")]  # exactly 10 bytes
    assert not limit.exceeded


def test_the_crossing_batch_is_cut_at_the_cap_and_ends_with_the_error():
    limit = ReplyLimit(5)
    kept = limit.admit([TextDelta("abc"), TextDelta("déf", 0, token_ids=(1, 2)), Finish("stop")])
    assert kept[:2] == [TextDelta("abc"), TextDelta("d")]  # "é" is 2 bytes: 6 > 5
    assert kept[2] == StreamError(
        "protocol",
        "the reply grew past 5 bytes (max_reply_bytes in the config file) and was cut there",
    )
    assert len(kept) == 3 and limit.exceeded
    assert limit.admit([TextDelta("more"), Finish("stop")]) == []


def test_tool_call_arguments_count_too():
    limit = ReplyLimit(5)
    kept = limit.admit([ToolCallDelta(0, "c", "f", '{"a": 1}')])
    assert kept[0] == ToolCallDelta(0, "c", "f", '{"a":')
    assert type(kept[1]) is StreamError


@pytest.mark.parametrize(
    ("count", "shown"),
    [
        (16 << 20, "16 MiB"),
        (64 << 10, "64 KiB"),
        (1000, "1000 bytes"),
        (3 << 30, "3 GiB"),
        ((1 << 20) + 1, "1048577 bytes"),
    ],
)
def test_sizes_are_described_exactly(count, shown):
    assert describe_size(count) == shown


# -- through the CLI ---------------------------------------------------------------------


@pytest.fixture
def capped(tmp_path):
    """An environment whose config file caps a reply at ``max_reply_bytes``."""

    def make(max_reply_bytes: int) -> dict[str, str]:
        config = tmp_path / "capped.toml"
        config.write_text(f"max_reply_bytes = {max_reply_bytes}\n")
        return {"STREAMKIT_CONFIG": str(config), "STREAMKIT_DB": str(tmp_path / "log.db")}

    return make


def logged_replies(run_cli, env: dict[str, str]) -> list[dict]:
    conversations = [
        json.loads(line) for line in run_cli("logs", "list", "--json", env=env).stdout.splitlines()
    ]
    messages = [
        json.loads(line)
        for line in run_cli(
            "logs", "show", conversations[0]["id"], "--json", env=env
        ).stdout.splitlines()
    ]
    return [m for m in messages if m["role"] == "assistant"]


def test_a_never_ending_stream_stops_at_the_cap_and_keeps_what_arrived(run_cli, fault_url, capped):
    env = capped(20_000)
    result = run_cli("chat", "hi", "--base-url", fault_url("endless"), env=env, timeout=60)
    assert result.code == 6
    assert result.stdout == "x" * 20_000 + "\n"
    assert_one_error_line(result.stderr, "the reply grew past 20000 bytes (max_reply_bytes")
    (reply,) = logged_replies(run_cli, env)
    assert reply["content"] == "x" * 20_000


def test_a_whole_json_reply_is_cut_at_the_cap(run_cli, fault_url, capped):
    result = run_cli(
        "chat", "hi", "--base-url", fault_url("whole-large"), "--no-log", env=capped(100_000)
    )
    assert result.code == 6
    assert result.stdout == "y" * 100_000 + "\n"
    assert_one_error_line(result.stderr, "grew past 100000 bytes")
    result = run_cli(
        "chat", "hi", "--base-url", fault_url("whole-large"), "--no-log", env=capped(1000)
    )  # 256 KiB of JSON is more than 1000 bytes need
    assert result.code == 6
    assert result.stdout == ""
    assert_one_error_line(result.stderr, "the JSON answer is larger than 69536 bytes")


def test_the_local_model_stops_at_the_cap_too(run_cli, capped):
    env = capped(40)
    result = run_cli(
        "chat",
        "Tell me a long story about a dragon.",
        "-n",
        "200",
        "--seed",
        "1",
        "--temperature",
        "1",
        env=env,
    )
    assert result.code == 6, result.stderr
    assert len(result.stdout.encode()) in range(37, 42)  # 40 bytes, whole characters, "\n"
    assert_one_error_line(result.stderr, "the reply grew past 40 bytes")
    (reply,) = logged_replies(run_cli, env)
    assert reply["content"] == result.stdout[:-1]


def test_a_cap_below_one_byte_is_a_config_error(run_cli, capped):
    result = run_cli("chat", "hi", env=capped(0))
    assert result.code == 2
    assert_one_error_line(result.stderr, "max_reply_bytes must be at least 1, not 0")


def test_without_a_setting_the_cap_is_16_mib(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("endless"), "--no-log", timeout=120)
    assert result.code == 6
    assert len(result.stdout) == (16 << 20) + 1 and set(result.stdout) == {"x", "\n"}
    assert_one_error_line(result.stderr, "the reply grew past 16 MiB (max_reply_bytes")
