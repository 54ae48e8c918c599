"""Numbers a team can act on: the ``compare --fail-on`` gate, ``--repeat`` intervals,
server metrics from the exposition format, the HTML page, and options that cannot
go together -- pure parts fed directly, then the command as a subprocess."""

from __future__ import annotations

import base64
import json
import re
import statistics
import uuid
from pathlib import Path

import pytest
from test_bench_cli import PNG, timed_root, timed_url  # noqa: F401

from streamkit.errors import UsageError
from streamkit.loadtest.repeats import combine, mean_interval, t_quantile
from streamkit.loadtest.server_metrics import histogram_quantile, parse_scrape, run_summary
from streamkit.loadtest.verdict import judge, parse_fail_on


def run_record(ttft_p99: float, rps: float, ci: dict | None = None) -> dict:
    record = {
        "mode": "concurrency",
        "concurrency": 4,
        "rate": None,
        "request_throughput": rps,
        "ttft_ms": {"p50": ttft_p99 / 2, "p99": ttft_p99},
    }
    if ci is not None:
        record["repeat"] = {"count": 5, "ci95": ci, "runs": []}
    return record


def test_fail_on_reads_bounds_and_says_what_is_wrong():
    ttft, rps = parse_fail_on("ttft.p99>+10%, throughput<-5%")
    assert (ttft.field, ttft.stat, ttft.above, ttft.limit, ttft.relative) == (
        "ttft_ms",
        "p99",
        True,
        10.0,
        True,
    )
    assert (rps.field, rps.stat, rps.above, rps.limit) == ("request_throughput", None, False, -5.0)
    [absolute] = parse_fail_on("e2e_ms.p50>20")
    assert absolute.key == "e2e_ms.p50" and not absolute.relative
    for bad, said in (
        ("ttft>10%", "needs a statistic"),
        ("speed<-5%", "unknown figure"),
        ("throughput.p99<-5%", "one number"),
        ("ttft.p99=10%", "cannot read"),
    ):
        with pytest.raises(UsageError, match=said):
            parse_fail_on(bad)


def test_a_bound_is_broken_exactly_past_its_limit():
    bounds = parse_fail_on("ttft.p99>+10%,throughput<-5%")
    base = [run_record(100.0, 10.0)]
    assert not any(f.broken for f in judge(bounds, base, [run_record(110.0, 9.5)]))
    findings = judge(bounds, base, [run_record(110.5, 9.49)])
    assert [f.broken for f in findings] == [True, True]
    assert findings[0].change == pytest.approx(10.5)
    with pytest.raises(UsageError, match="no run of both reports has"):
        judge(parse_fail_on("goodput<-5%"), base, base)


def test_inside_the_confidence_interval_is_not_a_regression():
    bounds = parse_fail_on("ttft.p99>+10%")
    base = [run_record(100.0, 10.0, {"ttft_ms.p99": [90.0, 115.0]})]
    noisy = [run_record(125.0, 10.0, {"ttft_ms.p99": [112.0, 138.0]})]
    [finding] = judge(bounds, base, noisy)
    assert not finding.broken and finding.within_noise
    clear = [run_record(125.0, 10.0, {"ttft_ms.p99": [120.0, 130.0]})]
    assert judge(bounds, base, clear)[0].broken
    assert judge(bounds, [run_record(100.0, 10.0)], clear)[0].broken  # a point outside


def test_repeats_give_means_and_student_intervals():
    assert t_quantile(4) == 2.776 and t_quantile(200) == pytest.approx(1.972, abs=0.001)
    values = [10.0, 12.0, 11.0, 13.0, 9.0]
    mean, low, high = mean_interval(values)
    half = 2.776 * statistics.stdev(values) / 5**0.5
    assert (mean, low, high) == pytest.approx((11.0, 11.0 - half, 11.0 + half))
    records = [
        {**run_record(v * 10, v), "errors": {"timeout": 1}, "partial": False} for v in values
    ]
    combined = combine(records)
    assert combined["request_throughput"] == 11.0 and combined["ttft_ms"]["p99"] == 110.0
    assert combined["errors"] == {"timeout": 5}
    assert combined["repeat"]["count"] == 5 and combined["repeat"]["runs"] == records
    low, high = combined["repeat"]["ci95"]["ttft_ms.p99"]
    assert (low, high) == pytest.approx((110 - 10 * half, 110 + 10 * half), abs=1e-3)


