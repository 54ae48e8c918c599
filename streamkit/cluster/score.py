"""``score --jsonl --ray``: the score engine as on one machine, each text scored on a node.

``ClusterScorer`` is one more ``pipeline.score.Scorer``: ``score_jsonl`` reads
the groups, sorts them by context, writes them in input order and resumes
exactly as on one machine, while each text is scored by a ``ScoreWorker``
actor holding that node's scorer (the local GGUF model, loaded once a node,
or a server's). A context always goes to the same node, so that node reuses
the prefix it evaluated; a text whose node was lost is scored on another.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from types import ModuleType
from typing import Any

import trio

from streamkit.cluster.connect import Node, joined, live_nodes, placements
from streamkit.cluster.node_worker import TrioLoop
from streamkit.cluster.pool import call, lost_errors, start_actor
from streamkit.config import Settings
from streamkit.errors import ClusterError, ModelError
from streamkit.pipeline.batch_files import BatchFiles
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.score import Scorer, open_scorer, score_jsonl
from streamkit.protocol.scoring import ScoreResult


class ScoreWorker:
    """The actor: one node's scorer, open for the actor's life (plain methods only,
    so Ray runs them on threads; the async side is ``_Scoring``)."""

    def __init__(self, settings: Settings) -> None:
        import ray

        self.address = ray.util.get_node_ip_address()
        self.scoring = _Scoring(settings)
        self.loop = TrioLoop(self.scoring.open)

    def ready(self) -> str | None:
        """Why this node cannot score (a model file it lacks), if so."""
        problem = self.loop.problem
        return None if problem is None else f"on node {self.address}: {problem}"

    def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        top: int,
        ranges: Sequence[tuple[int, int]],
    ) -> tuple[ScoreResult, str | None]:
        """One text's scores, and why the node's server is not trusted, if it is not."""
        return self.loop.run(self.scoring.score, record_id, context, continuation, top, ranges)


class _Scoring:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.scorer: Scorer | None = None
        # One text at a time on a local model, as on one machine (its state is not shared).
        self.limiter = trio.CapacityLimiter(64 if settings.base_url else 1)

    async def open(self, nursery: trio.Nursery) -> None:
        self.scorer = await nursery.start(self._hold)

    async def _hold(self, task_status: trio.TaskStatus[Scorer]) -> None:
        async with open_scorer(self.settings) as scorer:
            task_status.started(scorer)
            await trio.sleep_forever()

    async def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        top: int,
        ranges: Sequence[tuple[int, int]],
    ) -> tuple[ScoreResult, str | None]:
        assert self.scorer is not None
        async with self.limiter:
            result = await self.scorer.score(
                record_id, context, continuation, top=top, ranges=ranges
            )
        return result, self.scorer.problem


class ClusterScorer:
    """A ``Scorer`` whose texts are scored by the cluster's ``ScoreWorker`` actors."""

    def __init__(self, ray: ModuleType, actors: list[Any]) -> None:
        self.ray = ray
        self.actors = actors
        self.problem: str | None = None
        self._lost = lost_errors(ray)

    async def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        *,
        top: int = 0,
        ranges: Sequence[tuple[int, int]] = (),
    ) -> ScoreResult:
        digest = hashlib.sha256(context.encode()).digest()
        while self.actors:
            actor = self.actors[int.from_bytes(digest[:4], "big") % len(self.actors)]
            try:
                result, problem = await call(
                    self.ray,
                    actor.score.remote(record_id, context, continuation, top, list(ranges)),
                )
            except self._lost:
                if actor in self.actors:
                    self.actors.remove(actor)  # its texts go to the others from now on
                continue
            self.problem = self.problem or problem
            return result
        raise ClusterError(
            "every Ray worker was lost; the texts not written are still to do (--resume)"
        )


async def score_on_cluster(
    address: str,
    workers: int | None,
    settings: Settings,
    top: int,
    files: BatchFiles,
    concurrency: int,
    interrupts: Interrupts,
) -> tuple[int, str | None]:
    """Score the batch on the cluster at ``address``: the exit code, and why the
    server's numbers are not trusted, if so."""
    with joined(address) as ray:
        nodes: list[Node] = placements(live_nodes(ray), workers)
        actors = [start_actor(ray, ScoreWorker, node, settings) for node in nodes]
        for actor in actors:
            problem = await call(ray, actor.ready.remote())
            if problem is not None:
                raise ModelError(problem)
        scorer = ClusterScorer(ray, actors)
        # A local model scores one text at a time a node: as many at once as nodes.
        at_once = concurrency if settings.base_url else len(actors)
        code = await score_jsonl(scorer, top, files, None, at_once, interrupts)
        return code, scorer.problem
