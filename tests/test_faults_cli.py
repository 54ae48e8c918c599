"""Each scripted fault through the real CLI: exit code, stderr line, partial text kept."""

from __future__ import annotations

import pytest


def assert_one_error_line(stderr: str, *fragments: str) -> None:
    lines = [line for line in stderr.splitlines() if "retrying in" not in line]
    assert len(lines) == 1, stderr
    assert lines[0].startswith("streamkit: ")
    for fragment in fragments:
        assert fragment in lines[0], stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize("scenario", ["ok", "crlf", "odd-split"])
def test_well_formed_streams(run_cli, fault_url, scenario):
    result = run_cli("chat", "hi", "--base-url", fault_url(scenario))
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, world\n"
    assert result.stderr == ""


def test_connection_refused_exits_3_after_retries(run_cli, free_port_url):
    result = run_cli("chat", "hi", "--base-url", free_port_url, "--max-retries", "1")
    assert result.code == 3
    assert_one_error_line(result.stderr, "cannot connect to", free_port_url)
    assert result.stderr.count("retrying in") == 1
    assert result.stdout == ""


def test_drop_mid_stream_keeps_partial_text_exits_6(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("drop"))
    assert result.code == 6
    assert result.stdout == "partial text\n"
    assert_one_error_line(result.stderr, "broke mid-stream")


def test_stall_hits_idle_timeout_exits_5(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("stall"), "--idle-timeout", "0.5")
    assert result.code == 5
    assert result.stdout == "before the stall\n"
    assert_one_error_line(result.stderr, "idle timeout")


def test_whole_request_timeout_exits_5(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("slow"), "--timeout", "0.5")
    assert result.code == 5
    assert result.stdout.startswith("t0 t1 ")
    assert result.stdout.endswith("\n")
    assert_one_error_line(result.stderr, "--timeout")


def test_429_with_retry_after_then_success(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("429-then-ok"))
    assert result.code == 0
    assert result.stdout == "Hello, world\n"
    assert "HTTP 429" in result.stderr
    assert "retrying in 2.0 s" in result.stderr


def test_500_then_success(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("500-then-ok"))
    assert result.code == 0
    assert result.stdout == "Hello, world\n"
    assert "HTTP 500" in result.stderr


def test_500_after_all_retries_exits_4(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("always-500"), "--max-retries", "1")
    assert result.code == 4
    assert_one_error_line(result.stderr, "HTTP 500", "down")


def test_401_is_not_retried_and_never_shows_the_key(run_cli, fault_url):
    key = "sk-secret-test-key-123456"
    result = run_cli("chat", "hi", "--base-url", fault_url("401"), "--api-key", key)
    assert result.code == 4
    assert_one_error_line(result.stderr, "HTTP 401")
    assert "retrying" not in result.stderr
    assert key not in result.stderr + result.stdout
    # The same holds when the key comes from the environment.
    result = run_cli("chat", "hi", "--base-url", fault_url("401"), env={"OPENAI_API_KEY": key})
    assert result.code == 4
    assert key not in result.stderr + result.stdout


def test_malformed_chunk_is_reported_text_kept_exits_6(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("malformed"))
    assert result.code == 6
    assert result.stdout == "good still good\n"
    assert_one_error_line(result.stderr, "1 malformed stream chunk")


def test_error_event_in_stream_keeps_partial_text_exits_4(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("error-event"))
    assert result.code == 4
    assert result.stdout == "partial\n"
    assert_one_error_line(result.stderr, "model crashed")


def test_stream_without_done_exits_6(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("no-done"))
    assert result.code == 6
    assert result.stdout == "no ending\n"
    assert_one_error_line(result.stderr, "ended before it was complete")


def test_done_under_a_named_event_ends_the_reply(run_cli, fault_url):
    result = run_cli("chat", "hi", "--base-url", fault_url("named-done"), "--no-log")
    assert result.code == 0, result.stderr
    assert result.stdout == "Hello, world\n"  # not the chunk sent after [DONE]
    assert result.stderr == ""


