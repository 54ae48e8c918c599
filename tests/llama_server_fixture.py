"""llama.cpp's own server (``llama-server``) running SmolLM2 on loopback, for a test session.

It behaves unlike ``python -m llama_cpp.server`` where it matters to
streamkit: it closes kept-alive connections on its own schedule, serves
several requests at once (``-np 4``: four slots), ignores ``echo``, and
serves Prometheus metrics at ``/metrics`` (``--metrics``).
``.ci/build-llama-server`` (run by ``.ci/install --dev``) builds it once per
machine; the binary is ``$STREAMKIT_LLAMA_SERVER``, else the newest build of
this llama-cpp-python version in that cache.

Use it with ``from llama_server_fixture import native_llama_server  # noqa: F401``.
pytest keeps a session fixture per module that imports it, so the server
process itself is kept here: one per test session, stopped by its pid when
the session ends.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streamkit.providers.llama.files import embedded_model_path

from conftest import SERVER_START_TIMEOUT, free_port, stop_process

LLAMA_VERSION = "0.3.36"  # .ci/install's llama-cpp-python, whose llama.cpp is built
SLOTS = 4
CONTEXT = 4096  # shared by the slots: 1024 tokens each

_running: tuple[subprocess.Popen, str] | None = None


def llama_server_binary() -> Path:
    """The built ``llama-server``: the environment's choice, else the cache's."""
    chosen = os.environ.get("STREAMKIT_LLAMA_SERVER")
    if chosen:
        return Path(chosen)
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = sorted(
        cache.glob(f"streamkit/llama-server/llama-server-{LLAMA_VERSION}-*/llama-server"),
        key=lambda path: path.stat().st_mtime,
    )
    if not built:
        raise RuntimeError(
            "llama-server is not built: run `bash .ci/install --dev` "
            "(or set STREAMKIT_LLAMA_SERVER to a llama-server binary)"
        )
    return built[-1]


def _start(log: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(llama_server_binary()),
                "--model",
                str(embedded_model_path()),
                "--alias",
                "smollm2",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "-np",
                str(SLOTS),
                "--ctx-size",
                str(CONTEXT),
                "--metrics",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    root = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"llama-server exited:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{root}/health", timeout=1).status_code == 200:
                return proc, f"{root}/v1"
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            stop_process(proc)
            raise RuntimeError(f"llama-server did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def _stop() -> None:
    global _running
    if _running is not None:
        stop_process(_running[0])
        _running = None


@pytest.fixture(scope="session")
def native_llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """llama-server with SmolLM2 and four slots on 127.0.0.1; its /v1 URL."""
    global _running
    if _running is None:
        _running = _start(tmp_path_factory.mktemp("llama-server") / "server.log")
    yield _running[1]
    _stop()
