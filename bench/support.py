"""Pieces the benchmark scripts share, so that each is written once.

Several scripts run ``streamkit`` as child processes against
``tests/fault_server.py``: they need the same clean environment for the
children, the same way to start the server and learn its port, fresh
scenario keys and (the batch ones) the same JSONL input. The scripts are run
as ``python bench/<name>.py``, which puts this folder on ``sys.path``, so they
import these with ``from support import ...``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def child_env(tmp: Path, *, db: Path | None = None) -> dict[str, str]:
    """The environment without settings that could change the commands run.

    Drops every ``STREAMKIT_*`` and ``OPENAI_*`` variable and points the
    config at a file in ``tmp`` that does not exist; with ``db``, also sets
    ``STREAMKIT_DB`` to it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMKIT_", "OPENAI_"))}
    env["STREAMKIT_CONFIG"] = str(tmp / "absent.toml")
    if db is not None:
        env["STREAMKIT_DB"] = str(db)
    return env


def precompile() -> None:
    """Write streamkit's bytecode, as installing a package does.

    A child's start-up would otherwise include compiling every streamkit
    module (0.1 s) when ``PYTHONDONTWRITEBYTECODE`` is set, as on some CI
    machines, which an installed copy never pays: pip writes the bytecode of
    what it installs (its dependencies have theirs already), but not of a
    source tree installed in editable mode.
    """
    import compileall

    compileall.compile_dir(ROOT / "streamkit", quiet=2)


def start_server(
    env: dict[str, str], *, script: str = "fault_server.py", cpu: int | None = None
) -> tuple[subprocess.Popen[str], int]:
    """Start ``tests/<script>`` on a free port; the process and its port.

    ``script`` is the fault server by default, or ``timed_server.py``, whose
    chunks carry the server's own times; ``cpu`` pins it to that core with
    ``taskset``, so that a client pinned to another core has its own.
    """
    pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
    server = subprocess.Popen(
        [*pin, PYTHON, str(ROOT / "tests" / script)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    assert server.stdout is not None
    line = server.stdout.readline()
    if not line.startswith("PORT "):
        server.kill()
        raise RuntimeError(f"{script} did not start: {line!r}")
    return server, int(line.split()[1])


def fresh_key() -> str:
    """A new scenario key, so that no run shares the fault server's state with another."""
    return uuid.uuid4().hex[:12]


def write_input(path: Path, lines: int) -> None:
    """A JSONL batch input of ``lines`` prompts, with ids 0 to ``lines - 1``."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            out.write(
                json.dumps({"id": i, "prompt": f"Write a haiku about the number {i}."}) + "\n"
            )