def breakdowns(v: float, turns: int) -> dict:
    """A run record's breakdowns, every figure a multiple of ``v``."""
    stats = {"p50": v, "p99": 2 * v}
    return {
        "by_turn": [
            {"turn": t, "requests": 3, "prompt_tokens_mean": 10.0 * t, "ttft_ms": stats}
            for t in range(1, turns + 1)
        ],
        "prefix_groups": {"groups": 2, "first_ttft_ms": stats, "rest_ttft_ms": None},
        "server_metrics": {
            "url": "http://s/metrics",
            "interval_s": 1.0,
            "series": {"queue": [[0.0, v]]},
            "queue": {"before": None, "max": 3 * v, "mean": v, "after": 0},
            "server_ttft_ms": stats,
        },
    }


def test_repeats_combine_the_breakdowns_as_the_figures():
    values = [10.0, 12.0, 11.0]
    records = [{**run_record(v * 10, v), **breakdowns(v, 3 if v == 12.0 else 2)} for v in values]
    half = t_quantile(2) * statistics.stdev(values) / 3**0.5
    combined = combine(records)
    ci = combined["repeat"]["ci95"]
    # by turn: the turns every repeat reached, each row's figures the repeats' means
    rows = combined["by_turn"]
    assert [row["turn"] for row in rows] == [1, 2]  # turn 3: one repeat only
    assert rows[1]["prompt_tokens_mean"] == 20.0 and rows[1]["requests"] == 3
    assert rows[0]["ttft_ms"] == {"p50": 11.0, "p99": 22.0}
    assert ci["by_turn.2.ttft_ms.p99"] == pytest.approx([22 - 2 * half, 22 + 2 * half], abs=1e-3)
    groups = combined["prefix_groups"]
    assert groups == {
        "groups": 2,
        "first_ttft_ms": {"p50": 11.0, "p99": 22.0},
        "rest_ttft_ms": None,
    }
    assert ci["prefix_groups.first_ttft_ms.p50"] == pytest.approx([11 - half, 11 + half], abs=1e-3)
    server = combined["server_metrics"]
    assert server["url"] == "http://s/metrics" and server["interval_s"] == 1.0
    assert server["queue"] == {"before": None, "max": 33.0, "mean": 11.0, "after": 0.0}
    assert server["server_ttft_ms"]["p99"] == 22.0
    assert ci["server_metrics.queue.max"] == pytest.approx([33 - 3 * half, 33 + 3 * half], abs=1e-3)
    assert server["series"] == {"queue": [[0.0, 10.0]]}  # a series is the first repeat's
    assert "server_metrics.interval_s" not in ci and "by_turn.1.turn" not in ci
    # each repeat's own breakdowns stay with it
    assert [len(r["by_turn"]) for r in combined["repeat"]["runs"]] == [2, 3, 2]
    assert combined["repeat"]["runs"][1]["server_metrics"]["queue"]["max"] == 36.0


VLLM = """# TYPE vllm:num_requests_running gauge
vllm:num_requests_running{model_name="a"} 3
vllm:num_requests_running{model_name="b"} 1
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{model_name="a"} 7
# TYPE vllm:kv_cache_usage_perc gauge
vllm:kv_cache_usage_perc{model_name="a"} 0.5
# TYPE vllm:time_to_first_token_seconds histogram
vllm:time_to_first_token_seconds_bucket{le="0.1",model_name="a"} %d
vllm:time_to_first_token_seconds_bucket{le="0.2",model_name="a"} %d
vllm:time_to_first_token_seconds_bucket{le="+Inf",model_name="a"} %d
vllm:time_to_first_token_seconds_count{model_name="a"} %d
vllm:time_to_first_token_seconds_sum{model_name="a"} 1.0
"""
LLAMA_CPP = """# HELP llamacpp:requests_processing Number of requests processing.
# TYPE llamacpp:requests_processing gauge
llamacpp:requests_processing 2
# TYPE llamacpp:requests_deferred gauge
llamacpp:requests_deferred 1
# TYPE llamacpp:prompt_tokens_total counter
llamacpp:prompt_tokens_total 120
"""


def test_exposition_text_of_vllm_and_llama_cpp():
    before = parse_scrape(VLLM % (10, 10, 10, 10))
    assert before.gauges == {"running": 4.0, "queue": 7.0, "kv_cache": 0.5}
    after = parse_scrape(VLLM % (10, 90, 110, 110))
    summary = run_summary("http://x/metrics", 1.0, before, [(0.5, after)], after, 0)
    assert summary["queue"] == {"before": 7.0, "max": 7.0, "mean": 7.0, "after": 7.0}
    # the run added 100 TTFTs: 0 under 0.1 s, 80 up to 0.2 s, 20 above
    ttft = summary["server_ttft_ms"]
    assert ttft["count"] == 100 and ttft["p50"] == pytest.approx(100 + 100 * 50 / 80)
    assert ttft["p99"] == pytest.approx(200)  # the open top bucket: its lower edge
    assert parse_scrape(LLAMA_CPP).gauges == {"running": 2.0, "queue": 1.0, "prompt_tokens": 120.0}
    assert histogram_quantile(0.5, {}) is None
    with pytest.raises(ValueError):
        parse_scrape("not { the format")


