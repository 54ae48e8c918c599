"""Batches on a real two-node Ray cluster: nothing lost, nothing twice.

One cluster (``ray_cluster.py``, in a loopback-only namespace) serves every
test of the module; the test that kills a node runs last. The keyed server
counts requests by idempotency key, so "each row once" is checked where the
work happens, not only in the output.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ray_cluster import HERE

SECRET = "sk-ray-test-secret-0123456789"


class RayCluster:
    """The harness program, one JSON command a line."""

    def __init__(self, temp: Path) -> None:
        self.process = subprocess.Popen(
            [
                "unshare",
                "--net",
                "--pid",
                "--fork",
                "--mount-proc",
                "--kill-child",
                sys.executable,
                str(HERE / "ray_cluster.py"),
                str(temp),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        hello = self.send(op="hello")
        self.base_url = f"http://127.0.0.1:{hello['port']}/v1"
        self.address = hello["address"]

    def send(self, **order: Any) -> dict[str, Any]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(order) + "\n")
        self.process.stdin.flush()
        answer = json.loads(self.process.stdout.readline())
        assert "error" not in answer, answer["error"]
        return answer

    def streamkit(
        self, *args: str, op: str = "run", log: bool = False, **extra: Any
    ) -> dict[str, Any]:
        """A streamkit command against the keyed server (``--no-log`` unless ``log``)."""
        return self.send(
            op=op,
            args=[*args, "--base-url", self.base_url, *([] if log else ["--no-log"])],
            env={"STREAMKIT_API_KEY": SECRET, "STREAMKIT_CONFIG": "/nonexistent"},
            **extra,
        )

    def server(self, **body: Any) -> dict[str, Any]:
        return self.send(op="http", path="/admin", body=body)

    def stats(self) -> dict[str, Any]:
        return self.send(op="http", path="/stats")

    def wait_for_requests(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.stats()["requests"] < count:
            assert time.monotonic() < deadline, f"the server never saw {count} requests"
            time.sleep(0.1)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        self.process.wait(timeout=60)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RayCluster]:
    running = RayCluster(tmp_path_factory.mktemp("ray"))
    try:
        yield running
    finally:
        running.close()


def write_rows(path: Path, count: int) -> Path:
    path.write_text(
        "".join(
            json.dumps({"id": k, "messages": [{"role": "user", "content": f"row {k}"}]}) + "\n"
            for k in range(1, count + 1)
        )
    )
    return path


def output_ids(path: Path) -> list[int]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def key_counts(stats: dict[str, Any]) -> dict[str, int]:
    """prompt -> how often the server was asked for it, over every key it came with."""
    counts: dict[str, int] = {}
    for count, prompt in stats["keys"].values():
        counts[prompt] = counts.get(prompt, 0) + count
    return counts


def test_a_batch_runs_in_order_each_row_once_and_the_key_stays_out_of_logs(
    cluster: RayCluster, tmp_path: Path
) -> None:
    cluster.server(reset=True, delay=0.0)
    rows = write_rows(tmp_path / "in.jsonl", 300)
    out = tmp_path / "out.jsonl"
    done = cluster.streamkit(
        "chat", "--jsonl", "-i", str(rows), "-o", str(out), "--ray", cluster.address, "-j", "8"
    )
    assert done["rc"] == 0, done["stderr"]
    assert output_ids(out) == list(range(1, 301))
    assert json.loads(out.read_text().splitlines()[41])["text"] == "re: row 42"
    stats = cluster.stats()
    assert len(stats["keys"]) == 300 and all(c == 1 for c, _ in stats["keys"].values())
    assert stats["auth"] == [f"Bearer {SECRET}"]  # the key reached every node's worker...
    assert not (tmp_path / "out.jsonl.journal").exists()  # every row written: no journal
    assert cluster.send(op="grep", needle=SECRET)["files"] == []  # ...and no Ray file


def test_unordered_writes_each_row_once_as_it_finishes(cluster: RayCluster, tmp_path: Path) -> None:
    cluster.server(reset=True, delay=0.01)
    rows = write_rows(tmp_path / "in.jsonl", 100)
    out = tmp_path / "out.jsonl"
    done = cluster.streamkit(
        "chat",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(out),
        "--ray",
        cluster.address,
        "-j",
        "6",
        "--unordered",
    )
    assert done["rc"] == 0, done["stderr"]
    assert sorted(output_ids(out)) == list(range(1, 101))


def test_the_driver_killed_mid_run_then_resume_answers_every_row_once(
    cluster: RayCluster, tmp_path: Path
) -> None:
    cluster.server(reset=True, delay=0.05)
    rows = write_rows(tmp_path / "in.jsonl", 300)
    out = tmp_path / "out.jsonl"
    args = ("chat", "--jsonl", "-i", str(rows), "-o", str(out), "--ray", cluster.address, "-j", "4")
    started = cluster.streamkit(*args, op="spawn")
    cluster.wait_for_requests(100)
    cluster.send(op="kill", pid=started["pid"])
    cluster.send(op="wait", pid=started["pid"])
    answered = {
        json.loads(line)["id"]
        for line in (out.read_text() + (tmp_path / "out.jsonl.journal").read_text()).splitlines()
    }
    assert answered, "the journal kept nothing"
    cluster.server(delay=0.0)
    done = cluster.streamkit(*args, "--resume")
    assert done["rc"] == 0, done["stderr"]
    assert sorted(output_ids(out)) == list(range(1, 301))  # the union: each id once
    asked_twice = {int(p.split()[1]) for p, n in key_counts(cluster.stats()).items() if n > 1}
    assert not asked_twice & answered  # only rows unanswered at the kill were asked again


def test_ctrl_c_ends_a_ray_batch_with_130_keeping_its_journal(
    cluster: RayCluster, tmp_path: Path
) -> None:
    cluster.server(reset=True, delay=0.05)
    rows = write_rows(tmp_path / "in.jsonl", 300)
    out = tmp_path / "out.jsonl"
    started = cluster.streamkit(
        "chat",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(out),
        "--ray",
        cluster.address,
        "-j",
        "4",
        op="spawn",
    )
    cluster.wait_for_requests(40)
    cluster.send(op="kill", pid=started["pid"], signal=2)
    done = cluster.send(op="wait", pid=started["pid"])
    assert done["rc"] == 130, done["stderr"]
    assert "Traceback" not in done["stderr"]
    assert (tmp_path / "out.jsonl.journal").read_text()  # kept for --resume


def test_a_429_seen_by_one_node_pauses_the_others(cluster: RayCluster, tmp_path: Path) -> None:
    cluster.server(reset=True, delay=0.02)
    rows = write_rows(tmp_path / "in.jsonl", 60)
    out = tmp_path / "out.jsonl"
    started = cluster.streamkit(
        "chat",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(out),
        "--ray",
        cluster.address,
        "-j",
        "4",
        op="spawn",
    )
    cluster.wait_for_requests(10)
    cluster.server(throttle=2)
    done = cluster.send(op="wait", pid=started["pid"])
    assert done["rc"] == 0, done["stderr"]
    assert output_ids(out) == list(range(1, 61))
    stats = cluster.stats()
    paused = [
        t for t in stats["times"] if stats["throttled_at"] + 0.3 < t < stats["throttled_at"] + 1.8
    ]
    assert paused == []  # no node sent a request while the pause held


def test_bench_on_the_cluster_returns_every_sample_and_names_each_node(
    cluster: RayCluster, tmp_path: Path
) -> None:
    cluster.server(reset=True, delay=0.01)
    report = tmp_path / "report.json"
    done = cluster.streamkit(
        "bench",
        "--ray",
        cluster.address,
        "-c",
        "5",
        "--requests",
        "41",
        "--json",
        str(report),
        log=True,
    )
    assert done["rc"] == 0, done["stderr"]
    run = json.loads(report.read_text())["runs"][0]
    assert run["requests_completed"] + run["requests_failed"] == 41
    assert run["requests_completed"] == cluster.stats()["requests"] == 41
    assert sorted(run["nodes"].values()) == [20, 21]  # every other request, exactly
    assert "requests by node:" in done["stdout"]


def test_score_on_ray_local_equals_one_machine(cluster: RayCluster, tmp_path: Path) -> None:
    rows = tmp_path / "pairs.jsonl"
    rows.write_text(
        "".join(
            json.dumps({"id": k, "context": f"Item {k % 3}:", "continuation": f" the number {k}."})
            + "\n"
            for k in range(12)
        )
    )
    here, there = tmp_path / "here.jsonl", tmp_path / "there.jsonl"
    args = ("score", "--jsonl", "-i", str(rows))
    done = cluster.send(op="run", args=[*args, "-o", str(here)])
    assert done["rc"] == 0, done["stderr"]
    done = cluster.send(
        op="run", args=[*args, "-o", str(there), "--ray", "local", "--ray-workers", "2"]
    )
    assert done["rc"] == 0, done["stderr"]
    assert there.read_text() == here.read_text()
    assert len(here.read_text().splitlines()) == 12


def test_a_model_file_missing_on_a_node_is_one_line_naming_it(
    cluster: RayCluster, tmp_path: Path
) -> None:
    rows = tmp_path / "pairs.jsonl"
    rows.write_text(json.dumps({"id": 1, "text": "one"}) + "\n")
    done = cluster.send(
        op="run",
        args=[
            "score",
            "--jsonl",
            "-i",
            str(rows),
            "-m",
            str(tmp_path / "absent.gguf"),
            "--ray",
            cluster.address,
        ],
    )
    assert done["rc"] == 8
    line = done["stderr"].strip().splitlines()[-1]
    assert line.startswith("streamkit: on node 127.0.0.1: ") and "absent.gguf" in line


def test_a_worker_killed_then_a_node_killed_lose_and_repeat_no_row(
    cluster: RayCluster, tmp_path: Path
) -> None:
    cluster.server(reset=True, delay=0.05)
    rows = write_rows(tmp_path / "in.jsonl", 300)
    out = tmp_path / "out.jsonl"
    started = cluster.streamkit(
        "chat",
        "--jsonl",
        "-i",
        str(rows),
        "-o",
        str(out),
        "--ray",
        cluster.address,
        "-j",
        "4",
        op="spawn",
    )
    cluster.wait_for_requests(60)
    assert cluster.send(op="kill_worker")["pids"]
    cluster.wait_for_requests(150)
    assert cluster.send(op="kill_node")["pids"]
    done = cluster.send(op="wait", pid=started["pid"])
    assert done["rc"] == 0, done["stderr"]
    assert output_ids(out) == list(range(1, 301))
    assert set(key_counts(cluster.stats())) == {f"row {k}" for k in range(1, 301)}
