"""Tool calling: assembly, dispatch, the hop loop, approval, Ctrl-C, the log."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
import trio

from streamkit.config import ToolSpec
from streamkit.events import ToolCallDelta
from streamkit.pipeline.toolloop import run_with_tools
from streamkit.protocol.history import fit_history
from streamkit.protocol.toolcalls import ToolCall, ToolCallAccumulator
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.providers.transports import build_transport
from streamkit.request import GenerationOptions, GenerationRequest, Message, ToolCallRef
from streamkit.tools.builtins import (
    DIGIT_LIMIT,
    EXPRESSION_LIMIT,
    READ_LIMIT,
    builtin_tools,
    calculate,
)
from streamkit.tools.dispatch import Dispatcher
from streamkit.tools.registry import Tool, tool_from_spec

# -- assembly -------------------------------------------------------------------


def _split(text: str, cuts: tuple[int, ...]) -> list[str]:
    bounds = [0, *cuts, len(text)]
    return [text[a:b] for a, b in itertools.pairwise(bounds)]


def _sdk_assemble(deltas: list[ToolCallDelta]) -> list[tuple[str, str, str]]:
    """The openai SDK's own stream accumulator, as the oracle."""
    from openai.lib.streaming.chat import ChatCompletionStreamState
    from openai.types.chat import ChatCompletionChunk

    state = ChatCompletionStreamState()
    for n, d in enumerate(deltas):
        function = {"arguments": d.arguments}
        if d.name:
            function["name"] = d.name
        call = {"index": d.index, "function": function}
        if d.id:
            call.update(id=d.id, type="function")
        state.handle_chunk(
            ChatCompletionChunk.model_validate(
                {
                    "id": "x",
                    "object": "chat.completion.chunk",
                    "created": 0,
                    "model": "m",
                    "choices": [
                        {
                            "index": 0,
                            "delta": {"tool_calls": [call]},
                            "finish_reason": None if n < len(deltas) - 1 else "tool_calls",
                        }
                    ],
                }
            )
        )
    message = state.get_final_completion().choices[0].message
    return [(c.id, c.function.name, c.function.arguments) for c in message.tool_calls]


def test_interleaved_parallel_calls_split_every_way_match_the_sdk():
    args_a, args_b = '{"city": "Paris"}', '{"expression": "6*7"}'
    for cut_a, cut_b in itertools.product(range(1, len(args_a)), range(1, len(args_b))):
        a1, a2 = _split(args_a, (cut_a,))
        b1, b2 = _split(args_b, (cut_b,))
        deltas = [
            ToolCallDelta(0, "call_a", "weather", a1),
            ToolCallDelta(1, "call_b", "calculate", b1),
            ToolCallDelta(0, None, None, a2),
            ToolCallDelta(1, None, None, b2),
        ]
        acc = ToolCallAccumulator()
        for d in deltas:
            acc.add(d)
        ours = [(c.id, c.name, c.arguments) for c in acc.calls()]
        assert ours == [("call_a", "weather", args_a), ("call_b", "calculate", args_b)]
        assert ours == _sdk_assemble(deltas)


def test_repeated_id_and_name_kept_once_where_the_sdk_concatenates():
    deltas = [ToolCallDelta(0, "call_1", "f", '{"a"'), ToolCallDelta(0, "call_1", "f", ": 1}")]
    acc = ToolCallAccumulator()
    for d in deltas:
        acc.add(d)
    assert acc.calls() == [ToolCall(0, "call_1", "f", '{"a": 1}')]
    sdk = _sdk_assemble(deltas)[0]
    assert sdk[2] == '{"a": 1}'
    assert sdk[0] == "call_1call_1" or sdk[1] == "ff"  # the SDK's known fault


def test_index_from_1_late_name_and_invalid_calls():
    acc = ToolCallAccumulator()
    acc.add(ToolCallDelta(1, "c1", None, "{"))
    acc.add(ToolCallDelta(1, None, "late", "}"))
    acc.add(ToolCallDelta(2, "c2", None, "{}"))
    acc.add(ToolCallDelta(3, "c3", "g", "{oops"))
    calls = acc.calls()
    assert [c.index for c in calls] == [1, 2, 3]
    assert calls[0].name == "late" and calls[0].problem() is None
    assert "no function name" in calls[1].problem()
    assert "not valid JSON" in calls[2].problem()
    assert ToolCall(0, "x", "f", "[1]").problem() == "the arguments are not a JSON object"
    assert ToolCall(0, "x", "f", "").problem() is None  # no arguments: {}


