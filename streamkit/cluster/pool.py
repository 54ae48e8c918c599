"""Starting one node's actor, and telling a lost worker from a failing one.

Ray's own retries are off for every actor and call (``max_restarts=0``,
``max_task_retries=0``): a retried streaming call is matched to its first
try by position, so rows that finish in another order would be lost or
doubled. Instead the driver sees the loss (``lost_errors``) and sends the
rows it has not received again, to a new actor.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import trio

from streamkit.cluster.connect import Node
from streamkit.errors import ClusterError, StreamkitError, one_line

CALLS_AT_ONCE = 4  # an actor's threads: its streaming calls, and ``ready`` beside them


def start_actor(ray: ModuleType, cls: type, node: Node, *args: Any, **kwargs: Any) -> Any:
    """An actor of ``cls`` on ``node`` (and only there), with Ray's retries off."""
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    remote = ray.remote(cls).options(
        num_cpus=0,
        max_restarts=0,
        max_task_retries=0,
        max_concurrency=CALLS_AT_ONCE,
        scheduling_strategy=NodeAffinitySchedulingStrategy(node.id, soft=False),
    )
    return remote.remote(*args, **kwargs)


def lost_errors(ray: ModuleType) -> tuple[type[BaseException], ...]:
    """What Ray raises when a worker, its node or an object it held is gone."""
    exc = ray.exceptions
    return (
        exc.RayActorError,
        exc.ObjectLostError,
        exc.NodeDiedError,
        exc.WorkerCrashedError,
        exc.OwnerDiedError,
        exc.TaskCancelledError,
        exc.ActorUnschedulableError,
    )


def node_alive(ray: ModuleType, node: Node) -> bool:
    return any(n["NodeID"] == node.id and n["Alive"] for n in ray.nodes())


async def call(ray: ModuleType, ref: Any) -> Any:
    """``ray.get(ref)`` off the Trio thread; a ``StreamkitError`` raised inside the call is
    raised here, any other failure inside it is a ``ClusterError``."""
    try:
        return await trio.to_thread.run_sync(ray.get, ref, abandon_on_cancel=True)
    except ray.exceptions.RayTaskError as exc:
        if isinstance(exc.cause, StreamkitError):  # the engine's own error, as on one machine
            raise exc.cause from None
        raise ClusterError(f"a Ray worker failed: {one_line(exc.cause)}") from None


async def next_item(ray: ModuleType, stream: Any) -> Any:
    """The next value of a streaming call (None at its end), off the Trio thread."""

    def take() -> Any:
        try:
            ref = next(stream)
        except StopIteration:
            return None
        return ray.get(ref)

    try:
        return await trio.to_thread.run_sync(take, abandon_on_cancel=True)
    except ray.exceptions.RayTaskError as exc:
        raise ClusterError(f"a Ray worker failed: {one_line(exc.cause)}") from None
