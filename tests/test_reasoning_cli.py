"""A reasoning model's thinking through the CLI: shown, hidden, piped, logged, batched."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys

import pytest
import trio

from streamkit.sinks.recorder import open_conversation
from streamkit.store.database import Store


@pytest.mark.parametrize("scenario", ["thinks", "thinks-inline"])
def test_piped_stdout_carries_the_answer_alone(run_cli, fault_url, scenario):
    result = run_cli("chat", "--base-url", fault_url(scenario), "2+2?")
    assert (result.code, result.stdout, result.stderr) == (0, "4\n", "")


def test_reasoning_flag_shows_the_thinking_on_stderr(run_cli, fault_url):
    result = run_cli("chat", "--base-url", fault_url("thinks"), "--reasoning", "2+2?")
    assert (result.code, result.stdout) == (0, "4\n")
    assert result.stderr == "Two and two.\n"


def test_contradicting_or_inapplicable_flags_are_usage_errors(run_cli, fault_url):
    for extra in (
        ["--reasoning", "--hide-reasoning"],
        ["--events", "--reasoning"],
        ["--jsonl", "--hide-reasoning"],
    ):
        result = run_cli("chat", "--base-url", fault_url("thinks"), *extra, "2+2?")
        assert result.code == 2, extra
        assert len(result.stderr.splitlines()) == 1


def _on_a_terminal(cli_env, *args: str) -> bytes:
    """Run the CLI with stdout on a pseudo-terminal; everything it wrote there."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", *args],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=subprocess.PIPE,
    )
    os.close(follower)
    output = b""
    while True:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal closed with the process
            break
        if not data:
            break
        output += data
    os.close(leader)
    assert proc.wait(timeout=60) == 0, proc.stderr.read()
    return output.replace(b"\r\n", b"\n")


def test_a_terminal_shows_the_thinking_dim_before_the_answer(cli_env, fault_url):
    shown = _on_a_terminal(cli_env, "chat", "--base-url", fault_url("thinks"), "--plain", "2+2?")
    assert shown == b"\x1b[2mTwo and two.\x1b[0m\n\n4\n"
    hidden = _on_a_terminal(
        cli_env, "chat", "--base-url", fault_url("thinks"), "--hide-reasoning", "--plain", "2+2?"
    )
    assert hidden == b"4\n"
    drawn = _on_a_terminal(cli_env, "chat", "--base-url", fault_url("thinks"), "2+2?")
    thinking = b"\x1b[2mTwo and two.\x1b[0m\n\n"  # as it came; the answer is drawn
    assert drawn.startswith(thinking) and b"4" in drawn[len(thinking) :]
    plain = _on_a_terminal(
        {**cli_env, "NO_COLOR": "1"}, "chat", "--base-url", fault_url("thinks"), "2+2?"
    )
    assert plain == b"Two and two.\n\n4\n"


def test_config_can_hide_the_thinking(cli_env, fault_url):
    with open(cli_env["STREAMKIT_CONFIG"], "w") as config:
        config.write("show_reasoning = false\n")
    assert (
        _on_a_terminal(cli_env, "chat", "--base-url", fault_url("thinks"), "--plain", "2+2?")
        == b"4\n"
    )


def test_events_carry_reasoning_before_the_answer(run_cli, fault_url):
    result = run_cli("chat", "--base-url", fault_url("thinks"), "--events", "2+2?")
    assert result.code == 0
    kinds = [(e["type"], e.get("text")) for e in map(json.loads, result.stdout.splitlines())]
    assert kinds[:3] == [("reasoning", "Two and "), ("reasoning", "two."), ("delta", "4")]


def test_the_log_keeps_thinking_apart_and_chat_c_does_not_send_it(run_cli, fault_url, cli_env):
    assert run_cli("chat", "--base-url", fault_url("thinks"), "2+2?").code == 0
    store = Store(cli_env_db(cli_env))
    [conversation] = store.conversations()
    reply = store.messages(conversation.id)[-1]
    assert (reply.content, reply.reasoning) == ("4", "Two and two.")
    store.close()
    shown = run_cli("logs", "show", conversation.id)
    assert "### reasoning\nTwo and two.\n### answer\n4" in shown.stdout

    async def history() -> list:
        async with open_conversation(cli_env_db(cli_env), continue_last=True) as (_, past):
            return past

    assert [(m.role, m.content) for m in trio.run(history)] == [
        ("user", "2+2?"),
        ("assistant", "4"),
    ]


def test_thinking_that_ends_in_an_error_is_kept_with_the_errors_exit_code(
    run_cli, fault_url, cli_env
):
    result = run_cli("chat", "--base-url", fault_url("thinks-then-fails"), "2+2?")
    assert result.code == 4
    store = Store(cli_env_db(cli_env))
    [conversation] = store.conversations()
    reply = store.messages(conversation.id)[-1]
    assert (reply.reasoning, reply.status) == ("Let me see", "error")
    store.close()


def test_batch_results_carry_reasoning(run_cli, fault_url):
    result = run_cli(
        "chat",
        "--jsonl",
        "--base-url",
        fault_url("thinks"),
        input='{"id": "a", "prompt": "2+2?"}\n',
    )
    assert result.code == 0, result.stderr
    [record] = map(json.loads, result.stdout.splitlines())
    assert (record["text"], record["reasoning"]) == ("4", "Two and two.")
    assert "reasoning_tokens" in record


def cli_env_db(cli_env):
    from pathlib import Path

    return Path(cli_env["STREAMKIT_DB"])


def test_logs_search_keeps_thinking_out_of_answers_unless_asked(run_cli, fault_url):
    assert run_cli("chat", "--base-url", fault_url("thinks"), "2+2?").code == 0
    answers = run_cli("logs", "search", "two", "--json")
    assert answers.code == 0 and answers.stdout == ""  # "two" is only in the thinking
    thoughts = run_cli("logs", "search", "two", "--reasoning", "--json")
    [hit] = map(json.loads, thoughts.stdout.splitlines())
    assert (hit["content"], hit["reasoning"]) == ("4", "Two and two.")