# -- dispatch in-process ----------------------------------------------------------


def test_calculate_is_safe():
    assert calculate("2 ** 10 + (3 - 1) * 4 / 8") == "1025.0"
    for bad in ("__import__('os')", "x + 1", "(1).real", "9 ** 99999"):
        with pytest.raises(ValueError):
            calculate(bad)


def test_calculate_bounds_every_number_before_computing_it():
    """Each intermediate result is checked before it is computed: a tower of powers is
    refused at once instead of running the CPU (and holding the GIL) for hours."""
    assert calculate(f"10 ** {DIGIT_LIMIT - 1}") == "1" + "0" * (DIGIT_LIMIT - 1)
    assert calculate("3 ** 2000 % 7") == str(3**2000 % 7)
    assert calculate("(-1) ** (10 ** 900) + 1 ** (10 ** 900)") == "2"
    too_big = (
        "((10**1000)**1000)**1000",
        f"10 ** {DIGIT_LIMIT}",
        "2 ** 10 ** 10",
        f"(10 ** {DIGIT_LIMIT // 2 + 1}) * (10 ** {DIGIT_LIMIT // 2 + 1})",
        "0x" + "f" * 900,
        "9 ** 99999",
    )
    for expression in too_big:
        with pytest.raises(ValueError, match=f"more than {DIGIT_LIMIT} digits"):
            calculate(expression)
    with pytest.raises(ValueError, match=f"longer than {EXPRESSION_LIMIT} characters"):
        calculate("1" + "+1" * EXPRESSION_LIMIT)


def test_read_file_stays_under_its_root(tmp_path):
    (tmp_path / "a.txt").write_text("hello")
    read = builtin_tools(tmp_path)["read_file"].function
    assert read("a.txt") == "hello"
    with pytest.raises(ValueError, match="outside the tool root"):
        read("../etc/passwd")


def test_read_file_reads_only_regular_files_and_at_most_its_limit(tmp_path):
    """A FIFO would block the open for ever (a device or socket likewise, or never end):
    only regular files are read, and no more than ``READ_LIMIT`` bytes of them."""
    os.mkfifo(tmp_path / "pipe")
    (tmp_path / "folder").mkdir()
    (tmp_path / "big.txt").write_bytes(b"x" * (READ_LIMIT + 10))
    read = builtin_tools(tmp_path)["read_file"].function
    for name in ("pipe", "folder"):
        with pytest.raises(ValueError, match="not a regular file"):
            read(name)
    assert read("big.txt") == "x" * READ_LIMIT + "\n[truncated]"


async def _never_asked(tool, arguments):
    raise AssertionError("no tool here needs confirmation")


async def test_dispatch_validates_caps_and_reports_every_call(tmp_path):
    loud = tool_from_spec("loud", ToolSpec(command=[sys.executable, "-c", "print('x' * 100000)"]))
    failing = tool_from_spec(
        "failing",
        ToolSpec(command=[sys.executable, "-c", "import sys; sys.exit('broken pipe dream')"]),
    )
    tools = {**builtin_tools(tmp_path), "loud": loud, "failing": failing}
    dispatcher = Dispatcher(tools, approve=_never_asked, output_cap=1000)
    calls = [
        ToolCall(0, "a", "calculate", '{"expression": "6*7"}'),
        ToolCall(1, "b", "calculate", '{"expr": "6*7"}'),
        ToolCall(2, "c", "nope", "{}"),
        ToolCall(3, "d", "loud", "{}"),
        ToolCall(4, "e", "failing", "{}"),
        ToolCall(5, "f", "calculate", '{"expression": "1/0"}'),
    ]
    results = await dispatcher.run_all(calls, hop=1)
    assert [r.call_id for r in results] == ["a", "b", "c", "d", "e", "f"]
    assert [r.status for r in results] == ["ok", "invalid", "invalid", "ok", "error", "error"]
    assert results[0].content == "42"
    assert "schema" in results[1].content
    assert results[3].content.endswith("[output truncated: 99001 more bytes]")
    assert len(results[3].content.encode()) < 1100
    assert results[4].content == "exit status 1: broken pipe dream"
    assert "ZeroDivisionError" in results[5].content


