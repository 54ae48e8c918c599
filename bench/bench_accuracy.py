"""How exact ``streamkit bench``'s TTFT and ITL are: reported minus true, per request.

Why: a load tester is only as good as its clock. A client that reads late
(busy with parsing, with other streams, with its own event loop) adds its
lateness to every TTFT and moves it between inter-token gaps, and the
report then blames the server for the client's time. This measures that
error against a server whose timing is known.

``tests/timed_server.py`` runs as a program with ``TIMED_SERVER_LOG`` set:
for every request it appends the truth as sent -- the TTFT, from the
request's arrival to the moment it wrote the first token, and every gap
between token writes, on its own clock. The arrival is the kernel's receive
stamp of the request's last segment (``tests/arrivals.py``: on loopback,
taken in the client's ``send``), not the moment the server's event loop got
round to reading it: a serving team counts the time a request waits to be
read as part of its TTFT, and a client can only time from its send, so a
server late in reading is the server's time, not client error. How late it
read is printed (``read late``: the log's ``ttft`` minus its
``ttft_from_read``). The plan is ``ttft=0.2,itl=0.02,tokens=32,usage=1``
(32 tokens, 20 ms apart, 200 ms after the read). "True" is what the log
says the server did, not the plan: client and server share the machine's 2
cores, and under load the server reads and writes late; its lateness is
printed (``srv late``, read late included) but is no client error.

Each client runs a closed loop at concurrency 1, 16, 64 and 256, with a
fresh server (and log) per run, on a JSONL dataset whose prompts are
numbered, so that each request the client reports is joined with the
server's record of the same prompt. Before each run ``N`` uncounted
requests (``--warmup`` for streamkit) open the connections, since the
true TTFT starts when the request arrived and a TCP connect before it
shows up as client error; ``conns`` shows whether any were opened after
warm-up (streamkit's report's ``connections_opened``) and how many the
server accepted in all (warm-up included; the log's ``connection``
numbers). Errors, in ms,
pooled per level: TTFT error = reported TTFT - true TTFT; ITL error =
reported gap - true gap, gap by gap (chunks that arrive in one read are
0 ms apart to a client that times reads, a large negative error); p50
and p99 of the signed error, p1 of it, and p99 of the absolute error.

Clients:

* streamkit: ``streamkit bench --base-url URL -c N --requests R --warmup N
  --dataset IN --json J --csv C`` as a child process. Per-request TTFT is
  read from the CSV; per-gap ITL is not in either report (the CSV has each
  request's mean and max gap), so the child is started through this script
  (``--streamkit-child``), which runs the same command in the same way and,
  when the command writes its CSV, also writes each sample's gap list --
  after the run, so nothing is added to what is timed. The gaps are checked
  against the CSV's mean and max.
* guidellm, when installed in the virtualenv given by ``--guidellm-venv``
  (default ``/tmp/peer-guidellm``; install commands in bench/README.md):
  ``guidellm run`` with ``--profile kind=concurrent,streams=N`` and
  ``warmup + R`` requests, its JSON report's per-request records joined by
  prompt, the first ``warmup`` by start time dropped. It reports per request
  a TTFT (timed from the moment httpx starts writing the request headers)
  and a mean ITL, not the gaps, so only the per-request mean ITL error is
  compared. It spreads the load over up to 10 worker processes (streamkit
  here: one). If it cannot run, the reason is printed.
* openai SDK (asyncio): a plain ``AsyncOpenAI`` closed loop (N tasks taking
  the next request as each ends), streamed ``chat.completions.create``,
  every timestamp taken after the SDK has parsed the chunk -- the timing
  loop people write by hand. A baseline, not a benchmarking tool.

The goal (the issue's): streamkit's p99 error below 2 ms at concurrency 64
for TTFT and ITL (absolute); at 256, below 5 ms for TTFT and 2 ms for ITL;
and below every other client measured at both.

Run: ``python bench/bench_accuracy.py`` (about 3 minutes with all three
clients), ``--quick`` (fewer requests), ``--requests 20 160 384 512`` (per
level), ``--clients streamkit sdk``.
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from support import PYTHON, child_env, fresh_key, start_server, write_input

PLAN = "ttft=0.2,itl=0.02,tokens=32,usage=1"
PLAN_TTFT, PLAN_ITL, PLAN_TOKENS = 0.2, 0.02, 32
LEVELS = (1, 16, 64, 256)
REQUESTS = (20, 160, 384, 512)  # about 16 s, 8 s, 5 s and 2 s of plan time
QUICK_REQUESTS = (8, 48, 128, 256)
GOALS_MS = {64: (2.0, 2.0), 256: (5.0, 2.0)}  # p99 error at that concurrency: TTFT, |ITL|
RUN_TIMEOUT_S = 180  # one client's run at one level, start-up included
PROMPT_ID = re.compile(r"number (\d+)\.")  # support.write_input's prompts
THIS = Path(__file__).resolve()


@dataclass
class Reported:
    """One request as a client reported it: seconds."""

    id: int
    ttft: float
    gaps: list[float] | None  # None: the client gives no per-gap times
    mean_itl: float | None = None  # (last - first token) / (tokens - 1), when no gaps


@dataclass
class Truth:
    ttft: float  # from the request's arrival (the kernel's stamp)
    ttft_from_read: float  # from when the server had read it
    gaps: list[float]
    connection: int  # the number of the connection the server accepted it on


@dataclass
class Outcome:
    """One client at one level: the errors (ms), or why there are none."""

    client: str
    level: int
    ttft_err: list[float] = field(default_factory=list)
    itl_err: list[float] = field(default_factory=list)
    mean_itl_err: list[float] = field(default_factory=list)  # per request
    server_late: list[float] = field(default_factory=list)  # true TTFT - planned, ms
    read_late: list[float] = field(default_factory=list)  # arrival to the server's read, ms
    connections_opened: int | None = None  # after warm-up, as the client reports it
    connections_accepted: int = 0  # by the server, warm-up included
    joined: int = 0
    failed: int = 0
    zero_gaps: int = 0  # reported gaps under 0.1 ms: chunks read together
    stolen_ms: float = math.nan  # CPU time the hypervisor took from this machine meanwhile
    note: str = ""
    reported_pcts: dict[str, tuple[float, float]] = field(default_factory=dict)
    true_pcts: dict[str, tuple[float, float]] = field(default_factory=dict)


class Unavailable(Exception):
    """A client that cannot run here; the message says why."""


# -- helpers -----------------------------------------------------------------------------


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile, interpolated linearly (numpy's default, as streamkit's)."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def read_truth(path: Path) -> dict[int, Truth]:
    """The server's log, by the prompt's number."""
    truth: dict[int, Truth] = {}
    if not path.exists():
        return truth
    for line in path.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        prompt = record["prompt"]
        match = PROMPT_ID.search(prompt if isinstance(prompt, str) else json.dumps(prompt))
        if match:
            truth[int(match.group(1))] = Truth(
                record["ttft"], record["ttft_from_read"], record["gaps"], record["connection"]
            )
    return truth


def run_child(argv: list[str], env: dict[str, str], what: str) -> None:
    """Run a client to completion; its stderr in the error if it fails."""
    try:
        proc = subprocess.run(
            argv,
            env=env,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RuntimeError(f"{what} did not finish within {RUN_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).decode(errors="replace")[-1500:]
        raise RuntimeError(f"{what} exited {proc.returncode}: {tail}")


# -- streamkit -------------------------------------------------------------------------------


def streamkit_child(dump: str, args: list[str]) -> None:
    """``streamkit <args>``, in this process, also dumping every sample's gaps with the CSV.

    The dump is written from the CSV writer, after the runs: the timed part
    is the command as it is.
    """
    import streamkit.loadtest.bench as bench_module
    from streamkit.__main__ import main as streamkit_main

    write_csv = bench_module.write_csv

    def write_csv_and_gaps(path: Path, results: Sequence) -> None:
        write_csv(path, results)
        with open(dump, "w", encoding="utf-8") as out:
            for result in results:
                for s in result.samples:
                    out.write(json.dumps({"index": s.index, "itl": s.itl}) + "\n")

    bench_module.write_csv = write_csv_and_gaps
    sys.argv = ["streamkit", *args]
    streamkit_main()


def run_streamkit(
    url: str, level: int, requests: int, warmup: int, dataset: Path, tmp: Path, env: dict[str, str]
) -> tuple[list[Reported], int, dict]:
    """streamkit bench at one level: the requests, the failures, and its JSON report."""
    json_path, csv_path, dump = tmp / "sk.json", tmp / "sk.csv", tmp / "sk-gaps.jsonl"
    argv = [
        PYTHON,
        str(THIS),
        "--streamkit-child",
        str(dump),
        "bench",
        "--base-url",
        url,
        "-c",
        str(level),
        "--requests",
        str(requests),
        "--warmup",
        str(warmup),
        "--dataset",
        str(dataset),
        "--json",
        str(json_path),
        "--csv",
        str(csv_path),
    ]
    run_child(argv, env, "streamkit bench")
    gaps = {}
    for line in dump.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        gaps[record["index"]] = record["itl"]
    reported, failed = [], 0
    with csv_path.open(encoding="utf-8", newline="") as source:
        for row in csv.DictReader(source):
            if row["error"] or not row["ttft_ms"]:
                failed += 1
                continue
            index = int(row["index"])
            itl = gaps[index]
            if itl and (
                abs(sum(itl) / len(itl) * 1e3 - float(row["itl_mean_ms"])) > 0.002
                or abs(max(itl) * 1e3 - float(row["itl_max_ms"])) > 0.002
            ):
                raise RuntimeError(f"request {index}: the gap dump does not match the CSV")
            reported.append(Reported(index, float(row["ttft_ms"]) / 1e3, itl))
    return reported, failed, json.loads(json_path.read_text(encoding="utf-8"))


# -- the openai SDK baseline ---------------------------------------------------------------


def sdk_client(url: str, level: int, warmup: int, dataset: str, out_path: str) -> None:
    """A closed loop of ``level`` asyncio tasks on ``AsyncOpenAI`` (run in a child process)."""
    import asyncio

    import openai

    try:
        import httpx2 as http  # what the SDK builds on since 3.x
    except ImportError:  # older SDKs: httpx
        import httpx as http  # type: ignore[no-redef]

    with open(dataset, encoding="utf-8") as source:
        records = [json.loads(line) for line in source if line.strip()]

    async def main() -> list[dict]:
        client = openai.AsyncOpenAI(
            base_url=url,
            api_key="x",
            max_retries=0,
            http_client=openai.DefaultAsyncHttpxClient(
                limits=http.Limits(max_connections=None, max_keepalive_connections=None)
            ),
        )
        results: list[dict] = []

        async def one(record: dict) -> dict:
            sent = time.perf_counter()
            times: list[float] = []
            stream = await client.chat.completions.create(
                model="m",
                messages=[{"role": "user", "content": record["prompt"]}],
                stream=True,
                stream_options={"include_usage": True},
            )
            async for chunk in stream:
                now = time.perf_counter()  # after the SDK has parsed the chunk
                if chunk.choices and chunk.choices[0].delta.content:
                    times.append(now)
            return {
                "id": record["id"],
                "ttft": times[0] - sent,
                "gaps": [b - a for a, b in itertools.pairwise(times)],
            }

        async def loop(queue: list[dict], keep: bool) -> None:
            while queue:
                record = queue.pop(0)
                try:
                    result = await one(record)
                except (openai.APIError, IndexError) as exc:
                    result = {"id": record["id"], "error": type(exc).__name__}
                if keep:
                    results.append(result)

        for queue, keep in ((records[:warmup], False), (records[warmup:], True)):
            await asyncio.gather(*(loop(queue, keep) for _ in range(level)))
        await client.close()
        return results

    results = asyncio.run(main())
    with open(out_path, "w", encoding="utf-8") as out:
        for result in results:
            out.write(json.dumps(result) + "\n")


def run_sdk(
    url: str, level: int, requests: int, warmup: int, dataset: Path, tmp: Path, env: dict[str, str]
) -> tuple[list[Reported], int, dict]:
    out = tmp / "sdk.jsonl"
    subset = tmp / "sdk-in.jsonl"
    lines = dataset.read_text(encoding="utf-8").splitlines(keepends=True)
    subset.write_text("".join(lines[: warmup + requests]), encoding="utf-8")
    argv = [PYTHON, str(THIS), "--sdk-client", url, str(level), str(warmup), str(subset), str(out)]
    run_child(argv, env, "openai SDK client")
    reported, failed = [], 0
    for line in out.read_text(encoding="utf-8").splitlines():
        record = json.loads(line)
        if "error" in record:
            failed += 1
        else:
            reported.append(Reported(record["id"], record["ttft"], record["gaps"]))
    return reported, failed, {}


# -- guidellm ----------------------------------------------------------------------------------


def guidellm_runner(venv: Path) -> Callable:
    """A runner for guidellm from ``venv``, or ``Unavailable`` with the reason."""
    exe = venv / "bin" / "guidellm"
    if not exe.exists():
        raise Unavailable(f"not installed ({exe} not found; see bench/README.md)")
    probe = subprocess.run([str(exe), "--version"], capture_output=True, timeout=120, check=False)
    if probe.returncode != 0:
        raise Unavailable(f"{exe} --version failed: {probe.stderr.decode(errors='replace')[-500:]}")
    version = probe.stdout.decode().strip()

    def run(
        url: str,
        level: int,
        requests: int,
        warmup: int,
        dataset: Path,
        tmp: Path,
        env: dict[str, str],
    ) -> tuple[list[Reported], int, dict]:
        """``guidellm run``: the same closed loop; its per-request records, by prompt.

        Its first ``warmup`` requests (by start time) are dropped, as the
        others' warm-up requests are not counted.
        """
        out = tmp / "guidellm.json"
        target = url.removesuffix("/v1")  # guidellm adds v1/chat/completions
        backend = json.dumps({"kind": "openai_http", "target": target, "model": "m"})
        argv = [
            str(exe),
            "run",
            "--backend",
            backend,
            "--profile",
            f"kind=concurrent,streams={level}",
            "--constraint",
            f"kind=max_requests,count={warmup + requests}",
            "--data",
            f"kind=json_file,path={dataset}",
            "--output",
            f"kind=json,path={out}",
            "--disable-console",
        ]
        run_child(argv, {**env, "PATH": f"{venv / 'bin'}:{env.get('PATH', '')}"}, version)
        report = json.loads(out.read_text(encoding="utf-8"))["benchmarks"][0]["requests"]
        done = sorted(report["successful"], key=lambda r: r["request_start_time"])[warmup:]
        reported = []
        for r in done:
            match = PROMPT_ID.search(r["request_args"])
            if match is None:
                raise RuntimeError("guidellm: a request without a numbered prompt")
            reported.append(
                Reported(
                    int(match.group(1)),
                    r["time_to_first_token_ms"] / 1e3,
                    None,
                    r["inter_token_latency_ms"] / 1e3,
                )
            )
        return reported, len(report["errored"]) + len(report["incomplete"]), {}

    return run


# -- the measurement -----------------------------------------------------------------------


def stolen_ms() -> float:
    """The machine's steal time so far, summed over its CPUs (``/proc/stat``), in ms.

    Why: a virtual CPU the hypervisor pauses past one token gap (20 ms) makes
    the client read two tokens at once, which no read loop can undo; the
    steal during a level shows how much the machine lost meanwhile (it did
    not track those reads in the runs bench/README.md quotes). NaN off Linux.
    """
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            fields = stat.readline().split()
    except OSError:
        return math.nan
    return int(fields[8]) * 1000 / os.sysconf("SC_CLK_TCK")


def measure(
    client: str,
    runner: Callable,
    level: int,
    requests: int,
    warmup: int,
    dataset: Path,
    tmp: Path,
    env: dict[str, str],
) -> Outcome:
    """One client at one level, against a fresh timed server and log."""
    log = tmp / f"truth-{client.split()[0]}-{level}.jsonl"
    stolen = stolen_ms()
    server, port = start_server({**env, "TIMED_SERVER_LOG": str(log)}, script="timed_server.py")
    url = f"http://127.0.0.1:{port}/{PLAN}/{fresh_key()}/v1"
    try:
        reported, failed, report = runner(url, level, requests, warmup, dataset, tmp, env)
    finally:
        server.terminate()
        server.wait(timeout=10)
    stolen = stolen_ms() - stolen
    truth = read_truth(log)
    outcome = Outcome(client, level, failed=failed, stolen_ms=stolen)
    outcome.connections_opened = report.get("connections_opened")
    outcome.connections_accepted = len({t.connection for t in truth.values()})
    true_ttfts, true_gaps, rep_ttfts, rep_gaps = [], [], [], []
    for r in reported:
        t = truth.get(r.id)
        if t is None:
            outcome.failed += 1
            continue
        outcome.joined += 1
        outcome.ttft_err.append((r.ttft - t.ttft) * 1e3)
        outcome.server_late.append((t.ttft - PLAN_TTFT) * 1e3)
        outcome.read_late.append((t.ttft - t.ttft_from_read) * 1e3)
        true_ttfts.append(t.ttft * 1e3)
        rep_ttfts.append(r.ttft * 1e3)
        true_gaps += [g * 1e3 for g in t.gaps]
        mean_itl = r.mean_itl if r.gaps is None else sum(r.gaps) / max(1, len(r.gaps))
        if mean_itl is not None and t.gaps:
            outcome.mean_itl_err.append((mean_itl - sum(t.gaps) / len(t.gaps)) * 1e3)
        if r.gaps is not None and len(r.gaps) == len(t.gaps):
            outcome.itl_err += [(a - b) * 1e3 for a, b in zip(r.gaps, t.gaps, strict=True)]
            outcome.zero_gaps += sum(1 for g in r.gaps if g < 1e-4)
            rep_gaps += [g * 1e3 for g in r.gaps]
        elif r.gaps is not None:
            outcome.note = "some requests had a different number of gaps than the server sent"
    if report:  # streamkit's own report against the truth, percentile by percentile
        run = report["runs"][0]
        outcome.reported_pcts = {
            "ttft": (run["ttft_ms"]["p50"], run["ttft_ms"]["p99"]),
            "itl": (run["itl_ms"]["p50"], run["itl_ms"]["p99"]),
        }
    else:
        outcome.reported_pcts = {
            "ttft": (percentile(rep_ttfts, 50), percentile(rep_ttfts, 99)),
            "itl": (percentile(rep_gaps, 50), percentile(rep_gaps, 99)),
        }
    outcome.true_pcts = {
        "ttft": (percentile(true_ttfts, 50), percentile(true_ttfts, 99)),
        "itl": (percentile(true_gaps, 50), percentile(true_gaps, 99)),
    }
    return outcome


def fmt(value: float, width: int) -> str:
    return f"{'-':>{width}}" if math.isnan(value) else f"{value:>{width}.2f}"


def print_tables(outcomes: list[Outcome]) -> None:
    print(f"Error = reported - true, in ms; |p99|: p99 of the absolute error. {PLAN}, closed loop.")
    header = (
        f"  {'client':<11}{'c':>4}{'n':>5}{'fail':>5} | {'TTFT p50':>8}{'p99':>7} | "
        f"{'ITL p50':>7}{'p1':>7}{'p99':>7}{'|p99|':>7}{'0-gaps':>7} | "
        f"{'mean ITL |p99|':>14}"
    )
    print(header)
    print("  " + "-" * (len(header) - 2))
    for o in outcomes:
        itl = o.itl_err
        print(
            f"  {o.client:<11}{o.level:>4}{o.joined:>5}{o.failed:>5} | "
            f"{fmt(percentile(o.ttft_err, 50), 8)}{fmt(percentile(o.ttft_err, 99), 8)} | "
            f"{fmt(percentile(itl, 50), 7)}{fmt(percentile(itl, 1), 7)}"
            f"{fmt(percentile(itl, 99), 7)}{fmt(percentile([abs(e) for e in itl], 99), 7)}"
            f"{o.zero_gaps if itl else '-':>7} | "
            f"{fmt(percentile([abs(e) for e in o.mean_itl_err], 99), 14)}"
            + (f"  ({o.note})" if o.note else "")
        )
    print(
        "  ITL: gap by gap; mean ITL: each request's mean gap (all guidellm reports); "
        "0-gaps: reported gaps < 0.1 ms"
    )
    print("  (chunks read together).")
    print()
    print_server(outcomes)
    print()
    print(
        "Reported against true percentiles, ms (what a reader of each report sees; "
        "streamkit's from its JSON):"
    )
    print(
        f"  {'client':<11}{'c':>4} | {'TTFT p50 rep/true':>19}{'p99 rep/true':>19} | "
        f"{'ITL p50 rep/true':>19}{'p99 rep/true':>19}"
    )
    for o in outcomes:
        cells = []
        for metric in ("ttft", "itl"):
            for k in (0, 1):
                rep, true = o.reported_pcts[metric][k], o.true_pcts[metric][k]
                cells.append(f"{fmt(rep, 9)}/{fmt(true, 8).strip():<8}")
        print(
            f"  {o.client:<11}{o.level:>4} | {cells[0]:>19}{cells[1]:>19} | "
            f"{cells[2]:>19}{cells[3]:>19}"
        )


def print_server(outcomes: list[Outcome]) -> None:
    """The server's own lateness and the connections: what the errors above leave out."""
    print(
        "The server's lateness, ms (srv late: true TTFT - planned "
        f"{PLAN_TTFT * 1e3:.0f} ms; read late: arrival to its read), and connections:"
    )
    print(
        f"  {'client':<11}{'c':>4} | {'srv late p50':>12}{'p99':>8} | "
        f"{'read late p50':>13}{'p99':>8}{'max':>8} | {'conns opened/accepted':>21} | "
        f"{'steal':>6}"
    )
    for o in outcomes:
        opened = "-" if o.connections_opened is None else str(o.connections_opened)
        print(
            f"  {o.client:<11}{o.level:>4} | {fmt(percentile(o.server_late, 50), 12)}"
            f"{fmt(percentile(o.server_late, 99), 8)} | {fmt(percentile(o.read_late, 50), 13)}"
            f"{fmt(percentile(o.read_late, 99), 8)}{fmt(max(o.read_late, default=math.nan), 8)}"
            f" | {f'{opened}/{o.connections_accepted}':>21} | {fmt(o.stolen_ms, 6)}"
        )
    print(
        "  conns: opened after warm-up, as the client reports it (streamkit's "
        "connections_opened; - : not reported) / accepted by the server, warm-up included."
    )
    print(
        "  steal: ms of CPU the hypervisor took from this machine's CPUs during the level "
        "(/proc/stat)."
    )


