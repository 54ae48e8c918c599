"""bench's realistic workloads, in-process against the timed server under ``MockClock``:
multi-turn sessions, shared prefixes, trace replay, ramps, and the capacity search.

The timed server keeps every request it received (``counters[key].received``),
so each test checks what was actually sent, and when, to the virtual
nanosecond.
"""

from __future__ import annotations

import itertools
import json
import math
import re

import pytest
import timed_server
from test_bench import EXACT, run, target

from streamkit.errors import UsageError
from streamkit.loadtest.bench import _find_capacity
from streamkit.loadtest.capacity import CapacitySearch, Probe
from streamkit.loadtest.conversations import parse_conversations
from streamkit.loadtest.metrics import run_figures
from streamkit.loadtest.runner import Runner, RunResult, RunSpec
from streamkit.loadtest.schedule import arrival_times, parse_think_time, ramped
from streamkit.loadtest.setup import BenchConfig
from streamkit.loadtest.trace import azure_time, parse_trace
from streamkit.loadtest.tracesessions import trace_share
from streamkit.loadtest.workload import random_workload, session_workload, trace_workload
from streamkit.pipeline.interrupts import Interrupts

CONVERSATIONS = [
    {"id": "a", "system": "be brief", "turns": ["alpha one", "alpha two", "alpha three"]},
    {"id": "b", "turns": ["beta one", {"content": "beta two", "output_tokens": 2}]},
    {"id": "c", "turns": ["gamma one", "gamma two", "gamma three"]},
]


def received(key: str) -> list[dict]:
    return timed_server.counters[key].received


async def test_sessions_carry_the_history_and_the_replies_the_server_gave(tmp_path, autojump_clock):
    path = tmp_path / "chats.jsonl"
    path.write_text("".join(json.dumps(c) + "\n" for c in CONVERSATIONS))
    items = session_workload(path, model="m", output_tokens=None, default_output=3, tokenizer=None)
    spec = RunSpec("sessions", concurrency=2, think_time="1.5s")
    result, key = await run("ttft=0.1,itl=0.01,usage=0,tag=1", spec, items)

    requests = received(key)
    assert len(requests) == 8 and all(s.ok for s in result.samples)
    replies = {}  # request number -> the reply's text, as the server wrote it
    for number, request in enumerate(requests, 1):
        tokens = request["body"]["max_tokens"]
        replies[number] = "".join(f"tok{k}.r{number} " for k in range(tokens))
    for request in requests:
        messages = request["body"]["messages"]
        users = [m["content"] for m in messages if m["role"] == "user"]
        conversation = next(
            c
            for c in CONVERSATIONS
            if (c["turns"][0] if isinstance(c["turns"][0], str) else c["turns"][0]["content"])
            == users[0]
        )
        assert (messages[0] == {"role": "system", "content": "be brief"}) == (
            conversation["id"] == "a"
        )
        for index, message in enumerate(messages):
            if message["role"] != "assistant":
                continue
            # the reply the server actually gave to the user turn before it
            number = int(re.search(r"\.r(\d+) ", message["content"]).group(1))
            assert message["content"] == replies[number]
            asked = requests[number - 1]["body"]["messages"]
            assert asked == messages[:index]
    # the turn after a reply arrives one think time after that reply ended
    by_session: dict[int, list] = {}
    for sample in sorted(result.samples, key=lambda s: s.sent_at):
        by_session.setdefault(sample.session, []).append(sample)
    assert sorted(len(v) for v in by_session.values()) == [2, 3, 3]
    for samples in by_session.values():
        assert [s.turn for s in samples] == list(range(1, len(samples) + 1))
        for before, after in itertools.pairwise(samples):
            assert after.sent_at - before.end_at == pytest.approx(1.5, abs=EXACT)
    # turn 2 of "b" asked for its own length; the others the default
    assert sorted(r["body"]["max_tokens"] for r in requests).count(2) == 1
    figures = run_figures(result.samples, result.duration)
    rows = figures["by_turn"]
    assert [(row["turn"], row["requests"]) for row in rows] == [(1, 3), (2, 3), (3, 2)]
    prompts = [row["prompt_tokens_mean"] for row in rows]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]  # the history grows
    assert timed_server.counters[key].max_in_flight <= 2


def test_sharegpt_conversations_keep_every_human_turn():
    raw = json.dumps(
        [
            {
                "id": 7,
                "conversations": [
                    {"from": "system", "value": "sys"},
                    {"from": "human", "value": "q1"},
                    {"from": "gpt", "value": "a reply of five words"},
                    {"from": "human", "value": "q2"},
                ],
            },
            {"conversations": [{"from": "gpt", "value": "no question"}]},
        ]
    ).encode()
    [conversation] = parse_conversations(raw, "sg.json")
    assert conversation.id == "7" and conversation.system == "sys"
    assert [(t.user, t.reference_reply) for t in conversation.turns] == [
        ("q1", "a reply of five words"),
        ("q2", None),
    ]
    with pytest.raises(UsageError, match="line 2"):
        parse_conversations(b'{"turns": ["ok"]}\n{"turns": 3}\n', "bad.jsonl")


