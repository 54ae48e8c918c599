"""``streamkit bench`` as a real subprocess: against the timed server over real
sockets, and against the real llama.cpp server."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from streamkit.loadtest.plots import FILES

from conftest import serve_script

STAT_KEYS = {"mean", "stdev", "p50", "p90", "p95", "p99", "max"}
RUN_KEYS = {
    "mode",
    "concurrency",
    "rate",
    "requests_completed",
    "requests_failed",
    "errors",
    "duration_s",
    "request_throughput",
    "output_token_throughput",
    "total_token_throughput",
    "goodput",
    "ttft_ms",
    "itl_ms",
    "tpot_ms",
    "e2e_ms",
    "schedule_lag_ms",
    "output_tokens_source",
    "partial",
}
PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def timed_root() -> Iterator[str]:
    yield from serve_script("timed_server.py")


@pytest.fixture
def timed_url(timed_root):
    def make(plan: str) -> str:
        return f"{timed_root}/{plan}/{uuid.uuid4().hex}/v1"

    return make


def check_report(path: Path, runs: int) -> dict:
    report = json.loads(path.read_text())
    assert {"streamkit_version", "base_url", "model", "endpoint", "started_at", "runs"} <= set(
        report
    )
    assert report["timing_source"] in ("kernel", "clock")
    assert len(report["runs"]) == runs
    for run in report["runs"]:
        assert set(run) >= RUN_KEYS
        for metric in ("ttft_ms", "itl_ms", "tpot_ms", "e2e_ms"):
            if run["requests_completed"]:
                assert set(run[metric]) == STAT_KEYS
    return report


def test_bench_reports_against_the_timed_server(run_cli, timed_url, tmp_path):
    plan = "ttft=0.2,itl=0.03,tokens=6"
    result = run_cli(
        "bench",
        "--base-url",
        timed_url(plan),
        "--api-key",
        "sk-SECRET-123",
        "-c",
        "1",
        "-c",
        "3",
        "--requests",
        "6",
        "--slo",
        "ttft=1s,e2e=5s",
        "--json",
        str(tmp_path / "r.json"),
        "--csv",
        str(tmp_path / "r.csv"),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert result.code == 0, result.stderr
    report = check_report(tmp_path / "r.json", runs=2)
    for run in report["runs"]:
        assert run["requests_completed"] == 6 and run["errors"] == {}
        assert run["good_requests"] == 6
        assert run["output_tokens_source"] == "usage"
        # real sockets on a shared machine: never below the truth, and not far above
        assert 200 <= run["ttft_ms"]["p50"] < 300
        assert 30 - 15 <= run["itl_ms"]["p50"] < 30 + 15
        assert 30 - 15 <= run["tpot_ms"]["p50"] < 30 + 15
        assert 200 + 5 * 30 <= run["e2e_ms"]["p50"] < 200 + 5 * 30 + 150
    assert [run["concurrency"] for run in report["runs"]] == [1, 3]
    rows = list(csv.DictReader((tmp_path / "r.csv").open()))
    assert len(rows) == 12 and {row["run"] for row in rows} == {"1", "2"}
    assert all(row["output_tokens"] == "6" and not row["error"] for row in rows)
    for name in FILES:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG)
    assert "concurrency" in result.stdout and "TTFT p50" in result.stdout
    assert result.stderr == ""  # not a terminal: no live view
    everything = (
        result.stdout
        + result.stderr
        + "".join(p.read_text() for p in (tmp_path / "r.json", tmp_path / "r.csv"))
    )
    assert "SECRET" not in everything


def test_sweep_runs_sync_throughput_and_the_rates_between(run_cli, timed_url, tmp_path):
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.05,itl=0.01,tokens=4"),
        "--sweep",
        "--sweep-steps",
        "3",
        "-c",
        "4",
        "--requests",
        "8",
        "--json",
        str(tmp_path / "s.json"),
    )
    assert result.code == 0, result.stderr
    report = check_report(tmp_path / "s.json", runs=5)
    modes = [run["mode"] for run in report["runs"]]
    assert modes == ["sweep-sync", "sweep-throughput"] + ["sweep-rate"] * 3
    low, high = (report["runs"][i]["request_throughput"] for i in (0, 1))
    rates = [run["rate"] for run in report["runs"][2:]]
    assert low < rates[0] < rates[1] < rates[2] < high
    assert all(run["schedule_lag_ms"] is not None for run in report["runs"][2:])


def test_workers_split_the_run_and_merge_every_sample(run_cli, timed_url, tmp_path):
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.05,itl=0.01,tokens=4"),
        "--workers",
        "2",
        "-c",
        "4",
        "-r",
        "20",
        "--requests",
        "10",
        "--csv",
        str(tmp_path / "w.csv"),
        "--json",
        str(tmp_path / "w.json"),
    )
    assert result.code == 0, result.stderr
    report = check_report(tmp_path / "w.json", runs=2)
    assert report["workers"] == 2
    # no warm-up: each worker's 2 loops of the closed-loop run connect, at least
    assert report["connections_opened"] >= 4
    if sys.platform == "linux":  # a plain http:// server, Trio's own clock
        assert report["timing_source"] == "kernel"
    rows = list(csv.DictReader((tmp_path / "w.csv").open()))
    for run in ("1", "2"):
        mine = [row for row in rows if row["run"] == run]
        assert sorted(int(row["index"]) for row in mine) == list(range(10))
        assert {row["worker"] for row in mine} == {"0", "1"}


def test_failures_by_type_and_a_server_failing_everything(run_cli, timed_url, tmp_path):
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.01,itl=0.01,tokens=3,fail=2:503"),
        "--requests",
        "6",
        "--json",
        str(tmp_path / "f.json"),
    )
    assert result.code == 0, result.stderr
    run = check_report(tmp_path / "f.json", runs=1)["runs"][0]
    assert run["errors"] == {"http_503": 3} and run["requests_completed"] == 3
    assert "http_503 ×3" in result.stdout

    result = run_cli(
        "bench",
        "--base-url",
        timed_url("fail=1:500"),
        "-c",
        "2",
        "-c",
        "4",
        "--requests",
        "1000",
        "--json",
        str(tmp_path / "all.json"),
    )
    assert result.code == 4
    assert "bench stopped: the first" in result.stderr and "http_500" in result.stderr
    runs = check_report(tmp_path / "all.json", runs=1)["runs"]  # the second run never started
    assert runs[0]["requests_failed"] < 20 and runs[0]["stopped"]


def test_ctrl_c_keeps_what_was_measured(cli_env, timed_url, tmp_path):
    out = tmp_path / "partial.json"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "streamkit",
            "bench",
            "--base-url",
            timed_url("ttft=0.05,itl=0.05,tokens=4"),
            "-c",
            "2",
            "--requests",
            "10000",
            "--json",
            str(out),
        ],
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    report = json.loads(out.read_text())
    assert report["partial"] is True and report["runs"][0]["partial"] is True
    assert 0 < report["runs"][0]["requests_completed"] < 10000
    assert "partial" in stdout


def test_compare_prints_relative_changes(run_cli, tmp_path):
    def report(ttft: float, rps: float) -> Path:
        path = tmp_path / f"{ttft}.json"
        stats = dict.fromkeys(STAT_KEYS, ttft)
        path.write_text(
            json.dumps(
                {
                    "runs": [
                        {
                            "mode": "concurrency",
                            "concurrency": 4,
                            "rate": None,
                            "request_throughput": rps,
                            "ttft_ms": stats,
                        }
                    ]
                }
            )
        )
        return path

    result = run_cli("bench", "compare", str(report(100.0, 10.0)), str(report(150.0, 8.0)))
    assert result.code == 0, result.stderr
    ttft = next(line for line in result.stdout.splitlines() if line.startswith("TTFT p50"))
    assert "+50.0%" in ttft
    rps = next(line for line in result.stdout.splitlines() if line.startswith("req/s"))
    assert "-20.0%" in rps
    (tmp_path / "bad.json").write_text("[1, 2]")
    bad = run_cli("bench", "compare", str(report(1.0, 1.0)), str(tmp_path / "bad.json"))
    assert bad.code == 2 and "not a `streamkit bench --json` report" in bad.stderr


def test_bad_options_are_one_line_usage_errors(run_cli, timed_url):
    cases = [
        (["--slo", "ttft=soon"], "--slo"),
        (["--sweep", "--rate", "2"], "--sweep chooses its own rates"),
        (["--requests", "3", "--duration", "2"], "not both"),
        (["--endpoint", "embeddings"], "--endpoint"),
        (["--dataset", "/nonexistent.jsonl"], "cannot read dataset"),
    ]
    for args, message in cases:
        result = run_cli("bench", "--base-url", timed_url("tokens=2"), *args)
        assert result.code == 2, (args, result.stderr)
        assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("command", [["bench"], ["bench", "compare"]], ids=" ".join)
def test_bench_help_has_examples(run_cli, command):
    result = run_cli(*command, "--help")
    assert result.code == 0
    assert "streamkit bench" in result.stdout.split("Example", 1)[1]


@pytest.mark.server
def test_real_server_short_runs_give_a_complete_report_and_plots(run_cli, llama_server, tmp_path):
    result = run_cli(
        "bench",
        "--base-url",
        llama_server,
        "--model",
        "smollm2",
        "-c",
        "1",
        "-c",
        "2",
        "--requests",
        "4",
        "--prompt-tokens",
        "16",
        "--output-tokens",
        "8",
        "--json",
        str(tmp_path / "real.json"),
        "--plots",
        str(tmp_path / "plots"),
        timeout=300,
    )
    assert result.code == 0, result.stderr
    report = check_report(tmp_path / "real.json", runs=2)
    for run in report["runs"]:
        assert run["requests_completed"] == 4 and run["requests_failed"] == 0
        assert run["ttft_ms"]["p50"] > 0 and run["itl_ms"]["p50"] > 0
        # llama_cpp.server streams carry no usage; without --tokenizer chunks are counted
        assert run["output_tokens_source"] == "chunks"
        assert run["output_tokens"] == 4 * 8  # min_tokens forced the length
    assert report["prompt_tokens_approximate"] is True
    for name in FILES:
        assert (tmp_path / "plots" / name).read_bytes().startswith(PNG)


def test_local_model_without_a_base_url(run_cli, tmp_path):
    result = run_cli(
        "bench",
        "--requests",
        "2",
        "--prompt-tokens",
        "8",
        "--output-tokens",
        "4",
        "--json",
        str(tmp_path / "local.json"),
        timeout=300,
    )
    assert result.code == 0, result.stderr
    assert result.stderr == ""  # not a terminal: no live view, no llama.cpp noise
    report = check_report(tmp_path / "local.json", runs=1)
    assert (report["base_url"], report["model"]) == ("local", "smollm2")
    assert report["prompt_tokens_approximate"] is False  # the local GGUF's tokenizer
    run = report["runs"][0]
    assert run["requests_completed"] == 2 and run["output_tokens_source"] == "usage"
    assert 0 < run["output_tokens"] <= 8


def test_plots_without_matplotlib_is_one_line_before_any_run(run_cli, timed_url, tmp_path):
    """matplotlib is an extra: without it, --plots says how to install it (exit 2)."""
    blocker = tmp_path / "no-matplotlib" / "matplotlib"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('No module named matplotlib')\n")
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.01,itl=0.01,tokens=2"),
        "--requests",
        "2",
        "--plots",
        str(tmp_path / "plots"),
        env={"PYTHONPATH": f"{blocker.parent}:{os.environ.get('PYTHONPATH', '')}"},
    )
    assert result.code == 2
    assert result.stderr.splitlines() == [
        "streamkit: --plots needs matplotlib: pip install 'streamkit[plots]'"
    ]
    assert result.stdout == "" and not (tmp_path / "plots").exists()