async def test_tool_timeout_kills_the_process(tmp_path):
    pid_file = tmp_path / "pid"
    sleeper = tool_from_spec(
        "sleeper",
        ToolSpec(
            command=[
                sys.executable,
                "-c",
                f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid()));"
                " time.sleep(60)",
            ],
            timeout=0.5,
        ),
    )
    dispatcher = Dispatcher({"sleeper": sleeper}, approve=_never_asked)
    [result] = await dispatcher.run_all([ToolCall(0, "a", "sleeper", "{}")], hop=1)
    assert result.status == "timeout"
    assert "0.5 s" in result.content
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


async def test_a_sync_python_tool_past_its_timeout_is_abandoned():
    """A thread cannot be stopped, but it need not be waited for: the call times out."""
    release = threading.Event()

    def stuck() -> str:
        release.wait(60)  # returns only once the test is over
        return "too late"

    tool = Tool("stuck", ToolSpec(timeout=0.2), stuck)
    dispatcher = Dispatcher({"stuck": tool}, approve=_never_asked)
    try:
        [result] = await dispatcher.run_all([ToolCall(0, "a", "stuck", "{}")], hop=1)
    finally:
        release.set()
    assert (result.status, result.content) == ("timeout", "the tool did not finish within 0.2 s")


# -- the CLI against the scripted tool server -------------------------------------


def ask(*calls: dict, always: bool = False) -> str:
    return json.dumps({"calls": list(calls), "always": always})


def test_python_tool_result_is_fed_back(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        ask({"name": "calculate", "arguments": {"expression": "6*7"}}),
        "--tool",
        "calculate",
        "--base-url",
        fault_url("tools"),
        "--db",
        str(db),
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: 42\n"
    assert 'streamkit: tool calculate({"expression": "6*7"}) -> 42' in result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT hop, name, arguments, result, status FROM tool_calls"
        ).fetchall()
        roles = [r for (r,) in conn.execute("SELECT role FROM messages ORDER BY id")]
    assert rows == [(1, "calculate", '{"expression": "6*7"}', "42", "ok")]
    assert roles == ["user", "assistant", "tool", "assistant"]
    shown = run_cli("logs", "show", _only_conversation(db), "--db", str(db))
    assert "## tool" in shown.stdout and "calculate" in shown.stdout


def test_calls_without_ids_get_one_id_everywhere(run_cli, fault_url, tmp_path):
    """A server that sends no call ids: the id made up for each call is the same in
    the log's assistant row and in its tool messages, so ``chat -c`` replays the turn
    with matching ids."""
    db = tmp_path / "log.db"
    spec = json.dumps(
        {
            "calls": [
                {"name": "calculate", "arguments": {"expression": "1+1"}},
                {"name": "calculate", "arguments": {"expression": "2+2"}},
            ],
            "no_ids": True,
        }
    )
    result = run_cli(
        "chat", spec, "--tool", "calculate", "--base-url", fault_url("tools"), "--db", str(db)
    )
    assert result.code == 0, result.stderr
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT role, tool_calls, tool_call_id FROM messages ORDER BY id"
        ).fetchall()
    calls = json.loads(rows[1][1])
    ids = [call["id"] for call in calls]
    assert all(ids) and len(set(ids)) == 2
    assert [row[2] for row in rows if row[0] == "tool"] == ids


def test_a_model_chosen_tower_of_powers_is_an_error_result(run_cli, fault_url):
    result = run_cli(
        "chat",
        ask({"name": "calculate", "arguments": {"expression": "((10**1000)**1000)**1000"}}),
        "--tool",
        "calculate",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        timeout=60,
    )
    assert result.code == 0, result.stderr
    assert result.stdout.startswith("Let me check. \nResults: ValueError: ")
    assert f"more than {DIGIT_LIMIT} digits" in result.stdout
    assert "[error]" in result.stderr


def test_read_file_on_a_fifo_is_an_error_result(run_cli, fault_url, tmp_path):
    os.mkfifo(tmp_path / "pipe")  # no writer: opening it to read would wait for one
    result = run_cli(
        "chat",
        ask({"name": "read_file", "arguments": {"path": "pipe"}}),
        "--tool",
        "read_file",
        "--tool-root",
        str(tmp_path),
        "--base-url",
        fault_url("tools"),
        "--no-log",
        timeout=60,
    )
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: ValueError: 'pipe' is not a regular file\n"