async def test_prefix_groups_are_sent_as_asked_and_first_requests_compared(autojump_clock):
    items = random_workload(
        12,
        kind="chat",
        model="m",
        prompt_tokens=8,
        output_tokens=3,
        prefix_tokens=20,
        prefix_groups=3,
        seed=5,
    )
    result, key = await run(
        "ttft=0.1,itl=0.01,cached=0.04", RunSpec("concurrency", concurrency=1, requests=12), items
    )
    bodies = [r["body"] for r in received(key)]
    systems = [b["messages"][0]["content"] for b in bodies]
    assert all(b["messages"][0]["role"] == "system" for b in bodies)
    assert len(set(systems)) == 3
    assert all(systems[i] == systems[i % 3] for i in range(12))  # request i: group i % 3
    assert all(len(s.split()) == 20 for s in systems)
    assert len({b["messages"][1]["content"] for b in bodies}) == 12  # unique suffixes
    groups = run_figures(result.samples, result.duration)["prefix_groups"]
    assert groups["groups"] == 3
    assert groups["first_ttft_ms"]["max"] == pytest.approx(100)
    assert groups["rest_ttft_ms"]["max"] == pytest.approx(40)


TRACE = b"""{"timestamp": 10.0, "input_tokens": 5, "output_tokens": 2, "session_id": "u1"}
{"timestamp": 10.5, "input_tokens": 9, "output_tokens": 3}
{"timestamp": 10.25, "input_tokens": 7, "output_tokens": 4, "session_id": "u1"}
"""


def test_trace_layouts_as_published():
    ours = parse_trace(TRACE, "t.jsonl")
    assert [(r.at, r.input_tokens, r.output_tokens, r.session) for r in ours] == [
        (0.0, 5, 2, "u1"),
        (0.25, 7, 4, "u1"),
        (0.5, 9, 3, None),
    ]
    mooncake = parse_trace(
        b'{"timestamp": 27482, "input_length": 6955, "output_length": 52, '
        b'"hash_ids": [46, 47]}\n{"timestamp": 27000, "input_length": 600, '
        b'"output_length": 5, "hash_ids": [46]}\n',
        "m.jsonl",
    )
    assert [(r.at, r.input_tokens, r.blocks) for r in mooncake] == [
        (0.0, 600, (46,)),
        (pytest.approx(0.482), 6955, (46, 47)),
    ]
    azure = parse_trace(
        b"TIMESTAMP,ContextTokens,GeneratedTokens\n"
        b"2023-11-16 18:15:46.6805900,374,44\n"
        b"2023-11-16 18:15:50.9951690,396,109\n",
        "azure.csv",
    )
    assert [(r.input_tokens, r.output_tokens) for r in azure] == [(374, 44), (396, 109)]
    assert azure[1].at == pytest.approx(4.314579, abs=1e-6)
    assert azure_time("2023-11-16 18:15:46") % 60 == 46
    assert azure_time("2024-05-10 00:00:00.009930+00:00") == pytest.approx(
        azure_time("2024-05-10 00:00:00.00993"), abs=1e-9
    )
    assert azure_time("2024-05-10 02:00:00+02:00") == azure_time("2024-05-10 00:00:00")
    with pytest.raises(ValueError):
        azure_time("yesterday")
    for bad in (b'{"timestamp": 1}\n', b"when,what\n1,2\n"):
        with pytest.raises(UsageError, match=r"line [12]"):
            parse_trace(bad, "bad")


def test_mooncake_blocks_are_shared_prefixes():
    records = parse_trace(
        b'{"timestamp": 0, "input_length": 600, "output_length": 5, '
        b'"hash_ids": [1, 2]}\n{"timestamp": 5, "input_length": 700, '
        b'"output_length": 5, "hash_ids": [1, 3]}\n',
        "m.jsonl",
    )
    items = trace_workload(records, kind="completion", model=None, tokenizer=None)
    first, second = (item.request.prompt.split() for item in items.items)
    assert len(first) == 600 and len(second) == 700
    assert first[:512] == second[:512] and first[512:] != second[512:600]