def test_events_mode_prints_jsonl_with_the_error(run_cli, fault_url):
    import json

    result = run_cli("chat", "hi", "--events", "--base-url", fault_url("error-event"))
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == ["delta", "error"]
    assert records[0]["text"] == "partial"
    assert result.code == 4


def test_events_mode_shows_each_assembled_tool_call_with_its_validity(run_cli, fault_url):
    import json

    calls = [
        {"name": "calculate", "arguments": {"expression": "6*7"}},
        {"name": "weather", "arguments_raw": '{"city": '},
    ]
    result = run_cli(
        "chat",
        json.dumps({"calls": calls}),
        "--events",
        "--no-log",
        "--base-url",
        fault_url("tools"),
    )
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["type"] for r in records] == [
        "delta",
        *["tool_call_delta"] * 6,
        "tool_call",
        "tool_call",
        "finish",
    ]
    for index, call in enumerate(records[7:9]):
        fragments = [r for r in records if r["type"] == "tool_call_delta" and r["index"] == index]
        assert call["arguments"] == "".join(f["arguments"] for f in fragments)
        assert (call["id"], call["name"]) == (f"call_0_{index}", calls[index]["name"])
    assert (records[7]["valid"], records[7]["reason"]) == (True, None)
    assert records[8]["valid"] is False
    assert records[8]["reason"].startswith("the arguments are not valid JSON")


def test_config_problems_are_usage_errors(run_cli, tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("default_profile = [unclosed\n")
    result = run_cli("chat", "hi", env={"STREAMKIT_CONFIG": str(bad)})
    assert result.code == 2
    assert_one_error_line(result.stderr, f"config file {bad}")
    bad.write_text('[profiles.x]\nbase_urll = "http://typo"\n')
    result = run_cli("chat", "hi", env={"STREAMKIT_CONFIG": str(bad)})
    assert result.code == 2
    assert_one_error_line(result.stderr, "base_urll")
    result = run_cli("chat", "hi", "--profile", "nope")
    assert result.code == 2
    assert_one_error_line(result.stderr, "unknown profile 'nope'")


def test_profile_supplies_base_url_model_and_key(run_cli, fault_url, tmp_path):
    config = tmp_path / "profiles.toml"
    config.write_text(
        f'default_profile = "scripted"\n[profiles.scripted]\nbase_url = "{fault_url("401")}"\n'
        'api_key_env = "MY_KEY"\n'
    )
    result = run_cli("chat", "hi", env={"STREAMKIT_CONFIG": str(config), "MY_KEY": "sk-from-env-9"})
    assert result.code == 4  # the scripted server rejects every key, echoing it
    assert "Incorrect API key provided: ***" in result.stderr
    assert "sk-from-env-9" not in result.stderr


def test_invalid_base_url_is_a_usage_error(run_cli):
    result = run_cli("chat", "hi", "--base-url", "ftp://example.invalid/v1")
    assert result.code == 2
    assert_one_error_line(result.stderr, "invalid base URL")


@pytest.fixture
def free_port_url() -> str:
    from conftest import free_port

    return f"http://127.0.0.1:{free_port()}/v1"


def test_profile_context_tokens_trims_a_long_remote_history(run_cli, fault_url, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.small]\nbase_url = "{fault_url("ok")}"\ncontext_tokens = 300\n')
    env = {"STREAMKIT_CONFIG": str(config), "STREAMKIT_DB": str(tmp_path / "log.db")}
    long = "word " * 100  # ~125 approximate tokens a turn
    result = run_cli("chat", "-p", "small", long, "-n", "16", env=env)
    for _ in range(2):
        assert result.code == 0, result.stderr
        result = run_cli("chat", "-p", "small", "-c", long, "-n", "16", env=env)
    assert result.code == 0, result.stderr
    assert "without its 2 oldest message(s)" in result.stderr