def _only_conversation(db: Path) -> str:
    with sqlite3.connect(db) as conn:
        [(cid,)] = conn.execute("SELECT id FROM conversations").fetchall()
    return cid


def _rendezvous_tool(tmp_path: Path, me: str, other: str) -> str:
    """A tool that marks its start, then waits for the other tool's mark.

    Run one after the other, the first would wait for a mark that never
    comes and time out: both succeeding shows they ran at the same time.
    """
    script = tmp_path / f"{me}.py"
    script.write_text(
        textwrap.dedent(f"""
        import pathlib, sys, time
        root = pathlib.Path({str(tmp_path)!r})
        (root / "{me}.started").write_text("")
        for _ in range(200):
            if (root / "{other}.started").exists():
                print("{me} saw {other}")
                sys.exit(0)
            time.sleep(0.05)
        sys.exit("{other} never started")
    """)
    )
    return f"command = [{json.dumps(sys.executable)}, {json.dumps(str(script))}]"


def test_argv_tools_of_one_reply_run_concurrently(run_cli, fault_url, tmp_path):
    tools = tmp_path / "tools.toml"
    tools.write_text(
        f"[tools.left]\n{_rendezvous_tool(tmp_path, 'left', 'right')}\ntimeout = 20\n"
        f"[tools.right]\n{_rendezvous_tool(tmp_path, 'right', 'left')}\ntimeout = 20\n"
    )
    result = run_cli(
        "chat",
        ask({"name": "left"}, {"name": "right"}),
        "--tools",
        str(tools),
        "--base-url",
        fault_url("tools"),
        "--events",
    )
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    tool_results = [r for r in records if r["type"] == "tool_result"]
    assert [(r["name"], r["status"], r["content"].strip()) for r in tool_results] == [
        ("left", "ok", "left saw right"),
        ("right", "ok", "right saw left"),
    ]
    assert any(r["type"] == "tool_call" for r in records)
    assert records[-1]["type"] == "finish"


def test_schema_failure_and_invalid_json_reach_the_model_not_the_tool(run_cli, fault_url):
    result = run_cli(
        "chat",
        ask(
            {"name": "calculate", "arguments": {"expr": "1"}},
            {"name": "calculate", "arguments_raw": '{"expression": '},
        ),
        "--tool",
        "calculate",
        "--base-url",
        fault_url("tools"),
        "--no-log",
    )
    assert result.code == 0, result.stderr
    assert "do not match the schema" in result.stdout
    assert "not valid JSON" in result.stdout
    assert result.stderr.count("[invalid]") == 2


def test_hop_limit_exits_9_with_a_notice(run_cli, fault_url, tmp_path):
    db = tmp_path / "log.db"
    result = run_cli(
        "chat",
        ask({"name": "now"}, always=True),
        "--tool",
        "now",
        "--max-hops",
        "2",
        "--base-url",
        fault_url("tools"),
        "--db",
        str(db),
    )
    assert result.code == 9
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith("streamkit: the model still asked for tools after 2 hop(s)")
    )
    with sqlite3.connect(db) as conn:
        hops = [h for (h,) in conn.execute("SELECT hop FROM tool_calls ORDER BY id")]
        notices = conn.execute("SELECT content FROM messages WHERE role = 'system'").fetchall()
    assert hops == [1, 2]
    assert "--max-hops" in notices[0][0]


def test_confirm_tool_is_refused_without_a_terminal_and_runs_with_yes(run_cli, fault_url, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(
        "[tools.shout]\ndescription = 'echo loudly'\nconfirm = true\n"
        f"command = [{json.dumps(sys.executable)}, '-c', 'print(\"HEY\")']\n"
    )
    env = {"STREAMKIT_CONFIG": str(config)}
    refused = run_cli(
        "chat",
        ask({"name": "shout"}),
        "--tool",
        "shout",
        "--no-log",
        "--base-url",
        fault_url("tools"),
        env=env,
    )
    assert refused.code == 0
    assert "did not approve" in refused.stdout
    approved = run_cli(
        "chat",
        ask({"name": "shout"}),
        "--tool",
        "shout",
        "--yes",
        "--no-log",
        "--base-url",
        fault_url("tools"),
        env=env,
    )
    assert approved.stdout.endswith("Results: HEY\n")


def test_ctrl_c_during_a_tool_kills_it(fault_url, cli_env, tmp_path):
    pid_file = tmp_path / "pid"
    tools = tmp_path / "tools.toml"
    code = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    tools.write_text(
        f"[tools.slow]\ncommand = [{json.dumps(sys.executable)}, '-c', {json.dumps(code)}]\n"
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "chat",
            ask({"name": "slow"}),
            "--tools",
            str(tools),
            "--base-url",
            fault_url("tools"),
        ],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 30
    while not pid_file.exists() or not pid_file.read_text():
        assert time.monotonic() < deadline and proc.poll() is None
        time.sleep(0.05)
    tool_pid = int(pid_file.read_text())
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=15)
    assert proc.returncode == 130
    assert b"Traceback" not in stderr
    with pytest.raises(ProcessLookupError):
        os.kill(tool_pid, 0)