# -- the command ------------------------------------------------------------------------


def write(tmp_path: Path, name: str, runs: list[dict]) -> str:
    path = tmp_path / name
    path.write_text(json.dumps({"runs": runs}))
    return str(path)


def test_compare_fail_on_exits_1_exactly_when_a_bound_is_broken(run_cli, tmp_path):
    base = write(tmp_path, "base.json", [run_record(100.0, 10.0)])
    gate = "ttft.p99>+10%,throughput<-5%"
    inside = run_cli(
        "bench",
        "compare",
        base,
        write(tmp_path, "ok.json", [run_record(109.0, 9.6)]),
        "--fail-on",
        gate,
    )
    assert inside.code == 0, inside.stderr
    assert inside.stderr == "" and "run 1: ttft.p99>+10%: 100 -> 109 (+9.0%) ok" in inside.stdout
    broken = run_cli(
        "bench",
        "compare",
        base,
        write(tmp_path, "slow.json", [run_record(123.0, 9.6)]),
        "--fail-on",
        gate,
    )
    assert broken.code == 1
    assert broken.stderr.splitlines() == [
        "streamkit: bench compare: 1 bound(s) broken: ttft.p99>+10% in run 1 (+23.0%)"
    ]
    assert "TTFT p99 ms" in broken.stdout and "BROKEN" in broken.stdout
    noisy = write(
        tmp_path,
        "noisy.json",
        [run_record(123.0, 9.0, {"ttft_ms.p99": [95.0, 151.0], "request_throughput": [8.0, 10.5]})],
    )
    repeated_base = write(
        tmp_path,
        "rbase.json",
        [
            run_record(
                100.0, 10.0, {"ttft_ms.p99": [90.0, 110.0], "request_throughput": [9.5, 10.5]}
            )
        ],
    )
    within = run_cli("bench", "compare", repeated_base, noisy, "--fail-on", gate)
    assert within.code == 0, within.stderr
    assert within.stdout.count("within the confidence interval: not a regression") == 2
    assert "123±28" in within.stdout  # the mean with half its interval
    for args, said in (
        (["--fail-on", "ttft>1%"], "needs a statistic"),
        (["--fail-on", "goodput<-1%"], "no run of both reports"),
        ([base, "--fail-on", gate], "exactly two reports"),
    ):
        bad = run_cli("bench", "compare", base, noisy, *args)
        assert bad.code == 2 and said in bad.stderr and len(bad.stderr.splitlines()) == 1


def test_repeat_keeps_every_run_and_gates_against_itself(run_cli, timed_url, tmp_path):  # noqa: F811
    out = tmp_path / "r.json"
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.03,itl=0.01,tokens=4"),
        "-c",
        "2",
        "--requests",
        "6",
        "--repeat",
        "3",
        "--json",
        str(out),
        "--csv",
        str(tmp_path / "r.csv"),
    )
    assert result.code == 0, result.stderr
    report = json.loads(out.read_text())
    [run] = report["runs"]
    assert report["repeat"] == 3 and run["repeat"]["count"] == 3
    assert [r["requests_completed"] for r in run["repeat"]["runs"]] == [6, 6, 6]
    low, high = run["repeat"]["ci95"]["ttft_ms.p50"]
    assert low <= run["ttft_ms"]["p50"] <= high
    assert run["ttft_ms"]["p50"] == pytest.approx(
        statistics.fmean(r["ttft_ms"]["p50"] for r in run["repeat"]["runs"]), abs=1e-3
    )
    assert "mean of 3 runs; 95% intervals" in result.stdout
    rows = (tmp_path / "r.csv").read_text().splitlines()
    assert len(rows) == 1 + 18
    same = run_cli("bench", "compare", str(out), str(out), "--fail-on", "ttft.p99>+1%")
    assert same.code == 0, same.stderr


