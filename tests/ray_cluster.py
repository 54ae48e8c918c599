"""A real two-node Ray cluster and the keyed server, in a namespace of their own.

Ray rewrites 127.0.0.1 to the host's own address, so the cluster only stays
on loopback in a network namespace that has nothing else. ``RayCluster``
(for the tests) starts this file as a program under ``unshare --net --pid
--fork --mount-proc`` (root): it brings ``lo`` up, starts ``keyed_server``,
``ray start --head`` and a second ``ray start --address`` (marked
``STREAMKIT_TEST_NODE=2`` in its environment, which its processes inherit),
then takes one JSON command a line on stdin and answers one JSON line:

- ``run`` / ``spawn`` + ``wait`` / ``kill``: a streamkit command in the namespace;
- ``kill_worker`` / ``kill_node``: SIGKILL the ``NodeWorker`` actor of the head
  node, or every process of the second node;
- ``http``: a request to the keyed server; ``grep``: Ray's session files holding
  a string.

Being PID 1 of its own PID namespace, this program takes every process it
started with it when it ends (stdin closed), and touches no other.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
RAY = str(Path(sys.executable).with_name("ray"))
HEAD_PORT = 6390
NODE_OPTIONS = ["--num-cpus=1", "--object-store-memory=80000000", "--disable-usage-stats"]
# Quick health checks, so a killed node is known dead in seconds, not half a minute.
SYSTEM_CONFIG = json.dumps(
    {
        "health_check_period_ms": 500,
        "health_check_timeout_ms": 500,
        "health_check_failure_threshold": 4,
    }
)


def processes() -> dict[int, tuple[str, str]]:
    """pid -> (command line, environment) of every process of the namespace."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and int(entry.name) != os.getpid():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                env = (entry / "environ").read_bytes().decode(errors="replace")
            except OSError:
                continue
            found[int(entry.name)] = (cmd, env)
    return found


def second_node(env: str) -> bool:
    return "STREAMKIT_TEST_NODE=2" in env.split("\0")


class Harness:
    def __init__(self, temp: Path) -> None:
        self.temp = temp
        # Ray's token auth: every process of the cluster, the driver included, holds the
        # same token; HOME and RAY_TMPDIR (where ``--ray local`` keeps its session) are the
        # temp dir, so that nothing lands in the real ones.
        self.env = {
            **os.environ,
            "RAY_USAGE_STATS_ENABLED": "0",
            "HOME": str(temp),
            "RAY_TMPDIR": str(temp),
            "RAY_AUTH_MODE": "token",
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "PYTHONPATH": f"{HERE.parent}{os.pathsep}{HERE}",
        }
        self.spawned: dict[int, subprocess.Popen] = {}
        server = subprocess.Popen(
            [sys.executable, str(HERE / "keyed_server.py")],
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )
        assert server.stdout is not None
        self.port = int(server.stdout.readline().split()[1])
        self.start_node(head=True)
        self.start_node(head=False)

    def start_node(self, *, head: bool) -> None:
        if head:
            args = [
                "--head",
                f"--port={HEAD_PORT}",
                "--include-dashboard=false",
                f"--temp-dir={self.temp}",
                f"--system-config={SYSTEM_CONFIG}",
            ]
            env = self.env
        else:
            args = [f"--address=127.0.0.1:{HEAD_PORT}"]
            env = {**self.env, "STREAMKIT_TEST_NODE": "2"}
        subprocess.run(
            [RAY, "start", *args, *NODE_OPTIONS],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def command(self, order: dict[str, Any]) -> dict[str, Any]:
        op = order["op"]
        if op == "hello":
            return {"port": self.port, "address": f"127.0.0.1:{HEAD_PORT}"}
        if op in ("run", "spawn"):
            process = subprocess.Popen(
                [sys.executable, "-m", "streamkit", *order["args"]],
                env={**self.env, **order.get("env", {})},
                cwd=order.get("cwd"),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            self.spawned[process.pid] = process
            if op == "spawn":
                return {"pid": process.pid}
            order = {"pid": process.pid, "timeout": order.get("timeout", 240)}
            op = "wait"
        if op == "wait":
            process = self.spawned.pop(order["pid"])
            out, err = process.communicate(timeout=order.get("timeout", 240))
            return {"rc": process.returncode, "stdout": out.decode(), "stderr": err.decode()}
        if op == "kill":
            self.spawned[order["pid"]].send_signal(order.get("signal", signal.SIGKILL))
            return {}
        if op == "kill_worker":
            pids = [
                pid
                for pid, (cmd, env) in processes().items()
                if cmd.startswith("ray::NodeWorker") and not second_node(env)
            ]
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return {"pids": pids}
        if op == "kill_node":
            pids = [pid for pid, (_, env) in processes().items() if second_node(env)]
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            return {"pids": pids}
        if op == "http":
            data = json.dumps(order["body"]).encode() if "body" in order else None
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.port}{order['path']}", data=data, timeout=10
            ) as answer:
                return json.loads(answer.read())
        if op == "grep":
            needle = order["needle"].encode()
            return {
                "files": [
                    str(p)
                    for p in self.temp.rglob("*")
                    if p.is_file() and not p.is_socket() and needle in p.read_bytes()
                ]
            }
        raise ValueError(op)

    def stop(self) -> None:
        """SIGTERM to everything in the namespace, then SIGKILL what is left."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in processes():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            if sig == signal.SIGTERM:
                time.sleep(2)  # Ray's processes end on their own, given the moment


def main() -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    harness = Harness(Path(sys.argv[1]))
    try:
        for line in sys.stdin:
            try:
                answer = harness.command(json.loads(line))
            except Exception as exc:  # the test sees it as an answer, not a hang
                answer = {"error": f"{type(exc).__name__}: {exc}"}
            print(json.dumps(answer), flush=True)
    finally:
        harness.stop()


if __name__ == "__main__":
    main()