async def test_a_trace_is_replayed_on_its_own_schedule(tmp_path, autojump_clock):
    records = parse_trace(TRACE, "t.jsonl")
    items = trace_workload(records, kind="chat", model="m", tokenizer=None)
    result, key = await run("ttft=0.05,itl=0.01", RunSpec("trace", trace_speed=2.0), items)
    assert [s.scheduled_at for s in result.samples] == [0.0, 0.125, 0.25]
    assert all(s.lag == pytest.approx(0, abs=EXACT) for s in result.samples)
    arrivals = [r["at"] for r in received(key)]
    assert [b - arrivals[0] for b in arrivals] == pytest.approx([0, 0.125, 0.25], abs=EXACT)
    assert [r["body"]["max_tokens"] for r in received(key)] == [2, 4, 3]
    assert [(s.session, s.turn) for s in result.samples] == [(0, 1), (0, 2), (None, None)]


SESSION_TRACE = b"""{"timestamp": 0, "input_tokens": 5, "output_tokens": 2, "session_id": "u1"}
{"timestamp": 0.05, "input_tokens": 4, "output_tokens": 2}
{"timestamp": 0.1, "input_tokens": 6, "output_tokens": 3, "session_id": "u1"}
{"timestamp": 0.5, "input_tokens": 3, "output_tokens": 2, "session_id": 7}
{"timestamp": 0.6, "input_tokens": 4, "output_tokens": 2, "session_id": "u1"}
"""


def tagged_reply(number: int, tokens: int) -> str:
    """What the timed server's ``tag=1`` streams as the reply to its ``number``-th request."""
    return "".join(f"tok{k}.r{number} " for k in range(tokens))


async def test_a_trace_session_carries_its_history_and_waits_for_its_replies(autojump_clock):
    items = trace_workload(
        parse_trace(SESSION_TRACE, "s.jsonl"), kind="chat", model="m", tokenizer=None
    )
    spec = RunSpec("trace", trace_speed=1.0)
    result, key = await run("ttft=0.1,itl=0.01,usage=0,tag=1", spec, items)

    assert all(s.ok for s in result.samples)
    bodies = [r["body"] for r in received(key)]  # in arrival order: request numbers 1..5
    first, sessionless, second, other, third = (b["messages"] for b in bodies)
    assert [m["role"] for m in first] == ["user"] and len(first[0]["content"].split()) == 5
    assert [m["role"] for m in sessionless] == ["user"]  # no session: one turn, as before
    assert [m["role"] for m in other] == ["user"]  # another session's first turn
    assert second == [*first, {"role": "assistant", "content": tagged_reply(1, 2)}, second[2]]
    assert second[2]["role"] == "user" and len(second[2]["content"].split()) == 6
    assert third[:3] == second and third[3] == {
        "role": "assistant",
        "content": tagged_reply(3, 3),
    }
    assert [m["role"] for m in third] == ["user", "assistant", "user", "assistant", "user"]
    # turn 2 was due at 0.1, but turn 1's reply ended at 0.11: it waited, and that is lag
    by_index = {s.index: s for s in result.samples}
    assert by_index[2].sent_at == pytest.approx(by_index[0].end_at, abs=EXACT)
    assert by_index[2].lag == pytest.approx(0.01, abs=EXACT)
    assert [by_index[i].lag for i in (0, 1, 3, 4)] == pytest.approx([0] * 4, abs=EXACT)
    figures = run_figures(result.samples, result.duration)
    assert figures["schedule_lag_ms"]["max"] == pytest.approx(10, abs=1e-6)
    rows = figures["by_turn"]
    assert [(row["turn"], row["requests"]) for row in rows] == [(1, 2), (2, 1), (3, 1)]
    prompts = [row["prompt_tokens_mean"] for row in rows]
    assert prompts == sorted(prompts) and prompts[0] < prompts[-1]  # the history grows


async def test_a_failed_trace_turn_ends_its_session(autojump_clock):
    items = trace_workload(
        parse_trace(SESSION_TRACE, "s.jsonl"), kind="chat", model="m", tokenizer=None
    )
    result, key = await run(
        "ttft=0.01,itl=0.01,fail=1:503", RunSpec("trace", trace_speed=1.0), items
    )
    assert sorted(s.index for s in result.samples) == [0, 1, 3]  # u1's first turn, no more
    assert len(received(key)) == 3


def test_a_trace_session_stays_with_one_worker():
    items = trace_workload(
        parse_trace(SESSION_TRACE, "s.jsonl"), kind="chat", model="m", tokenizer=None
    ).items
    times = [item.at for item in items]
    shares = [[index for index, _ in trace_share(times, items, (k, 2))] for k in range(2)]
    assert shares == [[0, 2, 4], [1, 3]]  # u1 is session 0; session 7 is 1; index 1 has none


