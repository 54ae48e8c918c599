"""Shared fixtures: the real llama.cpp server, the scripted fault server, the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from streamkit.providers.llama.files import embedded_model_path

TESTS = Path(__file__).parent
SERVER_START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark ``server`` every test that needs ``llama_server``, directly or through other
    fixtures (``fixturenames`` is the closure), so ``-m "not server"`` never starts it."""
    for item in items:
        needs_server = "llama_server" in getattr(item, "fixturenames", ())
        if needs_server and not item.get_closest_marker("server"):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real OpenAI-compatible server (llama_cpp.server) running SmolLM2; its /v1 URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "llama_cpp.server",
                "--model",
                str(embedded_model_path()),
                "--model_alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--n_ctx",
                "2048",
                "--verbose",
                "false",
                # By default the server cuts off a running stream when another
                # request arrives; concurrent clients need it queued instead.
                "--interrupt_requests",
                "false",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"llama_cpp.server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/models", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"llama_cpp.server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    yield base
    stop_process(proc)


@pytest.fixture(scope="session")
def fault_server_root() -> Iterator[str]:
    """The scripted fault server as a separate process; its root URL."""
    yield from serve_script("fault_server.py")


def serve_script(name: str) -> Iterator[str]:
    """Run ``tests/<name>`` (a server that prints ``PORT <n>``) until the generator
    ends; yields its root URL. For module- or session-scoped fixtures."""
    proc = subprocess.Popen([sys.executable, str(TESTS / name)], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    assert line.startswith("PORT "), line
    yield f"http://127.0.0.1:{int(line.split()[1])}"
    stop_process(proc)


@pytest.fixture(scope="session")
def token_server() -> Iterator[str]:
    """``tests/token_server.py``, which keeps every request body; its root URL."""
    yield from serve_script("token_server.py")


class Scripted:
    """One scenario of the token server under a fresh key: its URL and what it received."""

    def __init__(self, root: str, scenario: str) -> None:
        self.key = uuid.uuid4().hex
        self.url = f"{root}/{scenario}/{self.key}/v1"

    def raw_bodies(self) -> list[bytes]:
        answer = httpx.get(f"{self.url}/bodies")
        return [body.encode("latin-1") for body in answer.json()]

    def bodies(self) -> list[dict]:
        return [json.loads(raw) for raw in self.raw_bodies()]


@pytest.fixture
def scripted(token_server: str):
    """``scripted("echo")``: a token-server scenario under a fresh key."""
    return lambda scenario="echo": Scripted(token_server, scenario)


@pytest.fixture
def fault_url(fault_server_root: str):
    """``fault_url("stall")``: a base URL for that scenario with fresh state."""

    def make(scenario: str) -> str:
        return f"{fault_server_root}/{scenario}/{uuid.uuid4().hex}/v1"

    return make


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """An environment with no user config, no inherited API settings, a private log."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMKIT_"))}
    env["STREAMKIT_CONFIG"] = str(tmp_path / "config.toml")
    env["STREAMKIT_DB"] = str(tmp_path / "default-log.db")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str


@pytest.fixture
def run_cli(cli_env: dict[str, str]):
    """Run ``streamkit ARGS`` as a real subprocess; returns code, stdout, stderr."""

    def run(
        *args: str, input: str | None = None, env: dict | None = None, timeout: float = 120
    ) -> Result:
        proc = subprocess.run(
            [sys.executable, "-m", "streamkit", *args],
            input=input if input is not None else "",
            capture_output=True,
            text=True,
            env={**cli_env, **(env or {})},
            timeout=timeout,
        )
        return Result(proc.returncode, proc.stdout, proc.stderr)

    return run
