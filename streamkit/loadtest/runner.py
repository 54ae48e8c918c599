"""Running the load: a closed loop (N requests always in flight), an open loop
(requests sent on a schedule), and a sweep between the two.

Open-loop honesty: a request's send time is compared with the time the
schedule gave it, so the report shows the client's own lateness (schedule
lag) and latencies measured from the scheduled time as well as from the
actual send. A client that falls behind cannot hide the queueing it caused
(coordinated omission).

A run whose first requests all fail stops early instead of hammering a
broken server; Ctrl-C (the caller's cancel scope) ends the run and keeps
every request that had finished, the run marked partial.

One ``Runner`` may be one of several worker processes: ``part=(k, n)`` runs
the k-th of n slices of the same run (every n-th request, a share of the
concurrency, every n-th arrival of the schedule), with times relative to an
``origin`` all workers share.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import msgspec
import trio

from streamkit.loadtest.client import Measurement, Target
from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.schedule import arrival_times, ramped, share, split
from streamkit.loadtest.sessions import play
from streamkit.loadtest.tracesessions import TraceSessions, trace_share
from streamkit.loadtest.workload import Item, Workload
from streamkit.providers.llama.tokenizer import Tokenizer

EARLY_STOP_FAILURES = 10  # failures in a row, with no success, that end a run
LAG_WARNING_S = 0.010  # p99 schedule lag above this: the client fell behind


class RunSpec(msgspec.Struct, frozen=True):
    """One run: its load shape and how long it lasts."""

    mode: str  # concurrency | rate | sweep-* | sessions | trace | capacity
    concurrency: int | None = None  # sessions: the users playing conversations at once
    rate: float | None = None
    burstiness: float = 1.0
    requests: int | None = None  # sessions: conversations played
    duration: float | None = None
    warmup: int = 0
    seed: int = 0
    ramp_up: float = 0.0  # seconds over which the rate (or the loops started) rises to full
    trace_speed: float | None = None  # trace: replayed this many times faster
    think_time: str | None = None  # sessions: --think-time as given


class RunResult(msgspec.Struct):
    """What one run measured."""

    spec: RunSpec
    samples: list[Sample] = msgspec.field(default_factory=list)
    duration: float = 0.0
    partial: bool = False  # interrupted: only the requests that had finished
    stopped: str | None = None  # why the run ended early, if it did
    workers: int = 1
    nodes: dict[str, int] = {}  # on a cluster: each node's share of the requests
    server_metrics: dict[str, Any] | None = None  # --server-metrics: what was scraped
    repeat: int = 1  # --repeat: which of the run's repeats this is
    # TCP connects after warm-up (each one inside a TTFT); None: the target cannot count
    connections_opened: int | None = None


class Observer(Protocol):
    """Told about progress (the live view); every method must return at once."""

    def run_started(self, spec: RunSpec) -> None: ...

    def request_started(self) -> None: ...

    def request_done(self, sample: Sample) -> None: ...


class _Quiet:
    def run_started(self, spec: RunSpec) -> None:
        pass

    def request_started(self) -> None:
        pass

    def request_done(self, sample: Sample) -> None:
        pass


class Runner:
    """Runs ``RunSpec``s against one target with one workload."""

    def __init__(
        self,
        target: Target,
        workload: Workload,
        *,
        tokenizer: Tokenizer | None = None,
        timeout: float | None = None,
        observer: Observer | None = None,
        part: tuple[int, int] = (0, 1),
    ) -> None:
        self.target = target
        self.workload = workload
        self.tokenizer = tokenizer
        self.timeout = timeout
        self.observer = observer or _Quiet()
        self.part = part

    async def run(self, result: RunResult, *, origin: float | None = None) -> None:
        """Fill ``result`` with one run of ``result.spec``.

        ``result`` is the caller's, so that when the caller cancels (Ctrl-C)
        it keeps every request that had finished and the duration so far.
        """
        spec = result.spec
        closed = self._closed_part(spec.concurrency or 1)
        if spec.warmup and closed is not None:
            k, n = closed
            warm = range(k, spec.warmup, n)
            concurrency = max(1, min(share(spec.concurrency or 1, closed), len(warm)))
            await self._closed(
                concurrency, iter(warm), None, 0.0, lambda s: None, trio.CancelScope()
            )
        samples = result.samples
        opened_before = self.target.connections_opened
        self.observer.run_started(spec)
        origin = trio.current_time() if origin is None else origin
        await trio.sleep_until(origin)
        with trio.CancelScope() as stop:

            def record(sample: Sample) -> None:
                samples.append(sample)
                self.observer.request_done(sample)
                if (
                    not sample.ok
                    and len(samples) >= EARLY_STOP_FAILURES
                    and all(not s.ok for s in samples)
                ):
                    result.stopped = (
                        f"the first {len(samples)} requests all failed "
                        f"({sample.error}: {sample.message})"
                    )
                    stop.cancel()

            try:
                if spec.rate is not None or spec.trace_speed is not None:
                    offset = 0 if spec.trace_speed is not None else spec.warmup  # a trace's
                    await self._open(spec, origin, offset, record, stop)  # items are its own
                elif spec.mode == "sessions":
                    await play(self, spec, origin, record, stop)
                elif closed is not None:
                    k, n = closed
                    indices = (
                        range(k, spec.requests, n)
                        if spec.requests is not None
                        else itertools.count(k, n)
                    )
                    deadline = origin + spec.duration if spec.duration else None
                    await self._closed(
                        share(spec.concurrency or 1, closed),
                        (spec.warmup + i for i in indices),
                        deadline,
                        origin,
                        record,
                        stop,
                        ramp_up=spec.ramp_up,
                    )
            finally:
                result.duration = trio.current_time() - origin
                opened = self.target.connections_opened
                if opened is not None and opened_before is not None:
                    result.connections_opened = opened - opened_before

    def _closed_part(self, concurrency: int) -> tuple[int, int] | None:
        """This worker's slice of a closed loop, or None when it has no loop to run.

        Only ``min(workers, concurrency)`` workers take part: a worker with
        no share of the concurrency must not be given requests.
        """
        k, n = self.part
        active = min(n, concurrency)
        return (k, active) if k < active else None

    async def _closed(
        self,
        concurrency: int,
        indices: Iterator[int],
        deadline: float | None,
        origin: float,
        record: Callable[[Sample], None],
        stop: trio.CancelScope,
        ramp_up: float = 0.0,
    ) -> None:
        """``concurrency`` loops, each sending its next request when the last one ends.

        ``stop`` ends the loops when cancelled, even if a request never
        reached a checkpoint (a failure answered at once). With ``ramp_up``
        the loops start one after another, evenly over that many seconds.
        """
        limit = deadline if deadline is not None else math.inf

        async def loop(number: int) -> None:
            if ramp_up:
                await trio.sleep_until(origin + ramp_up * number / concurrency)
            for index in indices:  # shared: each index is taken by one loop
                if trio.current_time() >= limit or stop.cancel_called:
                    return
                await self._one(index, None, origin, record)

        async with trio.open_nursery() as nursery:
            for number in range(concurrency):
                nursery.start_soon(loop, number)

    async def _open(
        self,
        spec: RunSpec,
        origin: float,
        offset: int,
        record: Callable[[Sample], None],
        stop: trio.CancelScope,
    ) -> None:
        """Send each request at its scheduled time, whatever is still in flight.

        The schedule is the seeded one of ``--rate`` (bent by ``--ramp-up``),
        or a trace's own times divided by ``--trace-speed``; a trace's
        requests that share a session are played as one conversation
        (tracesessions.py).
        """
        if spec.trace_speed is not None:
            times = [(item.at or 0.0) / spec.trace_speed for item in self.workload.items]
            times = times[: spec.requests] if spec.requests is not None else times
            if spec.duration is not None:
                times = [at for at in times if at < spec.duration]
            mine = trace_share(times, self.workload.items, self.part)
        else:
            assert spec.rate is not None
            times = ramped(
                arrival_times(
                    spec.rate,
                    burstiness=spec.burstiness,
                    seed=spec.seed,
                    count=spec.requests,
                    until=spec.duration,
                ),
                spec.ramp_up,
            )
            mine = split(times, self.part[1])[self.part[0]]
        sessions = TraceSessions(self)
        async with trio.open_nursery() as nursery:
            for index, at in mine:
                await trio.sleep_until(origin + at)
                if stop.cancel_called:
                    return
                item = self.workload[offset + index]
                if item.session is None:
                    nursery.start_soon(self._one, offset + index, at, origin, record)
                else:
                    nursery.start_soon(sessions.turn(offset + index, item, at, origin, record))

    async def _one(
        self,
        index: int,
        scheduled: float | None,
        origin: float,
        record: Callable[[Sample], None],
    ) -> None:
        await self.send(index, self.workload[index], scheduled, origin, record)

    async def send(
        self,
        index: int,
        item: Item,
        scheduled: float | None,
        origin: float,
        record: Callable[[Sample], None],
    ) -> Measurement:
        """Send ``item``, record its sample; the measurement (what the server replied)."""
        measurement = Measurement(trio.current_time())
        self.observer.request_started()
        with trio.move_on_after(self.timeout or math.inf) as scope:
            await self.target.send(item, measurement)
        if scope.cancelled_caught:
            measurement.end = trio.current_time()
            measurement.fail(
                "timeout", f"no complete response within {self.timeout:g} s (--timeout)"
            )
        sample = measurement.sample(
            index, origin, item=item, tokenizer=self.tokenizer, scheduled_at=scheduled
        )
        sample.worker = self.part[0]
        sample.group, sample.session, sample.turn = item.group, item.session, item.turn
        record(sample)
        return measurement
