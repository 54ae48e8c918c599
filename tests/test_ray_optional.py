"""Ray is optional: never imported off the ``--ray`` path, one clear line without it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).parent
# Runs the CLI in this interpreter, then says whether ``ray`` was imported. With
# ``hide``, ``import ray`` fails, as it does without the extra.
PROBE = """
import runpy, sys
if {hide}:
    sys.modules["ray"] = None
sys.argv = ["streamkit", *{args!r}]
try:
    runpy.run_module("streamkit", run_name="__main__")
except SystemExit as end:
    code = end.code
print("RAY-IMPORTED" if sys.modules.get("ray") else "NO-RAY", code, file=sys.stderr)
"""


@pytest.fixture(scope="module")
def base_url() -> Iterator[str]:
    server = subprocess.Popen(
        [sys.executable, str(HERE / "keyed_server.py")], stdout=subprocess.PIPE, text=True
    )
    assert server.stdout is not None
    port = int(server.stdout.readline().split()[1])
    try:
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        server.kill()
        server.wait()


def probe(tmp_path: Path, *args: str, hide: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", PROBE.format(hide=hide, args=list(args))],
        capture_output=True,
        text=True,
        timeout=120,
        env={
            "PATH": "/usr/bin:/bin",
            "HOME": str(tmp_path),
            "STREAMKIT_CONFIG": "/nonexistent",
            "PYTHONPATH": str(HERE.parent),
        },
    )


def test_a_batch_without_ray_never_imports_it(base_url: str, tmp_path: Path) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"id": 1, "prompt": "one"}) + "\n")
    done = probe(
        tmp_path,
        "complete",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(tmp_path / "out.jsonl"),
        "--base-url",
        base_url,
        "--no-log",
    )
    assert done.stderr.strip().splitlines()[-1] == "NO-RAY 0"
    assert json.loads((tmp_path / "out.jsonl").read_text())["text"] == "re: one"


def test_ray_without_the_extra_is_one_line_and_exit_2(base_url: str, tmp_path: Path) -> None:
    rows = tmp_path / "in.jsonl"
    rows.write_text(json.dumps({"id": 1, "prompt": "one"}) + "\n")
    out = tmp_path / "out.jsonl"
    out.write_text("kept\n")
    done = probe(
        tmp_path,
        "complete",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(out),
        "--base-url",
        base_url,
        "--ray",
        "auto",
        hide=True,
    )
    lines = done.stderr.strip().splitlines()
    assert lines == ["streamkit: --ray needs Ray: pip install 'streamkit[ray]'", "NO-RAY 2"]
    assert out.read_text() == "kept\n"  # refused before the output was touched


def test_ray_on_one_reply_is_refused(tmp_path: Path) -> None:
    done = probe(
        tmp_path,
        "chat",
        "hello",
        "--ray",
        "local",
        "--base-url",
        "http://127.0.0.1:9/v1",
        hide=True,
    )
    assert done.stderr.strip().splitlines() == [
        "streamkit: --ray is for --jsonl batches (and bench); one reply runs here",
        "NO-RAY 2",
    ]
