"""The interactive chat in a real pseudo-terminal (pexpect), against a server that
keeps every request body."""

from __future__ import annotations

import sys

import pexpect
import pytest

LEFT = "\x1b[D"
UP = "\x1b[A"
ALT_ENTER = "\x1b\r"


@pytest.fixture
def chat_session(cli_env, scripted, tmp_path):
    """Start ``streamkit chat`` on a pty; yields (child, server)."""
    server = scripted("echo")
    children = []

    def start(*extra: str) -> pexpect.spawn:
        env = {**cli_env, "XDG_DATA_HOME": str(tmp_path / "data"), "TERM": "xterm",
               "PROMPT_TOOLKIT_NO_CPR": "1"}  # pexpect's pty does not answer CPR queries
        child = pexpect.spawn(sys.executable, ["-m", "streamkit", "chat", "--base-url",
                                               server.url, *extra],
                              env=env, encoding="utf-8", timeout=30, dimensions=(40, 120))
        child.expect("Chatting")
        children.append(child)
        return child

    yield start, server
    for child in children:
        if child.isalive():
            child.terminate(force=True)


PROMPT = r">(\x08|\x1b\[\d+D)?(\x1b\[\d+C| )"  # "> " as prompt_toolkit draws it
MORE = r"\.\.\.(\x08|\x1b\[\d+D)?(\x1b\[\d+C| )"


def prompt(child) -> None:
    child.expect(PROMPT)


def user_messages(server) -> list[str]:
    return [body["messages"][-1]["content"] for body in server.bodies()]


def ask(child, keys: str) -> None:
    prompt(child)
    child.send(keys + "\r")
    child.expect_exact("Hello, world")


def test_an_edited_line_arrives_edited_and_up_recalls_it(chat_session):
    start, server = chat_session
    child = start()
    ask(child, "helo" + LEFT + LEFT + "l")  # "he" + "l" + "lo": the cursor moved back
    ask(child, UP)  # the previous message, sent again
    prompt(child)
    child.sendcontrol("d")
    assert child.expect(pexpect.EOF) == 0
    child.wait()
    assert child.exitstatus == 0
    assert user_messages(server) == ["hello", "hello"]


def test_alt_enter_and_a_block_give_one_multi_line_message(chat_session):
    start, server = chat_session
    child = start()
    ask(child, "first line" + ALT_ENTER + "second line")
    prompt(child)
    child.send('"""\r')
    child.expect(MORE)
    child.send("a\r")
    child.expect(MORE)
    child.send("b\r")
    child.expect(MORE)
    child.send('"""\r')
    child.expect_exact("Hello, world")
    assert user_messages(server) == ["first line\nsecond line", "a\nb"]


def test_history_survives_a_restart(chat_session):
    start, server = chat_session
    child = start()
    ask(child, "remember me")
    prompt(child)
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    again = start()
    ask(again, UP + UP)  # the newest entry is the /exit
    assert user_messages(server) == ["remember me", "remember me"]


def test_slash_commands_act_on_the_conversation(chat_session):
    start, server = chat_session
    child = start()
    ask(child, "one")
    prompt(child)
    child.send("/retry\r")  # the same message again
    child.expect_exact("Hello, world")
    prompt(child)
    child.send("/undo\r")
    child.expect_exact("the last exchange is out")
    prompt(child)
    child.send("/model other\r")
    child.expect_exact("model: other")
    prompt(child)
    child.send("/nonsense\r")
    child.expect_exact("unknown command /nonsense")
    ask(child, "two")
    bodies = server.bodies()
    assert [b["messages"][-1]["content"] for b in bodies] == ["one", "one", "two"]
    assert [m["content"] for m in bodies[-1]["messages"]] == ["two"]  # /undo dropped "one"
    assert bodies[-1]["model"] == "other" and "model" not in bodies[0]


def test_ctrl_c_at_the_prompt_is_a_hint_and_the_terminal_is_restored(chat_session):
    start, _ = chat_session
    child = start()
    prompt(child)
    child.sendcontrol("c")
    child.expect_exact("(to leave: /exit or Ctrl-D)")
    prompt(child)
    child.send("half a line")
    child.sendcontrol("c")  # clears the line
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0
    # The editor handed the terminal back: bracketed paste off, the cursor shown.
    tail = child.before
    assert tail.rfind("\x1b[?2004l") > tail.rfind("\x1b[?2004h")
    assert tail.rfind("\x1b[?25h") > tail.rfind("\x1b[?25l")
