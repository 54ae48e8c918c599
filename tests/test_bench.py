"""``streamkit bench`` measurement, in-process against the timed server's transport.

Under ``MockClock(autojump_threshold=0)`` the scripted server's timing is
exact, so every figure is checked exactly (to 1e-9 s): the whole client path
runs -- httpx streaming, SSE and chunk decoding, the closed and open loops --
only the clock is virtual.
"""

from __future__ import annotations

import io
import itertools
import json
import math
import statistics
import uuid

import numpy
import pytest
import timed_server

from streamkit.errors import UsageError
from streamkit.loadtest.client import HTTPTarget
from streamkit.loadtest.metrics import Sample, parse_slo, run_figures, summarize
from streamkit.loadtest.report import ReportInfo, build_report, connections_opened
from streamkit.loadtest.runner import EARLY_STOP_FAILURES, Runner, RunResult, RunSpec
from streamkit.loadtest.schedule import arrival_times, spaced_rates, split
from streamkit.loadtest.summary import print_summary
from streamkit.loadtest.workload import Item, Workload, load_dataset, random_workload
from streamkit.providers.httpx_transport import HttpxTransport
from streamkit.providers.llama.files import embedded_model_path
from streamkit.providers.llama.tokenizer import Tokenizer
from streamkit.providers.openai_http import OpenAIHTTPProducer
from streamkit.request import GenerationOptions, GenerationRequest, Message

EXACT = 1e-9


def target(plan: str) -> tuple[HTTPTarget, str]:
    key = f"{plan}/{uuid.uuid4().hex}"

    def new_transport() -> HttpxTransport:
        return HttpxTransport(
            f"http://timed/{key}/v1",
            None,
            connect_timeout=None,
            idle_timeout=None,
            mounted=timed_server.transport(),
        )

    return HTTPTarget(OpenAIHTTPProducer(new_transport(), max_retries=0), new_transport), key


def workload(count: int = 64, output_tokens: int = 8) -> Workload:
    return random_workload(
        count, kind="chat", model="m", prompt_tokens=16, output_tokens=output_tokens, seed=1
    )


async def run(
    plan: str, spec: RunSpec, items: Workload | None = None, request_timeout: float | None = None
) -> tuple[RunResult, str]:
    bench_target, key = target(plan)
    result = RunResult(spec)
    await Runner(
        bench_target, items if items is not None else workload(), timeout=request_timeout
    ).run(result)
    return result, key


async def test_closed_loop_times_match_the_server_exactly(autojump_clock):
    result, _ = await run(
        "ttft=0.2,itl=0.05,tokens=8", RunSpec("concurrency", concurrency=1, requests=5)
    )
    figures = run_figures(result.samples, result.duration)
    assert figures["requests_completed"] == 5 and figures["requests_failed"] == 0
    for sample in result.samples:
        assert sample.ttft == pytest.approx(0.2, abs=EXACT)
        assert sample.itl == pytest.approx([0.05] * 7, abs=EXACT)
        assert sample.tpot == pytest.approx(0.05, abs=EXACT)
        assert sample.e2e == pytest.approx(0.2 + 7 * 0.05, abs=EXACT)
        assert (sample.output_tokens, sample.tokens_source) == (8, "usage")
        assert sample.prompt_tokens == 7  # the server's usage beats the local count
    assert result.duration == pytest.approx(5 * 0.55, abs=EXACT)
    assert figures["request_throughput"] == pytest.approx(5 / 2.75, abs=1e-4)
    assert figures["output_token_throughput"] == pytest.approx(40 / 2.75, abs=1e-4)
    assert figures["total_token_throughput"] == pytest.approx(75 / 2.75, abs=1e-4)
    assert figures["ttft_ms"]["p50"] == pytest.approx(200) and figures["ttft_ms"]["stdev"] == 0
    assert figures["itl_ms"]["p99"] == pytest.approx(50)
    assert figures["output_tokens_source"] == "usage"