def _with_tests_on_path(env: dict[str, str]) -> dict[str, str]:
    """``env`` where the CLI can import the tools of this folder (``hanging_tools``)."""
    here = str(Path(__file__).parent)
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [here, env.get("PYTHONPATH")]))}


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_stuck_python_tool_exits_at_once(
    fault_url, cli_env, tmp_path, signum, code
):
    marker = tmp_path / "started"
    tools = tmp_path / "tools.toml"
    tools.write_text('[tools.stuck]\npython = "hanging_tools:wait_forever"\n')
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "chat",
            ask({"name": "stuck", "arguments": {"marker": str(marker)}}),
            "--tools",
            str(tools),
            "--base-url",
            fault_url("tools"),
            "--no-log",
        ],
        env=_with_tests_on_path(cli_env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        _wait_for_file(marker, proc)
        proc.send_signal(signum)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code, stderr
    assert stdout == b"Let me check. \n"
    assert b"Traceback" not in stderr


def _wait_for_file(path: Path, proc: subprocess.Popen) -> str:
    """The text of ``path`` once a tool of ``proc`` wrote it (the CLI still running)."""
    deadline = time.monotonic() + 60
    while not (path.exists() and path.read_text().strip()):
        assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read()
        time.sleep(0.05)
    return path.read_text().strip()


def _group_tool(tmp_path: Path, script: str, extra: str = "") -> tuple[Path, Path]:
    """A ``--tools`` file with the tool ``group``: ``sh -c SCRIPT`` where the shell
    ignores SIGTERM (as do its children) after writing its process group id
    (its own pid: a tool leads a new session) to the returned file."""
    pgid_file = tmp_path / "pgid"
    tools = tmp_path / "tools.toml"
    line = f"trap '' TERM; echo $$ > {pgid_file}; {script}"
    tools.write_text(f'[tools.group]\ncommand = ["sh", "-c", {json.dumps(line)}]\n{extra}')
    return tools, pgid_file


def _live_members(pgid: int) -> list[str]:
    """The processes of group ``pgid`` still running (a zombie has ended: it waits
    only to be reaped by init)."""
    listing = subprocess.run(
        ["ps", "-eo", "pgid=,stat=,pid=,args="], capture_output=True, text=True, check=True
    ).stdout
    rows = [line.split(None, 2) for line in listing.splitlines()]
    return [row[2] for row in rows if int(row[0]) == pgid and not row[1].startswith("Z")]


@pytest.fixture
def tool_groups():
    """Process groups of tools the test ran: killed afterwards, whatever happened."""
    groups: list[int] = []
    yield groups
    for pgid in groups:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)


def test_a_finished_command_tool_takes_its_background_children_with_it(
    run_cli, fault_url, tmp_path, tool_groups
):
    """The shell answers and exits; the ``sleep`` it left holds stdout open and ignores
    SIGTERM. The answer still comes back, and the ``sleep`` is killed."""
    tools, pgid_file = _group_tool(tmp_path, "sleep 300 & echo started")
    result = run_cli(
        "chat",
        ask({"name": "group"}),
        "--tools",
        str(tools),
        "--tool-timeout",
        "20",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        timeout=60,
    )
    tool_groups.append(pgid := int(pgid_file.read_text()))
    assert result.code == 0, result.stderr
    assert result.stdout == "Let me check. \nResults: started\n"
    assert _live_members(pgid) == []