def test_server_metrics_scraped_from_an_exposition_endpoint(run_cli, timed_root, tmp_path):  # noqa: F811
    """llama_cpp.server has no Prometheus endpoint: the timed server's is scripted, with
    vLLM's names, and reports the queue it really has (slots=2)."""
    url = f"{timed_root}/ttft=0.2,itl=0.01,tokens=3,slots=2/{uuid.uuid4().hex}/v1"
    result = run_cli(
        "bench",
        "--base-url",
        url,
        "-c",
        "4",
        "--requests",
        "12",
        "--server-metrics",
        "--server-metrics-interval",
        "0.1",
        "--json",
        str(tmp_path / "m.json"),
        "--plots",
        str(tmp_path / "plots"),
    )
    assert result.code == 0, result.stderr
    server = json.loads((tmp_path / "m.json").read_text())["runs"][0]["server_metrics"]
    assert server["url"].endswith("/metrics") and server["failed_scrapes"] == 0
    assert server["scrapes"] >= 5
    assert server["running"]["max"] == 2 and server["queue"]["max"] == 2
    assert server["queue"]["after"] == 0 and server["kv_cache"]["max"] == 1.0
    assert server["server_ttft_ms"]["count"] == 12
    assert 200 <= server["server_ttft_ms"]["p50"] <= 500  # two waits in a queue of four
    assert all(len(point) == 2 for point in server["series"]["queue"])
    assert "server: queue max 2" in result.stdout
    assert (tmp_path / "plots" / "server_metrics.png").read_bytes().startswith(PNG)


def test_html_is_one_self_contained_page(run_cli, timed_url, tmp_path):  # noqa: F811
    page = tmp_path / "report.html"
    result = run_cli(
        "bench",
        "--base-url",
        timed_url("ttft=0.02,itl=0.01,tokens=3,think=1"),
        "--api-key",
        "sk-HIDDEN-9",
        "-c",
        "1",
        "-c",
        "2",
        "--requests",
        "4",
        "--html",
        str(page),
    )
    assert result.code == 0, result.stderr
    text = page.read_text()
    assert text.startswith("<!doctype html>") and "sk-HIDDEN" not in text
    assert "--api-key ***" in text and "--html" in text
    assert not re.search(r"(src|href)=\"(https?:|//)", text)  # nothing fetched
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 4 and all(base64.b64decode(i).startswith(PNG) for i in images)
    assert text.count("<tr>") >= 3 and "TTFA p50" in text


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--sessions", "2"], "--sessions plays conversations"),
        (["--think-time", "2s"], "it needs --sessions"),
        (["--prefix-groups", "3"], "--prefix-groups needs --prefix-tokens"),
        (["--trace", "t.jsonl", "-c", "2"], "--trace cannot be combined with --concurrency"),
        (["--trace-speed", "2"], "--trace-speed needs --trace"),
        (["--find-capacity"], "--find-capacity needs --slo"),
        (["--find-capacity", "--slo", "ttft=1s", "--sweep"], "cannot be combined with --sweep"),
        (["--find-capacity", "--slo", "ttft=1s", "--repeat", "2"], "with --repeat"),
        (["--goodput", "0.9"], "--goodput is a setting of --find-capacity"),
        (["--dataset", "d.json", "--sessions", "2", "--rate", "3"], "with --rate"),
        (["--dataset", "d.json", "--sessions", "2", "--think-time", "soon"], "--think-time"),
    ],
)
def test_options_that_cannot_combine_are_one_line_errors(run_cli, timed_url, args, said):  # noqa: F811
    result = run_cli("bench", "--base-url", timed_url("tokens=2"), *args)
    assert result.code == 2, (args, result.stderr)
    assert said in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_find_capacity_prints_the_rate_and_every_run_it_tried(run_cli, timed_root, tmp_path):  # noqa: F811
    """Two slots, 0.1 s a request: 20 requests/s is where the queue starts. Over real
    sockets the bounds are the stated precision's, widened for a loaded machine."""
    url = f"{timed_root}/ttft=0.05,itl=0.005,tokens=11,slots=2/{uuid.uuid4().hex}/v1"
    result = run_cli(
        "bench",
        "--base-url",
        url,
        "--find-capacity",
        "--slo",
        "ttft=80ms",
        "--slo-percentile",
        "95",
        "--rate",
        "5",
        "--burstiness",
        "inf",
        "--requests",
        "40",
        "--output-tokens",
        "11",
        "--json",
        str(tmp_path / "c.json"),
        timeout=300,
    )
    assert result.code == 0, result.stderr
    capacity = json.loads((tmp_path / "c.json").read_text())["capacity"]
    assert capacity["percentile"] == 95 and capacity["slo_ms"] == {"ttft": 80.0}
    assert 0.7 * 20 <= capacity["rate"] <= 1.1 * 20
    assert capacity["failing_rate"] is not None
    tried = [line for line in result.stdout.splitlines() if re.match(r"  \d+\. ", line)]
    assert len(tried) == len(capacity["runs"]) >= 4
    assert re.search(r"capacity \(p95 ttft <= 80 ms\): [0-9.]+ requests/s meets it", result.stdout)