async def test_tokens_that_come_together_are_counted_and_named_in_the_summary(autojump_clock):
    """Tokens sent at once are 0 ms apart as the client measures them: the run
    says how many of its ITL gaps those are, and the summary names them."""
    result, _ = await run(
        "ttft=0.2,itl=0,tokens=4", RunSpec("concurrency", concurrency=1, requests=3)
    )
    figures = run_figures(result.samples, result.duration)
    assert (figures["itl_same_read"], figures["itl_gaps"]) == (9, 9)
    spaced, _ = await run(
        "ttft=0.2,itl=0.05,tokens=4", RunSpec("concurrency", concurrency=1, requests=3)
    )
    apart = run_figures(spaced.samples, spaced.duration)
    assert (apart["itl_same_read"], apart["itl_gaps"]) == (0, 9)

    info = ReportInfo(None, "m", "chat", "now", "random", prompt_tokens_approximate=False)
    lines = []
    for run_result in (result, spaced):
        out = io.StringIO()
        print_summary(build_report(info, [[run_result]]), out)
        lines.append(out.getvalue())
    assert "run 1: 9 of 9 ITL gaps (100.0%) are tokens that came in one network read" in lines[0]
    assert "network read" not in lines[1]


async def test_a_model_that_thinks_first_has_both_first_token_times(autojump_clock):
    """TTFT is the first output of any kind; TTFA the first of the answer."""
    result, _ = await run(
        "ttft=0.2,itl=0.05,tokens=8,think=5", RunSpec("concurrency", concurrency=2, requests=4)
    )
    figures = run_figures(result.samples, result.duration)
    for sample in result.samples:
        assert sample.ttft == pytest.approx(0.2, abs=EXACT)
        assert sample.ttfa == pytest.approx(0.2 + 5 * 0.05, abs=EXACT)
        assert sample.reasoning_tokens == 5
    assert figures["ttft_ms"]["p50"] == pytest.approx(200)
    assert figures["ttfa_ms"]["p99"] == pytest.approx(450)
    assert figures["reasoning_tokens"] == 20


async def test_concurrency_n_never_has_more_than_n_in_flight(autojump_clock):
    result, key = await run(
        "ttft=0.1,itl=0.01,tokens=4", RunSpec("concurrency", concurrency=4, requests=21)
    )
    counters = timed_server.counters[key]
    assert counters.requests == 21 and counters.max_in_flight == 4
    # four loops, each one request after another: 21 requests take 6 rounds
    assert result.duration == pytest.approx(6 * 0.13, abs=EXACT)


async def test_connections_are_kept_between_requests(nursery):
    """Over real sockets, a closed loop of 3 opens 3 connections for 12 requests: no TCP
    connect inside a TTFT after the first round."""
    port = await nursery.start(timed_server.serve)
    before = timed_server.connections_accepted
    url = f"http://127.0.0.1:{port}/ttft=0.01,itl=0.001,tokens=3/{uuid.uuid4().hex}/v1"

    def new_transport() -> HttpxTransport:
        return HttpxTransport(url, None, connect_timeout=5, idle_timeout=5)

    bench_target = HTTPTarget(OpenAIHTTPProducer(new_transport(), max_retries=0), new_transport)
    result = RunResult(RunSpec("concurrency", concurrency=3, requests=12))
    try:
        await Runner(bench_target, workload(12)).run(result)
    finally:
        await bench_target.aclose()
    assert [s.ok for s in result.samples] == [True] * 12
    assert timed_server.connections_accepted - before == 3
    # httpx's pools keep their connects out of sight: not counted, and the report says so
    assert result.connections_opened is None
    assert connections_opened([[result]]) is None


async def test_open_loop_sends_on_schedule_and_measures_from_it(autojump_clock):
    spec = RunSpec("rate", rate=10.0, requests=30, seed=3)
    result, key = await run("ttft=0.5,itl=0.1,tokens=3", spec)
    times = arrival_times(10.0, seed=3, count=30)
    assert [s.scheduled_at for s in result.samples] == times
    for sample in result.samples:
        assert sample.lag == pytest.approx(0, abs=EXACT)
        assert sample.first_at - sample.scheduled_at == pytest.approx(0.5, abs=EXACT)
    # open loop: requests overlap freely, whatever is in flight
    assert timed_server.counters[key].max_in_flight > 1
    figures = run_figures(result.samples, result.duration)
    assert figures["schedule_lag_ms"]["max"] == pytest.approx(0, abs=1e-6)
    assert figures["ttft_from_schedule_ms"]["p50"] == pytest.approx(500)