def test_a_timed_out_command_tool_keeps_its_output_and_leaves_nothing_running(
    run_cli, fault_url, tmp_path, tool_groups
):
    tools, pgid_file = _group_tool(tmp_path, "sleep 300 & echo started; sleep 300", "timeout = 5\n")
    result = run_cli(
        "chat",
        ask({"name": "group"}),
        "--tools",
        str(tools),
        "--events",
        "--base-url",
        fault_url("tools"),
        "--no-log",
        timeout=60,
    )
    tool_groups.append(pgid := int(pgid_file.read_text()))
    assert result.code == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    [tool_result] = [r for r in records if r["type"] == "tool_result"]
    assert tool_result["status"] == "timeout"
    assert tool_result["content"] == "started\n[the tool did not finish within 5 s]"
    assert _live_members(pgid) == []


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_a_command_tool_kills_its_whole_group(
    fault_url, cli_env, tmp_path, tool_groups, signum, code
):
    tools, pgid_file = _group_tool(tmp_path, "sleep 300 & echo started; wait")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "chat",
            ask({"name": "group"}),
            "--tools",
            str(tools),
            "--base-url",
            fault_url("tools"),
            "--no-log",
        ],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        tool_groups.append(pgid := int(_wait_for_file(pgid_file, proc)))
        proc.send_signal(signum)
        _, stderr = proc.communicate(timeout=30)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == code, stderr
    assert b"Traceback" not in stderr
    assert _live_members(pgid) == []


def test_unknown_tool_is_a_usage_error(run_cli):
    result = run_cli("chat", "hi", "--tool", "teleport")
    assert result.code == 2
    assert "unknown tool 'teleport'" in result.stderr


def test_real_server_forced_tool_call(run_cli, llama_server):
    result = run_cli(
        "chat",
        "What is 12 times 12?",
        "--tool",
        "calculate",
        "--tool-choice",
        "calculate",
        "--max-hops",
        "1",
        "--base-url",
        llama_server,
        "-n",
        "48",
        "--events",
        "--no-log",
    )
    records = [json.loads(line) for line in result.stdout.splitlines()]
    tool_results = [r for r in records if r["type"] == "tool_result"]
    assert tool_results, result.stdout + result.stderr
    # One call, even though llama.cpp sends every fragment twice (tool_calls and
    # the legacy function_call) and repeats its id and name on each delta.
    assert tool_results[0]["name"] == "calculate"
    assert tool_results[0]["status"] in ("ok", "invalid", "error")
    assert result.code in (0, 9)


def test_dropped_tool_calls_take_their_results_with_them():
    calls = (ToolCallRef("c1", "calculate", "{}"),)
    history = [
        Message("system", "s"),
        Message("user", "u1"),
        Message("assistant", "", tool_calls=calls),
        Message("tool", "42", tool_call_id="c1"),
        Message("tool", "43", tool_call_id="c1"),
        Message("assistant", "a1"),
        Message("user", "u2"),
    ]
    kept, dropped = fit_history(history, 4, len)  # room for 4 messages
    assert kept == [history[0], history[5], history[6]] and dropped == 4
    assert all(m.role != "tool" for m in kept)  # never a result without its call


async def test_later_hops_send_what_fit_returns(fault_url, capsys):
    """Each hop after the first sends ``fit(history)``: the grown history, fitted."""
    url = fault_url("tools")
    seen: list[list[str]] = []

    async def fit(history: list[Message]) -> tuple[Message, ...]:
        seen.append([m.role for m in history])
        return tuple(history)

    history = [
        Message(
            "user",
            json.dumps({"calls": [{"name": "calculate", "arguments": {"expression": "6*7"}}]}),
        )
    ]
    request = GenerationRequest("chat", None, GenerationOptions(), messages=tuple(history))
    async with build_transport(url, None, connect_timeout=5, idle_timeout=5) as client:
        reply = await run_with_tools(
            OpenAIHTTPProducer(client),
            request,
            history,
            dispatcher=Dispatcher(
                {"calculate": builtin_tools(Path.cwd())["calculate"]}, approve=_never_asked
            ),
            max_hops=2,
            guard=lambda: contextlib.nullcontext(trio.CancelScope()),
            events=False,
            stats=False,
            log=None,
            prompt_text=None,
            fit=fit,
        )
    assert reply.error is None and reply.text == "Results: 42"
    assert seen == [["user", "assistant", "tool"]]  # the second hop, and only it
