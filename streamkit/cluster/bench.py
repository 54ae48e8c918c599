"""``bench --ray``: one run spread over a cluster's nodes, samples merged exactly.

As with ``--workers`` (``loadtest.workers``), worker k of n runs the k-th
slice of the same run (``Runner`` with ``part=(k, n)``: every n-th request,
its share of the concurrency, every n-th arrival of the one seeded
schedule), so concurrency, request count and rate split exactly. Every
worker first sets up (workload, tokenizer, connection) and says so; only
then does the driver name one start time, a wall-clock instant each node
turns into its own monotonic clock, so they start from one barrier. Every
raw sample comes back, so percentiles are computed from all of them; the
report names each node and its share.
"""

from __future__ import annotations

import queue
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import msgspec
import trio

from streamkit.cluster.connect import Node, joined, live_nodes, placements
from streamkit.cluster.node_worker import TrioLoop
from streamkit.cluster.pool import call, lost_errors, next_item, start_actor
from streamkit.config import Settings
from streamkit.errors import ClusterError, StreamkitError, one_line
from streamkit.loadtest.bench import run_bench
from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.runner import Observer, Runner, RunResult, RunSpec
from streamkit.loadtest.setup import BenchConfig, build_workload, open_target, tokenizer_for
from streamkit.loadtest.workers import START_MARGIN_S
from streamkit.pipeline.interrupts import Interrupts


class _End(msgspec.Struct, frozen=True):
    """A worker's last item: how long its slice ran, and why it stopped early, if so."""

    duration: float
    stopped: str | None


class BenchWorker:
    """The actor: one node's slice of each run, on a Trio loop of its own (plain
    methods only, so Ray runs them on threads; the async side is ``_Slices``)."""

    def __init__(self, settings: Settings) -> None:
        import ray

        node = ray.get_runtime_context().get_node_id()[:8]
        self.slices = _Slices(settings, f"{ray.util.get_node_ip_address()} ({node})")
        self.loop = TrioLoop(_nothing)

    def prepare(self, config: BenchConfig, spec: RunSpec, part: tuple[int, int]) -> str | None:
        """Set up slice ``part`` of the run and wait for ``run``; why it cannot, if so."""
        return self.loop.start(self.slices.run, config, spec, part)

    def run(self, start_at: float) -> Iterator[Sample | _End]:
        """Start the prepared slice at wall-clock ``start_at``; stream its samples."""
        self.slices.start_at = start_at
        self.loop.run_sync(self.slices.go.set)
        while not isinstance(item := self.slices.results.get(), _End):
            yield item
        yield item


class _Slices:
    """The Trio side of ``BenchWorker``."""

    def __init__(self, settings: Settings, node: str) -> None:
        self.settings = settings
        self.node = node
        self.go = trio.Event()
        self.start_at = 0.0
        self.results: queue.SimpleQueue[Sample | _End] = queue.SimpleQueue()

    async def run(
        self,
        config: BenchConfig,
        spec: RunSpec,
        part: tuple[int, int],
        task_status: trio.TaskStatus[str | None],
    ) -> None:
        """Set up (reporting None, or why not), wait for ``go``, run the slice."""
        self.go = trio.Event()
        try:
            tokenizer = await trio.to_thread.run_sync(tokenizer_for, config, self.settings)
            total = (spec.requests or 0) + spec.warmup
            workload = await trio.to_thread.run_sync(
                build_workload, config, self.settings, total or 256, tokenizer
            )
        except StreamkitError as exc:
            task_status.started(f"on node {self.node}: {exc.message}")
            return
        result = RunResult(spec)
        async with open_target(self.settings) as target:
            runner = Runner(
                target,
                workload,
                tokenizer=tokenizer,
                timeout=self.settings.timeout,
                observer=_Reporter(self.results),
                part=part,
            )
            task_status.started(None)
            await self.go.wait()
            origin = trio.current_time() + (self.start_at - time.time())
            await runner.run(result, origin=origin)
        self.results.put(_End(result.duration, result.stopped))


async def _nothing(nursery: trio.Nursery) -> None:
    """A bench worker opens nothing up front: each run sets itself up."""


class _Reporter:
    """The runner's observer on a node: each sample goes to the driver as it is made."""

    def __init__(self, results: queue.SimpleQueue[Sample | _End]) -> None:
        self.results = results

    def run_started(self, spec: RunSpec) -> None:
        pass

    def request_started(self) -> None:
        pass

    def request_done(self, sample: Sample) -> None:
        self.results.put(sample)


class ClusterBench:
    """The driver: each run of a bench over one ``BenchWorker`` a placement."""

    def __init__(
        self,
        ray: ModuleType,
        config: BenchConfig,
        settings: Settings,
        observer: Observer | None,
        nodes: list[Node],
    ) -> None:
        self.ray = ray
        self.config = config
        self.observer = observer
        self.actors = [start_actor(ray, BenchWorker, node, settings) for node in nodes]
        self.names = [f"{node.address} ({node.id[:8]})" for node in nodes]

    async def run(self, result: RunResult) -> None:
        if self.observer is not None:
            self.observer.run_started(result.spec)
        count = len(self.actors)
        result.workers = count
        problems: list[str | None] = [None] * count
        try:
            async with trio.open_nursery() as nursery:
                for k, actor in enumerate(self.actors):
                    nursery.start_soon(self._prepare, actor, result.spec, (k, count), problems)
            if any(problems):
                raise StreamkitError(next(p for p in problems if p))
            start_at = time.time() + START_MARGIN_S  # the barrier: every node is set up
            async with trio.open_nursery() as nursery:
                for name, actor in zip(self.names, self.actors, strict=True):
                    stream = actor.run.options(num_returns="streaming").remote(start_at)
                    nursery.start_soon(self._collect, name, stream, result)
        except lost_errors(self.ray) as exc:
            raise ClusterError(f"a Ray worker was lost mid-run: {one_line(exc)}") from None
        finally:
            result.samples.sort(key=lambda s: s.index)

    async def _prepare(
        self, actor: Any, spec: RunSpec, part: tuple[int, int], problems: list[str | None]
    ) -> None:
        problems[part[0]] = await call(self.ray, actor.prepare.remote(self.config, spec, part))

    async def _collect(self, name: str, stream: Any, result: RunResult) -> None:
        result.nodes = {**result.nodes, name: result.nodes.get(name, 0)}
        while (item := await next_item(self.ray, stream)) is not None:
            if isinstance(item, _End):
                result.duration = max(result.duration, item.duration)
                result.stopped = result.stopped or item.stopped
                continue
            result.samples.append(item)
            result.nodes[name] += 1
            if self.observer is not None:
                self.observer.request_done(item)


async def run_bench_on_cluster(
    address: str,
    workers: int | None,
    config: BenchConfig,
    settings: Settings,
    interrupts: Interrupts,
) -> int:
    """``bench --ray``: every run over the cluster at ``address``; the exit code."""
    with joined(address) as ray:
        nodes = placements(live_nodes(ray), workers)
        config = msgspec.structs.replace(config, workers=len(nodes))
        return await run_bench(
            config,
            settings,
            interrupts,
            spread=lambda observer: ClusterBench(ray, config, settings, observer, nodes).run,
        )