def test_ramp_bends_the_schedule_and_keeps_its_arrivals():
    steady = arrival_times(10.0, burstiness=math.inf, count=40)
    bent = ramped(steady, 2.0)
    assert len(bent) == 40 and bent == sorted(bent)
    assert bent[0] == 0.0
    # by t = 2 s (the ramp's end) 10 req/s * 2 s / 2 = 10 arrivals are due
    assert sum(1 for t in bent if t < 1.95) == 10 and bent[10] == pytest.approx(2.0)
    gaps_after = [b - a for a, b in itertools.pairwise(bent[11:])]
    assert gaps_after == pytest.approx([0.1] * len(gaps_after))
    assert ramped(steady, 0) == steady


async def test_closed_loops_start_one_after_another_over_the_ramp(autojump_clock):
    result, _ = await run(
        "ttft=5,itl=0.01,tokens=2", RunSpec("concurrency", concurrency=4, requests=4, ramp_up=2.0)
    )
    assert sorted(s.sent_at for s in result.samples) == pytest.approx([0, 0.5, 1.0, 1.5], abs=EXACT)


def test_think_time_forms():
    import random

    rng = random.Random(1)
    assert parse_think_time("500ms").draw(rng) == 0.5
    assert parse_think_time("2").draw(rng) == 2.0
    spread = [parse_think_time("uniform:1s:3s").draw(rng) for _ in range(2000)]
    assert min(spread) >= 1 and max(spread) <= 3 and 1.9 < sum(spread) / 2000 < 2.1
    exp = [parse_think_time("exp:2s").draw(rng) for _ in range(4000)]
    assert 1.85 < sum(exp) / 4000 < 2.15
    assert min(parse_think_time("normal:0.1s:1s").draw(rng) for _ in range(100)) >= 0
    for bad in ("soon", "exp:1s:2s", "uniform:3s:1s", "-1s", "poisson:2s"):
        with pytest.raises(ValueError):
            parse_think_time(bad)


# -- capacity -------------------------------------------------------------------------------

SLOTS, TTFT, ITL, TOKENS = 4, 0.1, 0.01, 11
SERVICE = TTFT + (TOKENS - 1) * ITL  # 0.2 s a request
CAPACITY = SLOTS / SERVICE  # 20 requests/s: past it, requests queue for a slot


async def test_capacity_search_finds_where_the_server_starts_to_queue(autojump_clock):
    """The server serves 4 requests at once; a fifth waits. At a constant rate up to
    20/s nothing waits (TTFT 100 ms); above it the queue, and TTFT, grow without end."""
    bench_target, key = target(f"ttft={TTFT},itl={ITL},tokens={TOKENS},slots={SLOTS}")
    runner = Runner(
        bench_target,
        random_workload(120, kind="chat", model="m", prompt_tokens=4, output_tokens=TOKENS),
    )
    config = BenchConfig(
        find_capacity=True,
        slo={"ttft": 0.15},
        requests=120,
        burstiness=math.inf,
        rate=(5.0,),
        capacity_precision=0.05,
    )
    groups: list[list[RunResult]] = []
    search = await _find_capacity(config, runner.run, groups, Interrupts())
    summary = search.summary()
    assert summary["converged"]
    assert CAPACITY / 1.05 <= summary["rate"] <= CAPACITY * 1.03
    assert summary["failing_rate"] <= summary["rate"] * 1.05
    assert summary["runs"][:3] == [  # doubling from the start until a run fails
        {**summary["runs"][0], "rate": 5.0, "passed": True},
        {**summary["runs"][1], "rate": 10.0, "passed": True},
        {**summary["runs"][2], "rate": 20.0, "passed": True},
    ]
    assert summary["runs"][3]["rate"] == 40.0 and not summary["runs"][3]["passed"]
    assert len(groups) == len(summary["runs"]) <= 10
    assert timed_server.counters[key].max_in_flight > SLOTS  # it did queue past capacity


def test_capacity_search_narrows_with_what_runs_measured():
    search = CapacitySearch(10.0, precision=0.1)
    assert search.next_rate() == 10.0
    search.record(Probe(10.0, 0.5, True, {}, 1.0))
    assert search.next_rate() == 20.0
    search.record(Probe(20.0, 1.5, False, {}, 0.5))
    # the scores joined by a line reach 1 at 15/s
    assert search.next_rate() == pytest.approx(15.0)
    search.record(Probe(15.0, 0.9, True, {}, 1.0))
    search.record(Probe(16.0, 1.1, False, {}, 1.0))
    assert search.next_rate() is None and search.summary()["rate"] == 15.0
    failing = CapacitySearch(8.0)
    for _ in range(20):
        rate = failing.next_rate()
        if rate is None:
            break
        failing.record(Probe(rate, math.inf, False, {}, 0.0))
    assert failing.summary()["rate"] is None and len(failing.probes) == 7  # 8/s to 1/8