async def test_failures_are_counted_by_type_and_kept_out_of_latencies(autojump_clock):
    result, _ = await run(
        "ttft=0.2,itl=0.05,tokens=4,fail=3:503", RunSpec("concurrency", concurrency=2, requests=9)
    )
    figures = run_figures(result.samples, result.duration)
    assert figures["errors"] == {"http_503": 3}
    assert figures["requests_completed"] == 6 and figures["requests_failed"] == 3
    assert figures["ttft_ms"]["p50"] == pytest.approx(200)
    assert figures["e2e_ms"]["mean"] == pytest.approx(350)  # failed ones would lower it
    assert "503" in next(s.message for s in result.samples if not s.ok)

    broken, _ = await run(
        "ttft=0.2,itl=0.05,tokens=4,fail=2:break", RunSpec("concurrency", concurrency=1, requests=4)
    )
    assert run_figures(broken.samples, broken.duration)["errors"] == {"protocol": 2}


async def test_timeouts_are_failures_of_their_own(autojump_clock):
    result, _ = await run(
        "ttft=0.2,itl=0.5,tokens=4",
        RunSpec("concurrency", concurrency=1, requests=2),
        request_timeout=1.0,
    )
    assert {s.error for s in result.samples} == {"timeout"}
    assert result.samples[0].e2e == pytest.approx(1.0, abs=EXACT)


async def test_a_server_failing_everything_stops_the_run_early(autojump_clock):
    result, key = await run("fail=1:500", RunSpec("concurrency", concurrency=2, requests=500))
    assert result.stopped and "http_500" in result.stopped
    assert EARLY_STOP_FAILURES <= len(result.samples) < EARLY_STOP_FAILURES + 2
    assert timed_server.counters[key].requests < EARLY_STOP_FAILURES + 2


async def test_goodput_counts_exactly_the_requests_meeting_every_bound(autojump_clock):
    # output lengths 1..10: E2E = 0.2 + (n - 1) * 0.05; TPOT is 0.05 (0 for n = 1)
    items = Workload(
        [
            Item(
                GenerationRequest(
                    "chat",
                    "m",
                    GenerationOptions(max_tokens=n),
                    messages=(Message("user", f"q{n}"),),
                ),
                3,
                n,
            )
            for n in range(1, 11)
        ],
        approximate=True,
        description="lengths",
    )
    result, _ = await run(
        "ttft=0.2,itl=0.05", RunSpec("concurrency", concurrency=3, requests=10), items
    )
    slo = parse_slo("e2e=400ms,ttft=0.25s")
    figures = run_figures(result.samples, result.duration, slo)
    assert figures["good_requests"] == 5  # n <= 5
    assert figures["goodput"] == pytest.approx(5 / result.duration, abs=1e-4)
    assert (
        run_figures(result.samples, result.duration, parse_slo("tpot=49ms"))["good_requests"] == 1
    )  # only n = 1
    assert (
        run_figures(result.samples, result.duration, parse_slo("ttft=199ms"))["good_requests"] == 0
    )


def test_poisson_arrivals_have_the_requested_mean_rate():
    times = arrival_times(20.0, seed=7, count=20001)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    # 20000 exponential gaps: the mean's standard error is 0.7 % of 1/20
    assert statistics.fmean(gaps) == pytest.approx(1 / 20, rel=0.02)
    assert statistics.pstdev(gaps) / statistics.fmean(gaps) == pytest.approx(1.0, abs=0.03)
    regular = arrival_times(20.0, burstiness=4.0, seed=7, count=20001)
    regular_gaps = [b - a for a, b in itertools.pairwise(regular)]
    assert statistics.fmean(regular_gaps) == pytest.approx(1 / 20, rel=0.02)
    # gamma with shape 4: coefficient of variation 1/2
    assert statistics.pstdev(regular_gaps) / statistics.fmean(regular_gaps) == pytest.approx(
        0.5, abs=0.03
    )
    assert arrival_times(4.0, burstiness=math.inf, count=3) == [0.0, 0.25, 0.5]
    assert arrival_times(20.0, seed=7, count=50) == times[:50]  # seeded: repeatable
    assert arrival_times(2.0, until=10.0, seed=1)[-1] < 10.0


