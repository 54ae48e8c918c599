"""``chat --jsonl --ray`` / ``complete --jsonl --ray``: a batch over a cluster's nodes.

::

    reader ──► [rows] ──► lane × 2 per node ══ Ray ══► NodeWorker (Trio, LineWork)
      └─ a window slot per row            │ (seq, line) as each row finishes
                                          ▼
                     writer: journal at once, reorder, output ── frees the slot

The driver reads the input lazily (a window of rows between read and
written, as on one machine), is the only writer of the output and of the
journal, and keeps the reorder buffer. Rows go out in shards of a few dozen;
each node's actor runs ``pipeline.batch.LineWork`` with its share of
``--concurrency`` and streams each row back as it finishes.

Nothing lost, nothing twice: when a worker or its node dies (Ray's errors),
the rows of its shards not yet received go back in the queue, with the same
idempotency key, for another actor; a replacement actor is started on the
node while it lives. A row received twice is written once.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import ModuleType
from typing import Any

import msgspec
import trio

from streamkit.cluster.backoff import Backoff
from streamkit.cluster.connect import Node, joined, live_nodes, placements, shares
from streamkit.cluster.journal import Journal
from streamkit.cluster.node_worker import NodeWorker, Row, RowResult
from streamkit.cluster.pool import call, lost_errors, next_item, node_alive, start_actor
from streamkit.config import Settings
from streamkit.errors import ClusterError, ModelError
from streamkit.pipeline.batch import BatchSummary
from streamkit.pipeline.batch_files import BatchFiles, LineOutput
from streamkit.pipeline.jsonl_lines import LineReader
from streamkit.pipeline.line_records import error_record
from streamkit.protocol.ndjson import BatchIds, BatchRecord, InputProblem, id_key, parse_record
from streamkit.request import GenerationOptions

SHARD_ROWS = 32  # rows a call carries: few enough that a lost node costs little
LANES = 2  # calls each node has at once: one working, the next one ready behind it
REPLACEMENTS = 3  # new actors a node gets after losing one, before it is given up

_encode = msgspec.json.Encoder().encode


class _End(msgspec.Struct, frozen=True):
    """From the reader to the writer: the input ended after ``rows`` rows."""

    rows: int


class ClusterBatch:
    """One JSONL batch, run by one ``NodeWorker`` actor per placement."""

    def __init__(
        self,
        ray: ModuleType,
        settings: Settings,
        output: LineOutput,
        journal: Journal | None,
        *,
        kind: str,
        defaults: GenerationOptions,
        concurrency: int,
        ordered: bool,
        skip_ids: frozenset[bytes],
        batch_name: str,
        workers: int | None,
    ) -> None:
        self.ray = ray
        self.settings = settings
        self.output = output
        self.journal = journal
        self.kind = kind
        self.defaults = defaults
        self.ordered = ordered
        self.skip_ids = skip_ids
        self.batch_name = batch_name
        nodes = placements(live_nodes(ray), workers)
        self.slots = [
            (node, share)
            for node, share in zip(nodes, shares(concurrency, len(nodes)), strict=True)
            if share
        ]
        self.window = max(4 * concurrency, 2 * LANES * SHARD_ROWS * len(self.slots))
        self.summary = BatchSummary()
        self.live = len(self.slots)
        self._done: set[int] = set()
        self._lost = lost_errors(ray)

    async def run(self, source: trio.abc.ReceiveStream) -> BatchSummary:
        backoff = (
            self.ray.remote(Backoff)
            .options(num_cpus=0, scheduling_strategy=_here(self.ray))
            .remote()
        )
        free = trio.Semaphore(self.window)
        rows_send, rows_receive = trio.open_memory_channel[Row](self.window)
        results_send, results_receive = trio.open_memory_channel[RowResult | _End](self.window)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._read, source, rows_send.clone(), results_send.clone(), free)
            for node, share in self.slots:
                nursery.start_soon(
                    self._serve,
                    node,
                    share,
                    backoff,
                    rows_send.clone(),
                    rows_receive.clone(),
                    results_send.clone(),
                )
            await self._write(results_receive, free)
            nursery.cancel_scope.cancel()  # every row is written: the lanes wait for none
        return self.summary

    async def _read(
        self,
        source: trio.abc.ReceiveStream,
        rows: trio.MemorySendChannel[Row],
        results: trio.MemorySendChannel[RowResult | _End],
        free: trio.Semaphore,
    ) -> None:
        reader = LineReader(source)
        ids = BatchIds()
        answered = self.journal.answered if self.journal is not None else {}
        seq = 0
        async with rows, results:
            while (numbered := await reader.next_line()) is not None:
                number, line = numbered
                job = parse_record(
                    number, line, kind=self.kind, model=self.settings.model, defaults=self.defaults
                )
                taken = ids.duplicate(number, job.id)
                if taken is not None and isinstance(job, BatchRecord):
                    job = InputProblem(number, job.id, taken)
                key = id_key(job.id)
                if key in self.skip_ids:
                    self.summary.skipped += 1
                    continue
                await free.acquire()
                if key in answered:  # answered before the driver stopped: not asked again
                    await results.send((seq, answered[key], False))
                elif isinstance(job, InputProblem):
                    record = error_record(job.id, "input", job.message, None)
                    await results.send((seq, _encode(record) + b"\n", True))
                else:
                    await rows.send((seq, self._keyed(job)))
                seq += 1
            await results.send(_End(seq))

    def _keyed(self, job: BatchRecord) -> BatchRecord:
        """``job`` with its idempotency key: its own, else one made of the batch and id,
        the same however often the row is sent (and in a ``--resume``)."""
        if job.request.idempotency_key is not None:
            return job
        digest = hashlib.sha256(self.batch_name.encode() + b"\0" + id_key(job.id))
        request = msgspec.structs.replace(job.request, idempotency_key=digest.hexdigest()[:32])
        return msgspec.structs.replace(job, request=request)

    async def _serve(
        self,
        node: Node,
        share: int,
        backoff: Any,
        requeue: trio.MemorySendChannel[Row],
        rows: trio.MemoryReceiveChannel[Row],
        results: trio.MemorySendChannel[RowResult | _End],
    ) -> None:
        """Keep an actor working on ``node`` while the node lives (a few new ones at most)."""
        async with requeue, rows, results:
            for _ in range(1 + REPLACEMENTS):
                if not node_alive(self.ray, node):
                    break
                actor = start_actor(
                    self.ray, NodeWorker, node, self.settings, share=share, backoff=backoff
                )
                try:
                    _, problem = await call(self.ray, actor.ready.remote())
                except self._lost:
                    continue
                if problem is not None:
                    raise ModelError(problem)
                async with trio.open_nursery() as lanes:
                    for _ in range(LANES):
                        lanes.start_soon(self._lane, actor, requeue, rows, results)
            self.live -= 1
            if self.live == 0:
                raise ClusterError(
                    "every Ray worker was lost; the rows not written are still to do (--resume)"
                )

    async def _lane(
        self,
        actor: Any,
        requeue: trio.MemorySendChannel[Row],
        rows: trio.MemoryReceiveChannel[Row],
        results: trio.MemorySendChannel[RowResult | _End],
    ) -> None:
        """Shards to ``actor`` until it is lost; then its unreceived rows go back."""
        while True:
            shard = [await rows.receive()]
            while len(shard) < SHARD_ROWS:
                try:
                    shard.append(rows.receive_nowait())
                except trio.WouldBlock:
                    break
            received: set[int] = set()
            try:
                stream = actor.run_rows.options(num_returns="streaming").remote(shard)
                while (result := await next_item(self.ray, stream)) is not None:
                    received.add(result[0])
                    await results.send(result)
            except self._lost:
                for row in shard:
                    if row[0] not in received:
                        requeue.send_nowait(row)  # room: rows never outnumber the window
                self.ray.kill(actor)  # the other lane's call ends too, and re-queues
                return

    async def _write(
        self, results: trio.MemoryReceiveChannel[RowResult | _End], free: trio.Semaphore
    ) -> None:
        parked: dict[int, tuple[bytes, bool]] = {}
        next_seq = 0
        rows: int | None = None
        try:
            async with results:
                async for item in results:
                    if isinstance(item, _End):
                        rows = item.rows
                    else:
                        seq, line, failed = item
                        if seq in self._done:
                            continue  # sent again after a loss, and answered both times
                        self._done.add(seq)
                        if self.journal is not None:
                            self.journal.append(line)
                        if not self.ordered:
                            self._emit(line, failed, free)
                        else:
                            parked[seq] = (line, failed)
                            while next_seq in parked:
                                self._emit(*parked.pop(next_seq), free)
                                next_seq += 1
                    if rows is not None and len(self._done) == rows:
                        return
        finally:
            # Interrupted: finished rows still waiting for an earlier one are written
            # anyway (out of order) rather than left to the journal alone.
            for seq in sorted(parked) if not self.output.failed else ():
                self._emit(*parked.pop(seq), free)

    def _emit(self, line: bytes, failed: bool, free: trio.Semaphore) -> None:
        self.summary.total += 1
        self.summary.failed += failed
        self.output.write(line)
        free.release()


async def run_on_cluster(
    address: str,
    workers: int | None,
    settings: Settings,
    files: BatchFiles,
    output_path: Path | None,
    *,
    kind: str,
    defaults: GenerationOptions,
    concurrency: int,
    ordered: bool,
    resume: bool,
    batch_name: str,
) -> BatchSummary:
    """Join the cluster at ``address`` and run the batch there. The journal of a run
    that did not write every row (Ctrl-C, a crash) stays for ``--resume``."""
    journal = Journal(output_path, resume=resume) if output_path is not None else None
    complete = False
    try:
        with joined(address) as ray:
            batch = ClusterBatch(
                ray,
                settings,
                files.output,
                journal,
                kind=kind,
                defaults=defaults,
                concurrency=concurrency,
                ordered=ordered,
                skip_ids=files.skip_ids,
                batch_name=batch_name,
                workers=workers,
            )
            summary = await batch.run(files.source)
            complete = True
    finally:
        if journal is not None:
            journal.close(complete=complete)
    return summary


def _here(ray: ModuleType) -> Any:
    """Scheduling on the driver's own node: where the backoff's one clock lives."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    return NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
