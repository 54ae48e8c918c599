"""What a well-behaved CLI does: completions, help, versions, colour, pipes, config."""

from __future__ import annotations

import json
import os
import pty
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamkit.cli.completions import completion_scripts

ROOT = Path(__file__).parent.parent
COMPLETIONS = ROOT / "completions"
ANSI = b"\x1b["


@pytest.fixture
def shell_env(cli_env):
    """``streamkit`` on PATH, as an installed user has it."""
    return {**cli_env, "PATH": f"{Path(sys.executable).parent}:{cli_env['PATH']}"}


def test_completion_scripts_are_not_stale():
    for name, text in completion_scripts().items():
        assert (COMPLETIONS / name).read_text() == text, (
            f"completions/{name} is stale: python -m streamkit.cli.completions completions"
        )


def _shell(argv: list[str], env: dict[str, str]) -> str:
    assert shutil.which(argv[0]), f"{argv[0]} is not installed (.ci/install installs it)"
    return subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=60, check=True
    ).stdout


def test_bash_completes_commands_and_options(shell_env):
    script = (
        f"source {COMPLETIONS / 'streamkit.bash'}\n"
        "COMP_WORDS=(streamkit ch); COMP_CWORD=1; _streamkit_completion streamkit\n"
        'echo "${COMPREPLY[@]}"\n'
        "COMP_WORDS=(streamkit chat --max-t); COMP_CWORD=2; _streamkit_completion streamkit\n"
        'echo "${COMPREPLY[@]}"\n'
    )
    first, second = _shell(["bash", "-c", script], shell_env).splitlines()
    assert first.split() == ["chat"]
    assert second.split() == ["--max-tokens"]


def test_zsh_completes_commands(shell_env):
    script = (
        "compdef() { : }\n"
        '_arguments() { print -r -- "$@" }\n'
        f"source {COMPLETIONS / '_streamkit'}\n"
        "words=(streamkit ch); CURRENT=2; _streamkit_completion\n"
    )
    assert '"chat"' in _shell(["zsh", "-f", "-c", script], shell_env)


def test_fish_completes_commands_and_local_models(shell_env):
    script = (
        f"source {COMPLETIONS / 'streamkit.fish'}\n"
        "complete -C 'streamkit ch'\n"
        "complete -C 'streamkit chat --model sm'\n"
    )
    out = _shell(["fish", "--no-config", "-c", script], shell_env)
    assert any(line.split("\t")[0] == "chat" for line in out.splitlines())
    assert any(line.split("\t")[0] == "smollm2" for line in out.splitlines())


