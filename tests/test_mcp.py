"""MCP servers as tool sources: names, results, config, and real servers end to end.

The servers are ``tests/mcp_server.py`` (the SDK's own server, over stdio and
Streamable HTTP on 127.0.0.1); the model is the scripted ``tools`` scenario of
the fault server, which asks for the calls the message describes and answers
with the tool messages it got back.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
import trio

from streamkit.config import McpServerSpec
from streamkit.errors import UsageError
from streamkit.tools.mcp_config import expand, load_mcp_json, select_servers
from streamkit.tools.mcp_names import NAME_LIMIT, exposed_names
from streamkit.tools.mcp_results import tool_message

from conftest import TESTS, free_port, stop_process

SERVER = str(TESTS / "mcp_server.py")


def ask(*calls: dict) -> str:
    return json.dumps({"calls": list(calls)})


def server_table(name: str, *args: str, **fields: object) -> str:
    lines = [
        f"[mcp.{name}]",
        f"command = {json.dumps(sys.executable)}",
        f"args = {json.dumps([SERVER, *args])}",
    ]
    lines += [f"{key} = {_toml(value)}" for key, value in fields.items()]
    return "\n".join(lines) + "\n"


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {json.dumps(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.fixture
def config(cli_env):
    """Write the config file ``run_cli`` reads."""

    def write(*tables: str) -> Path:
        path = Path(cli_env["STREAMKIT_CONFIG"])
        path.write_text("".join(tables))
        return path

    return write


# -- names ----------------------------------------------------------------------


def test_a_tool_keeps_its_name_unless_it_clashes_or_breaks_the_rules():
    names = exposed_names(
        [
            ("files", "read"),
            ("web", "search"),
            ("git", "search"),
            ("odd", "tool.with spaces"),
            ("calc", "calculate"),
        ],
        taken={"calculate"},
    )
    assert names == {
        "read": ("files", "read"),
        "web__search": ("web", "search"),
        "git__search": ("git", "search"),
        "odd__tool_with_spaces": ("odd", "tool.with spaces"),
        "calc__calculate": ("calc", "calculate"),
    }


def test_long_names_are_cut_and_stay_apart():
    long = "x" * 80
    names = exposed_names([("a", long + "1"), ("a", long + "2"), ("b", long + "1")])
    assert len(names) == 3
    assert all(len(name) <= NAME_LIMIT for name in names)
    assert sorted(names.values()) == [("a", long + "1"), ("a", long + "2"), ("b", long + "1")]


# -- results --------------------------------------------------------------------


def test_text_is_the_message_and_structured_content_fills_in_when_there_is_none():
    both = tool_message(
        {"content": [{"type": "text", "text": "3"}], "structuredContent": {"result": "3"}}
    )
    assert (both.content, both.record, both.is_error) == ("3", None, False)
    only = tool_message({"content": [], "structuredContent": {"word": "HI"}})
    assert only.content == '{"word": "HI"}'


def test_binary_content_is_described_and_the_log_keeps_it():
    result = {
        "content": [
            {"type": "text", "text": "here"},
            {"type": "image", "data": "iVBORw0KGgo=", "mimeType": "image/png"},
            {"type": "resource", "resource": {"uri": "file:///a", "blob": "AAAA"}},
        ]
    }
    answer = tool_message(result)
    assert answer.content == (
        "here\n[image image/png, 8 bytes]\n[resource file:///a, of unknown type, 3 bytes]"
    )
    assert json.loads(answer.record) == result


def test_is_error_marks_the_answer():
    answer = tool_message({"content": [{"type": "text", "text": "no such file"}], "isError": True})
    assert answer.is_error and answer.content == "no such file"


# -- config ---------------------------------------------------------------------


def test_an_mcp_servers_file_from_another_client_works_as_it_is(tmp_path):
    path = tmp_path / "claude.json"
    path.write_text(
        json.dumps(
            {
                "mcpServers": {
                    "files": {
                        "command": "npx",
                        "args": ["-y", "server"],
                        "env": {"A": "1"},
                        "autoApprove": ["read"],
                        "alwaysAllow": [],
                    },
                    "remote": {
                        "type": "http",
                        "url": "https://example.invalid/mcp",
                        "headers": {"Authorization": "Bearer ${TOKEN}"},
                    },
                    "off": {"command": "x", "disabled": True},
                },
                "globalShortcut": "x",
            }
        )
    )
    servers = load_mcp_json(path)
    assert servers["files"].args == ["-y", "server"] and servers["files"].env == {"A": "1"}
    assert servers["remote"].url == "https://example.invalid/mcp"
    assert not servers["off"].enabled
    assert sorted(select_servers([], [path], {})) == ["files", "remote"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"mcpServers": {"a": {"type": "sse", "url": "http://x"}}}', "old SSE transport"),
        ('{"servers": {}}', 'no "mcpServers" object'),
        ("not json", "not JSON"),
        ('{"mcpServers": {"a": {"command": "x", "url": "http://x"}}}', "exactly one of"),
    ],
)
def test_a_bad_mcp_servers_file_is_one_usage_error(tmp_path, content, message):
    path = tmp_path / "servers.json"
    path.write_text(content)
    with pytest.raises(UsageError, match=message):
        select_servers([], [path], {})


def test_unknown_and_disabled_servers_are_usage_errors():
    configured = {
        "on": McpServerSpec(command="x"),
        "off": McpServerSpec(command="x", enabled=False),
    }
    with pytest.raises(UsageError, match=r"unknown MCP server 'nope' \(known: off, on\)"):
        select_servers(["nope"], [], configured)
    with pytest.raises(UsageError, match="'off' is disabled"):
        select_servers(["off"], [], configured)
    assert list(select_servers(["on"], [], configured)) == ["on"]


def test_variables_in_headers_come_from_the_environment_and_are_never_shown():
    headers = {"Authorization": "Bearer ${TOKEN}"}
    assert expand("s", headers, {"TOKEN": "sekrit-1"}) == {"Authorization": "Bearer sekrit-1"}
    with pytest.raises(UsageError) as caught:
        expand("s", headers, {})
    assert str(caught.value) == "MCP server 's': environment variable TOKEN is not set"


# -- the SDK on Trio, in-process ------------------------------------------------


async def test_a_cancelled_call_reaches_the_server_and_leaving_ends_it(tmp_path):
    """Under Trio: a call cut by its caller's scope sends MCP's cancellation (the
    server's handler sees it), and leaving ``open_servers`` ends the server's group."""
    from streamkit.tools.mcp_servers import open_servers

    marker = tmp_path / "marker"
    spec = McpServerSpec(
        command=sys.executable, args=[SERVER, "stdio"], env={"STREAMKIT_TEST_MARKER": str(marker)}
    )
    warnings: list[str] = []
    async with open_servers({"t": spec}, warn=warnings.append) as servers:
        tools = await servers.tools(set())
        assert sorted(tools) == ["add", "big", "crash", "fail", "pixel", "shout", "slow"]
        assert (await tools["add"].remote.call({"a": 2, "b": 40})).content == "42"
        with trio.move_on_after(30) as scope:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(tools["slow"].remote.call, {"seconds": 60})
                while not marker.exists():  # noqa: ASYNC110 (the server's own file)
                    await trio.sleep(0.05)
                pid = int(marker.read_text().split()[1])
                nursery.cancel_scope.cancel()
        assert not scope.cancelled_caught
        with trio.move_on_after(10):
            while marker.read_text() != "cancelled":  # noqa: ASYNC110
                await trio.sleep(0.05)
        assert marker.read_text() == "cancelled"
    assert warnings == []
    assert not _group_alive(pid)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# -- chat with MCP tools, end to end --------------------------------------------


def test_tools_of_a_stdio_server_answer_the_model_and_are_logged(
    run_cli, fault_url, config, tmp_path
):
    calls = tmp_path / "calls"
    config(server_table("test", "stdio", env={"STREAMKIT_TEST_CALLS": str(calls)}))
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        ask(
            {"name": "add", "arguments": {"a": 2, "b": 3}},
            {"name": "pixel", "arguments": {}},
            {"name": "shout", "arguments": {"word": "hey"}},
            {"name": "fail", "arguments": {"reason": "because"}},
            {"name": "add", "arguments": {"a": "two", "b": 3}},
        ),
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--db",
        str(db),
    )
    assert result.code == 0, result.stderr
    assert result.stdout == (
        'Let me check. \nResults: 5 | [image image/png, 69 bytes] | {\n  "word": "HEY"\n}'
        " | Error executing tool fail: failed on purpose: because"
        " | the arguments do not match the schema: 'two' is not of type 'integer'\n"
    )
    assert (
        'streamkit: tool fail({"reason": "because"}) -> Error executing tool fail: '
        "failed on purpose: because [error]" in result.stderr
    )
    # The call that failed its schema was not sent.
    assert calls.read_text() == "start stdio\nadd 2 3\n"
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT name, status, result FROM tool_calls ORDER BY id").fetchall()
    assert [(name, status) for name, status, _ in rows] == [
        ("test/add", "ok"),
        ("test/pixel", "ok"),
        ("test/shout", "ok"),
        ("test/fail", "error"),
        ("test/add", "invalid"),
    ]
    assert json.loads(rows[1][2])["content"][0]["data"].startswith("iVBORw0KGgo")


def test_an_answer_over_the_output_cap_is_cut(run_cli, fault_url, config):
    config(server_table("test", "stdio"))
    result = run_cli(
        "chat",
        ask({"name": "big", "arguments": {"n": 20000}}),
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    cut = 20000 - 16 * 1024
    assert result.stdout == (
        "Let me check. \nResults: " + "x" * 16 * 1024 + f"\n[output truncated: {cut} more bytes]\n"
    )


def test_a_call_past_its_timeout_is_cancelled_on_the_server(run_cli, fault_url, config, tmp_path):
    marker = tmp_path / "marker"
    config(server_table("test", "stdio", timeout=2, env={"STREAMKIT_TEST_MARKER": str(marker)}))
    result = run_cli(
        "chat",
        ask({"name": "slow", "arguments": {"seconds": 60}}),
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: the tool did not finish within 2 s\n"
    assert marker.read_text() == "cancelled"


def test_a_server_that_dies_mid_call_is_one_line_and_the_chat_goes_on(run_cli, fault_url, config):
    config(server_table("test", "stdio"))
    result = run_cli(
        "chat",
        ask({"name": "crash", "arguments": {}}),
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: MCP server 'test' stopped answering\n"
    assert (
        "streamkit: MCP server 'test' stopped answering; going on without its tools\n"
        in result.stderr
    )
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("table", "line"),
    [
        (
            server_table("test", "mute", start_timeout=1),
            "MCP server 'test' did not answer within 1 s (start_timeout); "
            "going on without its tools",
        ),
        (
            '[mcp.test]\ncommand = "/nonexistent/mcp-server"\n',
            "MCP server 'test' cannot run /nonexistent/mcp-server: No such file or directory; "
            "going on without its tools",
        ),
    ],
)
def test_a_server_that_does_not_start_is_one_line(run_cli, fault_url, config, table, line):
    config(table)
    result = run_cli(
        "chat",
        ask({"name": "add", "arguments": {"a": 1, "b": 1}}),
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert result.stderr.splitlines()[0] == f"streamkit: {line}"
    assert result.stdout == "Let me check. \nResults: there is no tool named 'add'\n"


def test_clashing_names_are_namespaced_and_mapped_back(run_cli, fault_url, config, tmp_path):
    config(server_table("one", "stdio"), server_table("two", "stdio", deny=["fail"]))
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        ask(
            {"name": "two__add", "arguments": {"a": 1, "b": 2}},
            {"name": "two__fail", "arguments": {"reason": "x"}},
        ),
        "--mcp",
        "one",
        "--mcp",
        "two",
        "--base-url",
        fault_url("tools"),
        "--db",
        str(db),
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: 3 | there is no tool named 'two__fail'\n"
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT name FROM tool_calls ORDER BY id").fetchall() == [
            ("two/add",),
            ("two__fail",),
        ]


def test_confirm_refuses_without_a_terminal_and_yes_approves(run_cli, fault_url, config):
    config(server_table("test", "stdio", confirm=["add"]))
    args = (
        "chat",
        ask(
            {"name": "add", "arguments": {"a": 1, "b": 2}},
            {"name": "shout", "arguments": {"word": "a"}},
        ),
        "--mcp",
        "test",
        "--no-log",
    )
    refused = run_cli(*args, "--base-url", fault_url("tools"))
    assert refused.stdout.startswith("Let me check. \nResults: the user did not approve")
    approved = run_cli(*args, "--yes", "--base-url", fault_url("tools"))
    assert approved.stdout.startswith("Let me check. \nResults: 3 | ")


def test_an_ordinary_chat_does_not_import_the_sdk(fault_url, cli_env):
    probe = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('mcp' in sys.modules, 'mcp_types' in sys.modules,"
        " file=sys.stderr))\n"
        "from streamkit.__main__ import main\n"
        "sys.argv = ['streamkit', *sys.argv[1:]]\n"
        "main()\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            probe,
            "chat",
            ask({"name": "calculate", "arguments": {"expression": "1+1"}}),
            "--tool",
            "calculate",
            "--base-url",
            fault_url("tools"),
            "--no-log",
        ],
        capture_output=True,
        text=True,
        env=cli_env,
        timeout=60,
    )
    assert proc.stdout == "Let me check. \nResults: 2\n", proc.stderr
    assert proc.stderr.splitlines()[-1] == "False False"


# -- Streamable HTTP ------------------------------------------------------------


@pytest.fixture(scope="module")
def http_server():
    """The test server on Streamable HTTP, requiring a bearer token; (url, token)."""
    port, token = free_port(), "tok-" + os.urandom(8).hex()
    proc = subprocess.Popen(
        [sys.executable, SERVER, "http", str(port)],
        env={**os.environ, "STREAMKIT_TEST_TOKEN": token},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}/mcp"
    import socket

    deadline = time.monotonic() + 30
    while True:
        assert proc.poll() is None and time.monotonic() < deadline, "no HTTP server"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    yield url, token
    stop_process(proc)


def test_a_streamable_http_server_with_a_token_from_the_environment(
    run_cli, fault_url, config, http_server
):
    url, token = http_server
    config(f'[mcp.web]\nurl = "{url}"\nheaders = {{ Authorization = "Bearer ${{WEB_TOKEN}}" }}\n')
    result = run_cli(
        "chat",
        ask({"name": "add", "arguments": {"a": 20, "b": 22}}),
        "--mcp",
        "web",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        env={"WEB_TOKEN": token},
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: 42\n"
    wrong = run_cli(
        "chat",
        ask({"name": "add", "arguments": {"a": 1, "b": 1}}),
        "--mcp",
        "web",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        env={"WEB_TOKEN": "not-" + token},
    )
    assert wrong.code == 0, wrong.stderr
    assert wrong.stderr.splitlines()[0] == (
        f"streamkit: MCP server 'web' {url} answered HTTP 401; going on without its tools"
    )
    assert token not in wrong.stderr + wrong.stdout
    shown = run_cli("config", "show", env={"WEB_TOKEN": token})
    assert json.loads(shown.stdout)["mcp"]["web"]["headers"] == {"Authorization": "***"}


# -- streamkit mcp list / call ---------------------------------------------------


def test_mcp_list_shows_each_server_its_state_and_tools(run_cli, config):
    config(
        server_table("test", "stdio", deny=["crash"]),
        '[mcp.gone]\ncommand = "/nonexistent/x"\n',
        '[mcp.off]\ncommand = "x"\nenabled = false\n',
    )
    result = run_cli("mcp", "list")
    assert result.code == 13
    lines = result.stdout.splitlines()
    assert lines[0] == "test\trunning (7 tools)"
    assert "  add\tAdd two integers." in lines
    assert "  crash\tKill the server in the middle of the call. [not offered: allow/deny]" in lines
    assert lines[-2:] == [
        "gone\tfailed: cannot run /nonexistent/x: No such file or directory",
        "off\tdisabled",
    ]
    assert result.stderr == "streamkit: could not start: gone\n"


def test_mcp_call_prints_the_result_as_json(run_cli, config):
    config(server_table("test", "stdio"))
    ok = run_cli("mcp", "call", "test", "shout", '{"word": "hi"}')
    assert ok.code == 0, ok.stderr
    assert json.loads(ok.stdout)["structuredContent"] == {"word": "HI"}
    failed = run_cli("mcp", "call", "test", "fail", '{"reason": "r"}')
    assert failed.code == 1 and json.loads(failed.stdout)["isError"] is True
    assert failed.stderr == "streamkit: test/fail reported an error\n"


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ("add", '{"a": 1}'),
            2,
            "the arguments do not match add's schema: 'b' is a required property",
        ),
        (("add", "[1]"), 2, "the arguments must be a JSON object"),
        (
            ("nope",),
            2,
            "MCP server 'test' has no tool 'nope' (tools: add, shout, big, pixel, "
            "fail, slow, crash)",
        ),
        (("slow", '{"seconds": 60}', "--timeout", "1"), 5, "test/slow did not finish within 1 s"),
        (("crash",), 13, "MCP server 'test' stopped answering"),
    ],
)
def test_mcp_call_failures_are_one_line_and_a_code(run_cli, config, args, code, line):
    config(server_table("test", "stdio"))
    result = run_cli("mcp", "call", "test", *args)
    assert (result.code, result.stderr, result.stdout) == (code, f"streamkit: {line}\n", "")


# -- signals --------------------------------------------------------------------


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_long_call_ends_the_server_and_its_group(
    fault_url, cli_env, tmp_path, signum, code
):
    marker = tmp_path / "marker"
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        server_table("test", "stdio", env={"STREAMKIT_TEST_MARKER": str(marker)})
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "chat",
            ask({"name": "slow", "arguments": {"seconds": 120}}),
            "--mcp",
            "test",
            "--base-url",
            fault_url("tools"),
            "--no-log",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow call never started"
            time.sleep(0.05)
        pid = int(marker.read_text().split()[1])
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert proc.returncode == code, stderr
    assert b"Traceback" not in stderr
    assert stdout == b"Let me check. \n"
    assert not _group_alive(pid)
    assert marker.read_text() == "cancelled"


def test_progress_notifications_are_shown_on_a_terminal(fault_url, cli_env, tmp_path):
    import pexpect

    Path(cli_env["STREAMKIT_CONFIG"]).write_text(server_table("test", "stdio"))
    child = pexpect.spawn(
        sys.executable,
        [
            "-m",
            "streamkit",
            "chat",
            ask({"name": "slow", "arguments": {"seconds": 1}}),
            "--mcp",
            "test",
            "--base-url",
            fault_url("tools"),
            "--no-log",
        ],
        env={**cli_env, "TERM": "xterm"},
        encoding="utf-8",
        timeout=60,
    )
    try:
        child.expect_exact("streamkit: test/slow: 0/2 started")
        child.expect_exact("streamkit: test/slow: 1/2 halfway")
        child.expect_exact("Results: slept")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0


def test_a_batch_runs_its_lines_tools_on_one_server(run_cli, fault_url, config, tmp_path):
    calls = tmp_path / "calls"
    config(
        server_table("test", "stdio", confirm=["shout"], env={"STREAMKIT_TEST_CALLS": str(calls)})
    )
    lines = "".join(
        json.dumps({"id": n, "prompt": ask(*asked)}) + "\n"
        for n, asked in [
            (1, [{"name": "add", "arguments": {"a": 1, "b": 2}}]),
            (
                2,
                [
                    {"name": "add", "arguments": {"a": 3, "b": 4}},
                    {"name": "shout", "arguments": {"word": "a"}},
                ],
            ),
        ]
    )
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        "--jsonl",
        "--mcp",
        "test",
        "--base-url",
        fault_url("tools"),
        "--db",
        str(db),
        input=lines,
    )
    assert result.code == 0, result.stderr
    records = {r["id"]: r for r in map(json.loads, result.stdout.splitlines())}
    assert records[1]["text"] == "Results: 3"
    assert records[2]["text"] == "Results: 7 | the user did not approve this tool call"
    assert [(r["source"], r["status"]) for r in records[2]["tool_results"]] == [
        ("test/add", "ok"),
        ("test/shout", "refused"),
    ]
    assert sorted(calls.read_text().splitlines()) == ["add 1 2", "add 3 4", "start stdio"]
    with sqlite3.connect(db) as conn:
        names = sorted(name for (name,) in conn.execute("SELECT name FROM tool_calls"))
    assert names == ["test/add", "test/add", "test/shout"]
    approved = run_cli(
        "chat",
        "--jsonl",
        "--yes",
        "--mcp",
        "test",
        "--no-log",
        "--base-url",
        fault_url("tools"),
        input=lines,
    )
    assert json.loads(approved.stdout.splitlines()[1])["text"] == 'Results: 7 | {\n  "word": "A"\n}'


def test_one_server_serves_every_turn_of_a_conversation(fault_url, cli_env, tmp_path):
    import pexpect

    calls = tmp_path / "calls"
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        server_table("test", "stdio", env={"STREAMKIT_TEST_CALLS": str(calls)})
    )
    env = {
        **cli_env,
        "XDG_DATA_HOME": str(tmp_path / "data"),
        "TERM": "xterm",
        "PROMPT_TOOLKIT_NO_CPR": "1",
    }  # pexpect's pty does not answer CPR queries
    child = pexpect.spawn(
        sys.executable,
        ["-m", "streamkit", "chat", "--mcp", "test", "--base-url", fault_url("tools"), "--no-log"],
        env=env,
        encoding="utf-8",
        timeout=60,
        dimensions=(40, 200),
    )
    try:
        child.expect("Chatting")
        for _ in range(2):  # the scenario asks for the first message's calls each turn
            child.send(ask({"name": "add", "arguments": {"a": 1, "b": 1}}) + "\r")
            child.expect_exact("Results: 2")
        child.send("/exit\r")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert child.exitstatus == 0
    assert calls.read_text() == "start stdio\nadd 1 1\nadd 1 1\n"


def test_ctrl_c_during_mcp_call_cancels_it(cli_env, tmp_path):
    marker = tmp_path / "marker"
    Path(cli_env["STREAMKIT_CONFIG"]).write_text(
        server_table("test", "stdio", env={"STREAMKIT_TEST_MARKER": str(marker)})
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", "mcp", "call", "test", "slow", '{"seconds": 120}'],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=cli_env,
    )
    try:
        deadline = time.monotonic() + 60
        while not marker.exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the slow call never started"
            time.sleep(0.05)
        pid = int(marker.read_text().split()[1])
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=20)
    finally:
        stop_process(proc)
    assert (proc.returncode, stdout, stderr) == (130, b"", b"")
    assert not _group_alive(pid)
    assert marker.read_text() == "cancelled"


def test_without_the_sdk_an_mcp_run_says_which_extra_to_install(fault_url, cli_env, config):
    config(server_table("test", "stdio"))
    probe = (
        "import sys\n"
        "sys.modules['mcp'] = None  # as if the mcp extra were not installed\n"
        "from streamkit.__main__ import main\n"
        "sys.argv = ['streamkit', *sys.argv[1:]]\n"
        "main()\n"
    )
    for args in (
        ["chat", "hi", "--mcp", "test", "--base-url", fault_url("tools")],
        ["mcp", "list"],
    ):
        proc = subprocess.run(
            [sys.executable, "-c", probe, *args],
            capture_output=True,
            text=True,
            env=cli_env,
            timeout=60,
        )
        assert (proc.returncode, proc.stdout) == (2, "")
        assert proc.stderr == (
            "streamkit: MCP servers need the mcp extra: pip install 'streamkit[mcp]'\n"
        )
