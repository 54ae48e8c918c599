"""Replies drawn as Markdown on a real terminal (pexpect), raw when piped; ``-x``."""

from __future__ import annotations

import json
import re
import sys

import pexpect
import pytest

REPLY = (
    "Use **bold** here.\n\n```python\ndef answer():\n    return 42\n```\n\n"
    "Or `ls`:\n\n```sh\nls -l\n```\n"
)
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def reply_option(text: str) -> list[str]:
    return ["-O", "scripted_reply=" + json.dumps(text)]


def on_pty(cli_env, *args: str, extra_env: dict | None = None) -> tuple[str, int]:
    """Run ``streamkit ARGS`` on a pseudo-terminal; everything it drew, and its exit code."""
    env = {**cli_env, "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)  # colour unless the test asks for none
    env.update(extra_env or {})
    child = pexpect.spawn(
        sys.executable,
        ["-m", "streamkit", *args],
        env=env,
        encoding="utf-8",
        timeout=30,
        dimensions=(40, 100),
    )
    child.expect(pexpect.EOF)
    child.close()
    return child.before, child.exitstatus


def test_bold_and_a_fenced_block_are_styled_on_a_terminal(cli_env, scripted):
    server = scripted("echo")
    out, code = on_pty(cli_env, "chat", "hi", "--base-url", server.url, *reply_option(REPLY))
    assert code == 0
    assert "**" not in out and "```" not in out  # the markup is drawn, not shown
    assert re.search(r"\x1b\[1mbold\x1b\[0m", out)  # bold, in the terminal's bold
    code_line = next(line for line in out.splitlines() if "answer" in line)
    assert len(ANSI.findall(code_line)) >= 3  # highlighted: styles around the tokens
    assert "\x1b[?25l" not in out  # the cursor is never hidden
    plain = ANSI.sub("", out)
    assert "Use bold here." in plain and "return 42" in plain and "ls -l" in plain


def test_piped_or_plain_the_reply_is_the_raw_text(cli_env, scripted, run_cli):
    server = scripted("echo")
    piped = run_cli("chat", "hi", "--base-url", server.url, *reply_option(REPLY))
    assert piped.code == 0 and piped.stdout == REPLY
    for flag, env in (("--plain", {}), ("--no-markdown", {}), (None, {"NO_COLOR": "1"})):
        args = ["chat", "hi", "--base-url", server.url, *reply_option(REPLY)]
        out, code = on_pty(cli_env, *args, *([flag] if flag else []), extra_env=env)
        assert code == 0
        assert out.replace("\r\n", "\n") == REPLY, (flag, env)  # the pty turns \n into \r\n


def test_a_long_reply_settles_its_blocks_once(cli_env, scripted):
    paragraphs = [f"Paragraph {i} with *emphasis*." for i in range(60)]
    server = scripted("echo")
    out, code = on_pty(
        cli_env,
        "chat",
        "hi",
        "--base-url",
        server.url,
        *reply_option("\n\n".join(paragraphs) + "\n"),
    )
    assert code == 0
    plain = ANSI.sub("", out)
    for i in range(60):
        assert plain.count(f"Paragraph {i} with emphasis.") >= 1
    # Settled blocks are written once: the early ones are never drawn again.
    assert plain.count("Paragraph 3 with emphasis.") <= 2


def test_extract_prints_exactly_the_code_block(scripted, run_cli):
    server = scripted("echo")
    first = run_cli(
        "chat", "-x", "a python function", "--base-url", server.url, *reply_option(REPLY)
    )
    assert (first.code, first.stdout, first.stderr) == (0, "def answer():\n    return 42\n", "")
    every = run_cli("chat", "--extract-all", "hi", "--base-url", server.url, *reply_option(REPLY))
    assert every.stdout == "def answer():\n    return 42\nls -l\n"
    completion = run_cli(
        "complete",
        "--extract",
        "x",
        "--base-url",
        server.url,
        *reply_option("see:\n~~~\necho hi\n~~~\n"),
    )
    assert (completion.code, completion.stdout) == (0, "echo hi\n")


def test_extract_on_a_terminal_draws_nothing_but_the_code(cli_env, scripted):
    server = scripted("echo")
    out, code = on_pty(cli_env, "chat", "-x", "hi", "--base-url", server.url, *reply_option(REPLY))
    assert code == 0 and out == "def answer():\r\n    return 42\r\n"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["chat", "-x", "hi", *reply_option("no code at all")], 14, "no fenced code block"),
        (["chat", "-x", "hi", "--events"], 2, "cannot apply to --events"),
        (["chat", "--plain", "--events", "hi"], 2, "cannot apply to --events"),
        (["complete", "-x", "--jsonl"], 2, "cannot apply to --jsonl"),
    ],
)
def test_an_extract_that_cannot_apply_is_one_line(scripted, run_cli, args, code, message):
    server = scripted("echo")
    result = run_cli(*args, "--base-url", server.url, input="")
    assert result.code == code
    assert message in result.stderr and len(result.stderr.splitlines()) == 1
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_config_can_turn_markdown_off(cli_env, scripted):
    server = scripted("echo")
    with open(cli_env["STREAMKIT_CONFIG"], "w") as config:
        config.write("markdown = false\n")
    out, code = on_pty(cli_env, "chat", "hi", "--base-url", server.url, *reply_option(REPLY))
    assert code == 0 and out.replace("\r\n", "\n") == REPLY


def test_extract_is_not_for_the_interactive_chat(cli_env, scripted):
    server = scripted("echo")
    out, code = on_pty(cli_env, "chat", "-x", "--base-url", server.url)
    assert code == 2 and "--extract is for one message" in out and "Traceback" not in out
    assert server.bodies() == []
