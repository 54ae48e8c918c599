"""Ctrl-C and SIGTERM while streaming, through the real CLI in a subprocess."""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import time

import pytest


def start_streaming(args: list[str], env: dict[str, str]) -> tuple[subprocess.Popen, bytes]:
    """Start ``streamkit ARGS`` and return once it has printed some output."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamkit", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    os.set_blocking(proc.stdout.fileno(), False)
    received = b""
    deadline = time.monotonic() + 60
    with selectors.DefaultSelector() as selector:
        selector.register(proc.stdout, selectors.EVENT_READ)
        while len(received) < 20:
            assert time.monotonic() < deadline, "no output before the deadline"
            assert proc.poll() is None, proc.stderr.read().decode()
            if selector.select(timeout=1):
                received += proc.stdout.read() or b""
    os.set_blocking(proc.stdout.fileno(), True)
    return proc, received


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_stream_keeps_partial_text(fault_url, cli_env, signum, code):
    proc, received = start_streaming(["chat", "hi", "--base-url", fault_url("slow")], cli_env)
    proc.send_signal(signum)
    rest, stderr = proc.communicate(timeout=10)
    assert proc.returncode == code
    output = (received + rest).decode()
    assert output.startswith("t0 t1 ")
    assert output.endswith("\n")
    # Every token received was printed whole: the text is a prefix of the stream.
    tokens = output.split()
    assert tokens == [f"t{i}" for i in range(len(tokens))]
    assert b"Traceback" not in stderr
    assert stderr == b""


def test_sigint_in_events_mode_ends_with_cancelled_finish(fault_url, cli_env):
    import json

    proc, received = start_streaming(
        ["complete", "x", "--events", "--base-url", fault_url("slow")], cli_env
    )
    proc.send_signal(signal.SIGINT)
    rest, stderr = proc.communicate(timeout=10)
    assert proc.returncode == 130
    records = [json.loads(line) for line in (received + rest).decode().splitlines()]
    assert records[-1] == {"type": "finish", "reason": "cancelled", "choice": 0}
    assert all(r["type"] == "delta" for r in records[:-1])
    assert b"Traceback" not in stderr
