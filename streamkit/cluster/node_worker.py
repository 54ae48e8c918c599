"""The actor each node runs: one long-lived Trio loop driving streamkit's own engine.

Ray calls an actor's methods on its own threads; streamkit's engine is Trio.
So the actor starts one Trio loop on a thread of its own when it is created,
opens the producer there once (a server connection pool, or the local GGUF
model loaded once a node), and every call hands its work to that loop with
``trio.from_thread`` and streams results back as they finish. A row's work
is ``pipeline.batch.LineWork``, exactly as on one machine.

The API key arrives in ``settings``, an argument of the actor's constructor
(kept in Ray's object store and control store), never on a command line, in
an environment or in a log.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import msgspec
import trio

from streamkit.cluster.backoff import ClusterGate
from streamkit.config import Settings
from streamkit.errors import StreamkitError, one_line
from streamkit.pipeline.batch import LineWork
from streamkit.protocol.ndjson import BatchRecord, InputProblem
from streamkit.providers.backend import Backend, open_backend

_encode = msgspec.json.Encoder().encode

Row = tuple[int, BatchRecord | InputProblem]  # (sequence number, the line's job)
RowResult = tuple[int, bytes, bool]  # (sequence number, the output line, failed)


class TrioLoop:
    """A Trio loop on its own thread, for the life of the actor.

    ``setup`` runs in the loop first (opening what the calls share); its
    ``StreamkitError`` is kept as ``problem`` instead of ending the actor, so
    the driver can say what went wrong on which node.
    """

    def __init__(self, setup: Callable[[trio.Nursery], Awaitable[None]]) -> None:
        self._setup = setup
        self._started = threading.Event()
        self.problem: str | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        self._nursery: trio.Nursery | None = None
        threading.Thread(
            target=trio.run, args=(self._main,), daemon=True, name="streamkit-trio"
        ).start()
        self._started.wait()

    async def _main(self) -> None:
        async with trio.open_nursery() as nursery:
            self._token = trio.lowlevel.current_trio_token()
            self._nursery = nursery
            try:
                await self._setup(nursery)
            except StreamkitError as exc:
                self.problem = exc.message
                return
            finally:
                self._started.set()
            await trio.sleep_forever()  # the loop lives as long as the actor

    def start_soon(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
        """Start ``fn(*args)`` as a task of the loop (from any other thread)."""
        assert self._nursery is not None
        trio.from_thread.run_sync(self._nursery.start_soon, fn, *args, trio_token=self._token)

    def run(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """``await fn(*args)`` in the loop, and its result (from any other thread)."""
        return trio.from_thread.run(fn, *args, trio_token=self._token)

    def run_sync(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` in the loop's thread (from any other thread)."""
        return trio.from_thread.run_sync(fn, *args, trio_token=self._token)

    def start(self, fn: Callable[..., Awaitable[Any]], *args: Any) -> Any:
        """Start ``fn(*args, task_status=...)`` as a task of the loop, and return what it
        reports once started (from any other thread)."""
        assert self._nursery is not None
        return trio.from_thread.run(self._nursery.start, fn, *args, trio_token=self._token)


class NodeWorker:
    """One node's worker: rows of a batch at ``share`` requests in flight at once.

    Its methods are all plain functions, which Ray runs on the actor's threads
    (a method written ``async def`` would make Ray run them all on an asyncio
    loop instead, where a blocking wait stops every call); the async work is
    ``_Rows``'s, on the Trio loop.
    """

    def __init__(self, settings: Settings, *, share: int, backoff: Any = None) -> None:
        import ray

        self.address = ray.util.get_node_ip_address()
        self.rows = _Rows(settings, share, backoff)
        self.loop = TrioLoop(self.rows.open)

    def ready(self) -> tuple[str, str | None]:
        """This node's address, and why it cannot work (a model file it lacks), if so."""
        problem = self.loop.problem
        return self.address, None if problem is None else f"on node {self.address}: {problem}"

    def run_rows(self, rows: list[Row]) -> Iterator[RowResult]:
        """Each row's output line, as rows finish (in any order)."""
        finished: queue.SimpleQueue[RowResult] = queue.SimpleQueue()
        for row in rows:
            self.loop.start_soon(self.rows.run, row, finished)
        for _ in rows:
            yield finished.get()


class _Rows:
    """The Trio side of ``NodeWorker``: the producer, held open, and the rows' work."""

    def __init__(self, settings: Settings, share: int, backoff: Any) -> None:
        self.settings = settings
        self.share = share
        self.backoff = backoff
        self.work: LineWork | None = None
        self.limiter: trio.CapacityLimiter | None = None

    async def open(self, nursery: trio.Nursery) -> None:
        self.limiter = trio.CapacityLimiter(self.share)
        gate = ClusterGate(self.backoff) if self.backoff is not None else None
        backend = await nursery.start(self._hold_backend, gate)
        self.work = LineWork(
            backend, model=self.settings.model, request_timeout=self.settings.timeout
        )

    async def _hold_backend(
        self, gate: ClusterGate | None, task_status: trio.TaskStatus[Backend]
    ) -> None:
        """Keep the producer open for the actor's life (the loop never ends before it)."""
        async with open_backend(self.settings, gate=gate) as backend:
            task_status.started(backend)
            await trio.sleep_forever()

    async def run(self, row: Row, finished: queue.SimpleQueue[RowResult]) -> None:
        seq, job = row
        assert self.work is not None and self.limiter is not None
        async with self.limiter:
            try:
                record = await self.work.run(job)
            except StreamkitError as exc:  # e.g. the local model failed for this line
                record = {
                    "id": job.id,
                    "error": {"type": exc.kind, "message": one_line(exc), "status": exc.status},
                }
        finished.put((seq, _encode(record) + b"\n", "error" in record))