COMMANDS = [
    ["chat"],
    ["complete"],
    ["score"],
    ["relay"],
    ["models"],
    ["logs", "list"],
    ["logs", "show"],
    ["logs", "search"],
    ["logs", "export"],
    ["logs", "rm"],
    ["config", "path"],
    ["config", "show"],
    ["config", "init"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_help_has_examples(run_cli, command):
    result = run_cli(*command, "--help")
    assert result.code == 0
    assert "Example" in result.stdout
    assert "streamkit " + command[0] in result.stdout.split("Example", 1)[1]


def test_top_level_help_groups_commands_and_lists_exit_codes(run_cli):
    out = run_cli("--help").stdout
    for group in ("Generate", "Evaluate", "Conversation log", "Settings", "Servers and models"):
        assert group in out
    assert "130 Ctrl-C" in out and "9 tool hop limit" in out


def test_a_run_loads_only_its_own_command_and_help_lists_all(cli_env):
    """The app registers the command argv names; help and typos still see every command."""
    probe = (
        "import sys; from streamkit.cli.app import app_for; "
        "app = app_for(sys.argv[1:]); "
        "print(len(app.registered_commands) + len(app.registered_groups), "
        "'streamkit.cli.bench' in sys.modules)"
    )

    def loaded(*argv: str) -> str:
        run = subprocess.run(
            [sys.executable, "-c", probe, *argv], capture_output=True, text=True, env=cli_env
        )
        assert run.returncode == 0, run.stderr
        return run.stdout.strip()

    assert loaded("--no-color", "chat", "-h") == "1 False"  # help after the command: its own
    assert loaded("bench", "run") == "1 True"
    assert loaded("--help", "chat") == "10 True"
    assert loaded() == "10 True"
    assert loaded("chta") == "10 True"  # typer's "Did you mean 'chat'?" needs every name


def test_a_batch_imports_nothing_it_does_not_use(cli_env, fault_url, tmp_path):
    """Start-up is part of every batch's time: the modules only the terminal, a proxy,
    an HTTP date or a clock tool need stay unloaded by a real batch."""
    unused = (
        "streamkit.cli.converse",
        "prompt_toolkit",
        "urllib.request",
        "http.client",
        "email.utils",
        "zoneinfo",
        "httpx",
    )
    probe = (
        "import atexit, sys\n"
        f"atexit.register(lambda: print([m for m in {unused!r} if m in sys.modules]))\n"
        "sys.argv = ['streamkit', *sys.argv[1:]]\n"
        "from streamkit.__main__ import main\n"
        "main()\n"
    )
    lines = tmp_path / "in.jsonl"
    lines.write_text('{"prompt": "hi"}\n')
    argv = ["chat", "--jsonl", "--base-url", fault_url("ok"), "-i", str(lines)]
    run = subprocess.run(
        [sys.executable, "-c", probe, *argv, "-o", str(tmp_path / "out.jsonl")],
        capture_output=True,
        text=True,
        env=cli_env,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
    assert "Hello" in (tmp_path / "out.jsonl").read_text()


def test_unknown_command_suggests_the_near_one(run_cli):
    result = run_cli("chta", "x")
    assert result.code == 2
    assert "No such command 'chta'" in result.stderr and "'chat'" in result.stderr


def test_version(run_cli):
    out = run_cli("--version").stdout.splitlines()
    assert out[0].startswith("streamkit 0.")
    assert out[1].startswith("Python 3.")
    assert "llama-cpp-python" in out[2] and "usable" in out[2]


def _run_on_pty(args: list[str], env: dict[str, str], *, stream: str) -> tuple[bytes, bytes]:
    """Run ``streamkit`` with ``stream`` (stdout or stderr) on a pseudo-terminal."""
    leader, follower = pty.openpty()
    kwargs = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, stream: follower}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", *args], env=env, stdin=subprocess.DEVNULL, **kwargs
    )
    os.close(follower)
    seen = b""
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:
            break
        if not data:
            break
        seen += data
    other = (proc.stderr if stream == "stdout" else proc.stdout).read()
    proc.wait(timeout=60)
    os.close(leader)
    return seen, other


def test_colour_only_on_a_terminal_and_never_with_no_color(cli_env, run_cli):
    on_terminal, _ = _run_on_pty(["--help"], cli_env, stream="stdout")
    assert ANSI in on_terminal
    assert ANSI not in run_cli("--help").stdout.encode()
    for env, args in (
        ({**cli_env, "NO_COLOR": "1"}, ["--help"]),
        (cli_env, ["--no-color", "chat", "--help"]),
    ):
        plain, _ = _run_on_pty(args, env, stream="stdout")
        assert ANSI not in plain


def test_batch_progress_only_when_stderr_is_a_terminal(cli_env, fault_url, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps({"id": i, "prompt": "x"}) + "\n" for i in range(30)))
    args = ["chat", "--jsonl", "-i", str(source), "--base-url", fault_url("delayed"), "-j", "2"]
    terminal, stdout = _run_on_pty(args, cli_env, stream="stderr")
    assert b"batch" in terminal
    assert len(stdout.splitlines()) == 30 and ANSI not in stdout
    piped = subprocess.run(
        [sys.executable, "-m", "streamkit", *args], env=cli_env, capture_output=True, timeout=60
    )
    assert piped.returncode == 0
    assert piped.stderr == b""


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["models"],
        ["chat", "hi", "--events"],
        ["logs", "export"],
    ],
)
def test_closed_stdout_ends_quietly(cli_env, fault_url, command, tmp_path):
    db = tmp_path / "log.db"
    env = {**cli_env, "STREAMKIT_DB": str(db), "STREAMKIT_BASE_URL": fault_url("slow")}
    if command[0] == "logs":  # something to export
        for _ in range(3):
            subprocess.run(
                [sys.executable, "-m", "streamkit", "complete", "x", "--base-url", fault_url("ok")],
                env=env,
                capture_output=True,
            )
    line = " ".join(command)
    proc = subprocess.run(
        f"{sys.executable} -m streamkit {line} | head -c 1",
        shell=True,
        env=env,
        capture_output=True,
        timeout=60,
    )
    assert proc.stdout
    assert proc.stderr == b"", proc.stderr


def test_config_init_show_masks_secrets(run_cli, tmp_path):
    config = tmp_path / "config.toml"
    env = {"STREAMKIT_CONFIG": str(config)}
    assert run_cli("config", "path", env=env).stdout.strip() == str(config)
    assert run_cli("config", "init", env=env).code == 0
    assert run_cli("config", "init", env=env).code == 2  # no silent overwrite
    text = config.read_text()
    assert "[profiles." in text and "[models]" in text and "[tools." in text
    config.write_text(
        text.replace('api_key_env = "EXAMPLE_API_KEY"', 'api_key = "sk-do-not-show-me"')
    )
    shown = run_cli("config", "show", env=env)
    assert shown.code == 0
    assert "sk-do-not-show-me" not in shown.stdout
    assert json.loads(shown.stdout)["profiles"]["hosted"]["api_key"] == "***"