def verdict(outcomes: list[Outcome]) -> None:
    """The goal, level by level, for the levels measured."""
    for level, (ttft_goal, itl_goal) in GOALS_MS.items():
        at_level = {o.client: o for o in outcomes if o.level == level}
        ours = at_level.get("streamkit")
        if ours is None:
            continue
        ttft99 = percentile(ours.ttft_err, 99)
        itl99 = percentile([abs(e) for e in ours.itl_err], 99)
        problems = []
        if not ttft99 < ttft_goal:
            problems.append(f"TTFT p99 error {ttft99:.2f} ms")
        if not itl99 < itl_goal:
            problems.append(f"ITL p99 |error| {itl99:.2f} ms")
        for name, other in at_level.items():
            if name == "streamkit":
                continue
            if not ttft99 < percentile(other.ttft_err, 99):
                problems.append(f"TTFT p99 error not below {name}'s")
            if other.itl_err and not itl99 < percentile([abs(e) for e in other.itl_err], 99):
                problems.append(f"ITL p99 |error| not below {name}'s")
        goal = (
            f"Goal at c={level} (p99 error < {ttft_goal:g} ms for TTFT, < {itl_goal:g} ms for "
            "|ITL|, below every other client)"
        )
        print(f"{goal}: " + ("met" if not problems else "NOT MET: " + "; ".join(problems)))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--streamkit-child"]:
        streamkit_child(argv[1], argv[2:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests per level")
    parser.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=list(LEVELS),
        help="concurrency levels (default 1 16 64 256)",
    )
    parser.add_argument(
        "--requests",
        type=int,
        nargs="+",
        help="requests per level, one number per level (default "
        f"{' '.join(map(str, REQUESTS))}; --quick "
        f"{' '.join(map(str, QUICK_REQUESTS))})",
    )
    parser.add_argument(
        "--clients",
        nargs="+",
        default=["streamkit", "guidellm", "sdk"],
        choices=["streamkit", "guidellm", "sdk"],
    )
    parser.add_argument("--guidellm-venv", type=Path, default=Path("/tmp/peer-guidellm"))
    parser.add_argument("--sdk-client", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.sdk_client:
        url, level, warmup, dataset, out = args.sdk_client
        sdk_client(url, int(level), int(warmup), dataset, out)
        return 0
    if args.requests:
        requests = args.requests
    else:  # the defaults of the four standard levels; about 2-6 rounds for others
        known = dict(zip(LEVELS, QUICK_REQUESTS if args.quick else REQUESTS, strict=True))
        requests = [known.get(level, max(8, 2 * level)) for level in args.levels]
    if len(requests) == 1:
        requests = requests * len(args.levels)
    if len(requests) != len(args.levels):
        parser.error("--requests takes one number, or one per level")

    runners: dict[str, Callable] = {}
    for name in args.clients:
        if name == "streamkit":
            runners["streamkit"] = run_streamkit
        elif name == "sdk":
            runners["openai SDK"] = run_sdk
        else:
            try:
                runners["guidellm"] = guidellm_runner(args.guidellm_venv)
            except Unavailable as exc:
                print(f"guidellm: not measured: {exc}")

    started = time.perf_counter()
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = child_env(tmp)
        dataset = tmp / "in.jsonl"
        write_input(
            dataset, max(level + count for level, count in zip(args.levels, requests, strict=True))
        )
        for level, count in zip(args.levels, requests, strict=True):
            warmup = level
            for name, runner in runners.items():
                began = time.perf_counter()
                try:
                    outcome = measure(name, runner, level, count, warmup, dataset, tmp, env)
                except Unavailable as exc:
                    print(f"{name}: not measured at c={level}: {exc}")
                    continue
                outcomes.append(outcome)
                print(
                    f"  {name} c={level}: {outcome.joined} requests joined, "
                    f"{time.perf_counter() - began:.1f} s",
                    file=sys.stderr,
                )
    print()
    print_tables(outcomes)
    print()
    verdict(outcomes)
    print(f"({time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
