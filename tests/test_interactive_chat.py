"""The interactive chat in a real pseudo-terminal (pexpect), against a server that
keeps every request body."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import pexpect
import pytest

from streamkit.store.database import Store

LEFT = "\x1b[D"
UP = "\x1b[A"
ALT_ENTER = "\x1b\r"


@pytest.fixture
def chat_session(cli_env, scripted, tmp_path):
    """Start ``streamkit chat`` on a pty; yields (child, server)."""
    server = scripted("echo")
    children = []

    def start(*extra: str, env: dict[str, str] | None = None) -> pexpect.spawn:
        env = {
            **cli_env,
            "XDG_DATA_HOME": str(tmp_path / "data"),
            "TERM": "xterm",
            "PROMPT_TOOLKIT_NO_CPR": "1",  # pexpect's pty does not answer CPR queries
            **(env or {}),
        }
        child = pexpect.spawn(
            sys.executable,
            ["-m", "streamkit", "chat", "--base-url", server.url, *extra],
            env=env,
            encoding="utf-8",
            timeout=30,
            dimensions=(40, 120),
        )
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


def test_edit_sends_what_the_editor_left(chat_session, tmp_path):
    start, server = chat_session
    editor = tmp_path / "editor.py"  # appends to the file it is given, as a user would
    editor.write_text(
        "import sys\nwith open(sys.argv[1], 'a') as f:\n    f.write(' from the editor\\n')\n"
    )
    child = start(env={"EDITOR": f"{sys.executable} {editor}", "VISUAL": ""})
    prompt(child)
    child.send("/edit\r")
    child.expect_exact("Hello, world")
    ask(child, "one")
    prompt(child)
    child.send("/edit last\r")
    child.expect_exact("Hello, world")
    prompt(child)
    child.send("/edit nonsense\r")
    child.expect_exact("/edit, or /edit last")
    assert user_messages(server) == ["from the editor", "one", "one from the editor"]


def test_edit_without_an_editor_or_with_a_failing_one_sends_nothing(chat_session):
    start, server = chat_session
    child = start(env={"EDITOR": "", "VISUAL": ""})
    prompt(child)
    child.send("/edit\r")
    child.expect_exact("set $VISUAL or $EDITOR")
    again = start(env={"VISUAL": "false"})
    prompt(again)
    again.send("/edit\r")
    again.expect_exact("the editor exited with status 1: nothing sent")
    assert server.bodies() == []


def test_copy_sends_the_reply_or_a_code_block_through_the_terminal(chat_session):
    start, _ = chat_session
    reply = "Try:\n\n```sh\nls -l\n```\n"
    child = start("-O", "scripted_reply=" + json.dumps(reply))
    prompt(child)
    child.send("/copy\r")
    child.expect_exact("no reply to copy yet")
    prompt(child)
    child.send("hi\r")
    child.expect_exact("Try:")
    prompt(child)
    child.send("/copy\r")
    child.expect_exact("\x1b]52;c;" + base64.b64encode(reply.encode()).decode() + "\x07")
    child.expect_exact("the last reply (")
    prompt(child)
    child.send("/copy 1\r")
    child.expect_exact("\x1b]52;c;" + base64.b64encode(b"ls -l").decode() + "\x07")
    child.expect_exact("code block 1 of the last reply (5 characters) sent to the terminal")
    prompt(child)
    child.send("/copy 2\r")
    child.expect_exact("the last reply has 1 code block(s)")


def test_tokens_says_what_the_conversation_costs(chat_session):
    start, _ = chat_session
    usage = {"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}
    child = start("-O", "scripted_usage=" + json.dumps(usage))
    prompt(child)
    child.send("/tokens\r")
    child.expect_exact("0 characters in 0 message(s); the server reported no token usage")
    ask(child, "hi")
    prompt(child)
    child.send("/tokens\r")
    child.expect_exact(
        "15 tokens in 2 message(s), as the server counted the last exchange "
        "(12 prompt + 3 reply); the context window is unknown"
    )
    prompt(child)
    child.send("/undo\r")
    prompt(child)
    child.send("/tokens\r")  # the server's count was of a history that is gone
    child.expect_exact("0 characters in 0 message(s); the server reported no token usage")


def test_tokens_against_the_profiles_context_window(chat_session, cli_env):
    start, _ = chat_session
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        'default_profile = "small"\n[profiles.small]\ncontext_tokens = 4096\n'
    )
    child = start()
    ask(child, "a" * 40)
    prompt(child)
    child.send("/tokens\r")
    # 40 characters and 12 of "Hello, world": (10 + 8) + (3 + 8), of 4096 less 1024
    child.expect_exact(
        "about 29 tokens in 2 message(s) (streamkit's count), of the 3072 the prompt may use"
    )


def test_ctrl_c_mid_render_keeps_the_terminal_clean_and_the_partial_reply(
    chat_session, fault_url, cli_env
):
    start, _ = chat_session
    child = start("--base-url", fault_url("slow"))
    prompt(child)
    child.send("go\r")
    child.expect_exact("t30")
    child.sendintr()
    prompt(child)
    drawn = child.before  # from "t30" to the next prompt
    settled = drawn.rfind("\x1b[?2026h")  # the stop settles the open block, in one update
    assert drawn.find("\x1b[?2026l", settled) > settled > drawn.find("^C")
    assert "t0 t1 t2" in drawn[settled:]  # the stopped paragraph, drawn whole
    assert "\x1b[?25l" not in drawn[: drawn.rfind("\x1b[?2026l")]  # the cursor stayed on
    child.sendcontrol("d")
    child.expect(pexpect.EOF)
    child.wait()
    assert child.exitstatus == 0
    store = Store(Path(cli_env["STREAMKIT_DB"]))
    try:
        conversation = store.last_conversation()
        reply = store.messages(conversation)[-1]
    finally:
        store.close()
    assert reply.status == "interrupted" and reply.content.startswith("t0 t1 t2 ")


def test_undone_exchanges_stay_in_the_log_marked(chat_session, cli_env, run_cli):
    start, server = chat_session
    child = start()
    ask(child, "one")
    prompt(child)
    child.send("/undo\r")
    child.expect_exact("marked undone")
    ask(child, "two")
    prompt(child)
    child.send("/retry\r")
    child.expect_exact("Hello, world")
    prompt(child)
    child.send("/exit\r")
    child.expect(pexpect.EOF)
    store = Store(Path(cli_env["STREAMKIT_DB"]))
    try:
        conversation = store.last_conversation()
        rows = [(m.role, m.content, m.undone_at is not None) for m in store.messages(conversation)]
    finally:
        store.close()
    assert rows == [
        ("user", "one", True),
        ("assistant", "Hello, world", True),
        ("user", "two", True),
        ("assistant", "Hello, world", True),
        ("user", "two", False),
        ("assistant", "Hello, world", False),
    ]
    shown = run_cli("logs", "show", conversation)
    assert shown.code == 0
    headings = [line for line in shown.stdout.splitlines() if line.startswith("## ")]
    assert [("undone" in line) for line in headings] == [True, True, True, True, False, False]
    records = [
        json.loads(line)
        for line in run_cli("logs", "show", conversation, "--json").stdout.splitlines()
    ]
    assert [r["undone_at"] is not None for r in records] == [True] * 4 + [False] * 2
    # Continuing the conversation sends what it holds now, not what was undone.
    more = run_cli("chat", "-c", "three", "--base-url", server.url)
    assert more.code == 0
    sent = [m["content"] for m in server.bodies()[-1]["messages"]]
    assert sent == ["two", "Hello, world", "three"]
