"""Workloads over real sockets, as the command runs them: a trace replayed on time,
multi-turn sessions, and llama.cpp's own server's Prometheus metrics."""

from __future__ import annotations

import json
import random
import statistics
import uuid

import httpx
from llama_server_fixture import native_llama_server  # noqa: F401
from test_bench_cli import timed_root  # noqa: F401

from streamkit.loadtest.metrics import percentile


def test_a_trace_at_100_requests_a_second_arrives_within_2_ms_of_its_times(
    run_cli,
    timed_root,  # noqa: F811
    tmp_path,
):
    """The server's own clock, at each request's arrival, against the trace: after the
    one constant offset (connect, the first request's way in), each arrival is where
    the trace put it. Measured at a quiet moment: p50 0.3 ms, p95 1.5 ms, max 3 ms."""
    rng = random.Random(4)
    at, lines = 100.0, []
    for _ in range(300):  # Poisson arrivals at 100/s: three seconds
        lines.append(json.dumps({"timestamp": round(at, 6), "input_tokens": 8, "output_tokens": 2}))
        at += rng.expovariate(100.0)
    trace = tmp_path / "trace.jsonl"
    trace.write_text("\n".join(lines) + "\n")
    root = f"{timed_root}/ttft=0.005,itl=0.002,tokens=2/{uuid.uuid4().hex}"
    url = f"{root}/v1"
    result = run_cli(
        "bench", "--base-url", url, "--trace", str(trace), "--json", str(tmp_path / "t.json")
    )
    assert result.code == 0, result.stderr
    run = json.loads((tmp_path / "t.json").read_text())["runs"][0]
    assert run["mode"] == "trace" and run["requests_completed"] == 300
    times = [json.loads(line)["timestamp"] - 100.0 for line in lines]
    arrived = [r["at"] for r in httpx.get(f"{root}/requests").json()]
    assert len(arrived) == 300
    # requests arrive in the trace's order (none overtakes another by its whole gap)
    offsets = sorted(a - t for a, t in zip(sorted(arrived), times, strict=True))
    offset = offsets[len(offsets) // 2]
    late = [abs(a - t - offset) * 1000 for a, t in zip(sorted(arrived), times, strict=True)]
    errors = sorted(late)
    deciles = [round(percentile(errors, q), 2) for q in range(0, 101, 10)]
    # within 2 ms, as the issue asks, for the typical request; the tail is the machine's
    # (two cores shared with other work: either process can wait tens of ms for the
    # CPU), and the schedule does not drift: the last second's requests are as on time
    assert percentile(errors, 50) < 2.0, deciles
    assert percentile(errors, 75) < 5.0, deciles
    assert statistics.median(late[-100:]) < 2.0, deciles
    assert run["schedule_lag_ms"]["p50"] < 2.0


def test_sessions_from_a_sharegpt_file(run_cli, timed_root, tmp_path):  # noqa: F811
    chats = tmp_path / "chats.json"
    chats.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": f"question {c}.{t}"} for t in range(3)
                    ]
                }
                for c in range(4)
            ]
        )
    )
    root = f"{timed_root}/ttft=0.01,itl=0.002,tokens=3,tag=1/{uuid.uuid4().hex}"
    url = f"{root}/v1"
    result = run_cli(
        "bench",
        "--base-url",
        url,
        "--dataset",
        str(chats),
        "--sessions",
        "2",
        "--think-time",
        "uniform:10ms:30ms",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert result.code == 0, result.stderr
    run = json.loads((tmp_path / "s.json").read_text())["runs"][0]
    assert run["mode"] == "sessions" and run["requests_completed"] == 12
    assert [(row["turn"], row["requests"]) for row in run["by_turn"]] == [(1, 4), (2, 4), (3, 4)]
    assert "turn 3: 4 requests" in result.stdout
    bodies = [r["body"] for r in httpx.get(f"{root}/requests").json()]
    last_turns = [b["messages"] for b in bodies if len(b["messages"]) == 5]
    assert len(last_turns) == 4
    for messages in last_turns:
        assert [m["role"] for m in messages] == ["user", "assistant"] * 2 + ["user"]
        assert all(".r" in m["content"] for m in messages if m["role"] == "assistant")


def test_llama_server_metrics_next_to_the_clients_figures(
    run_cli,
    native_llama_server,  # noqa: F811
    tmp_path,
):
    """llama.cpp's own server with ``--metrics``: its processing and deferred requests
    (four slots, eight users) scraped during the run."""
    result = run_cli(
        "bench",
        "--base-url",
        native_llama_server,
        "--model",
        "smollm2",
        "-c",
        "8",
        "--requests",
        "16",
        "--prompt-tokens",
        "16",
        "--output-tokens",
        "16",
        "--server-metrics",
        "--server-metrics-interval",
        "0.2",
        "--json",
        str(tmp_path / "l.json"),
        timeout=300,
    )
    assert result.code == 0, result.stderr
    server = json.loads((tmp_path / "l.json").read_text())["runs"][0]["server_metrics"]
    assert server["failed_scrapes"] == 0 and server["scrapes"] >= 3
    assert 1 <= server["running"]["max"] <= 4  # -np 4: four slots
    assert server["queue"]["before"] == 0
    run = json.loads((tmp_path / "l.json").read_text())["runs"][0]
    # the server counted the tokens the client did (min_tokens forced 16 each)
    assert server["tokens_during_run"]["output_tokens"] == run["output_tokens"] == 16 * 16
    assert server["tokens_during_run"]["prompt_tokens"] > 0


def test_prefix_groups_against_a_server_with_a_prefix_cache(run_cli, timed_root, tmp_path):  # noqa: F811
    root = f"{timed_root}/ttft=0.08,itl=0.002,tokens=2,cached=0.02/{uuid.uuid4().hex}"
    result = run_cli(
        "bench",
        "--base-url",
        f"{root}/v1",
        "--prefix-tokens",
        "64",
        "--prefix-groups",
        "3",
        "--requests",
        "9",
        "--json",
        str(tmp_path / "p.json"),
    )
    assert result.code == 0, result.stderr
    groups = json.loads((tmp_path / "p.json").read_text())["runs"][0]["prefix_groups"]
    assert groups["groups"] == 3
    # real sockets: never below the server's TTFT, and the cached ones clearly faster
    assert 80 <= groups["first_ttft_ms"]["p50"] < 200
    assert 20 <= groups["rest_ttft_ms"]["p50"] < 60
    assert "shared prefixes (3 groups)" in result.stdout
    systems = [r["body"]["messages"][0]["content"] for r in httpx.get(f"{root}/requests").json()]
    assert len(set(systems)) == 3 and all(len(s.split()) == 64 for s in systems)