def test_schedule_split_between_workers_is_the_whole_schedule():
    times = arrival_times(5.0, count=11)
    parts = split(times, 3)
    assert sorted(pair for part in parts for pair in part) == list(enumerate(times))
    assert [len(p) for p in parts] == [4, 4, 3]
    assert spaced_rates(1.0, 5.0, 3) == [2.0, 3.0, 4.0]


def test_statistics_agree_with_numpy():
    values = [0.001 * v for v in range(1, 1000, 7)] + [3.0, 0.5]
    stats = summarize(values)
    for q in (50, 90, 95, 99):
        assert stats[f"p{q}"] == pytest.approx(numpy.percentile(values, q) * 1000, abs=1e-3)
    assert stats["stdev"] == pytest.approx(numpy.std(values) * 1000, abs=1e-3)
    assert stats["mean"] == pytest.approx(numpy.mean(values) * 1000, abs=1e-3)
    assert summarize([]) is None


def test_slo_parsing():
    assert parse_slo("ttft=500ms,tpot=50ms,e2e=10s") == pytest.approx(
        {"ttft": 0.5, "tpot": 0.05, "e2e": 10.0}
    )
    assert parse_slo("itl=20") == {"itl": 0.02}
    for bad in ("ttft", "speed=1s", "ttft=fast", "ttft=1h"):
        with pytest.raises(UsageError):
            parse_slo(bad)


def test_figures_without_any_completed_request():
    failed = [Sample(index=i, sent_at=0, end_at=0.1, error="connection") for i in range(3)]
    figures = run_figures(failed, 0.3)
    assert figures["errors"] == {"connection": 3}
    assert figures["ttft_ms"] is None and figures["request_throughput"] == 0


@pytest.fixture(scope="module")
def tokenizer():
    return Tokenizer(embedded_model_path())


def test_random_prompts_have_the_asked_length_in_model_tokens(tokenizer):
    items = random_workload(
        5,
        kind="completion",
        model=None,
        prompt_tokens=40,
        output_tokens=9,
        prompt_stdev=5,
        seed=2,
        tokenizer=tokenizer,
    )
    assert not items.approximate
    for item in items.items:
        assert item.prompt_tokens == tokenizer.count(item.request.prompt)
        assert item.extra_body() == {"min_tokens": 9, "ignore_eos": True}
    assert len({item.prompt_tokens for item in items.items}) > 1  # the spread
    again = random_workload(
        5,
        kind="completion",
        model=None,
        prompt_tokens=40,
        output_tokens=9,
        prompt_stdev=5,
        seed=2,
        tokenizer=tokenizer,
    )
    assert again.items == items.items  # seeded


def test_datasets_jsonl_and_sharegpt(tmp_path, tokenizer):
    jsonl = tmp_path / "d.jsonl"
    jsonl.write_text(
        '{"id": 1, "prompt": "Hello there"}\n\n'
        '{"messages": [{"role": "user", "content": "Name a colour"}], '
        '"max_tokens": 5}\n'
    )
    items = load_dataset(jsonl, kind="chat", model="m", output_tokens=None, tokenizer=tokenizer)
    assert [i.request.messages[-1].content for i in items.items] == ["Hello there", "Name a colour"]
    assert items.items[1].request.options.max_tokens == 5
    assert items.items[0].prompt_tokens == tokenizer.count("Hello there")
    assert items[2] == items[0]  # cycled

    sharegpt = tmp_path / "sg.json"
    sharegpt.write_text(
        json.dumps(
            [
                {
                    "conversations": [
                        {"from": "human", "value": "What is two and two?"},
                        {"from": "gpt", "value": "It is four, of course."},
                    ]
                },
                {"conversations": [{"from": "human", "value": "a lone turn"}]},
            ]
        )
    )
    items = load_dataset(sharegpt, kind="chat", model=None, output_tokens=None, tokenizer=tokenizer)
    assert len(items) == 1
    assert items[0].output_tokens == tokenizer.count("It is four, of course.")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "ok"}\nnot json\n')
    with pytest.raises(UsageError, match="line 2"):
        load_dataset(bad, kind="chat", model=None, output_tokens=None, tokenizer=None)
