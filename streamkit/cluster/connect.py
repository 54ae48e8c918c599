"""Joining a Ray cluster, and where its workers go.

``--ray ADDRESS`` joins a running cluster (``auto``: the one this machine
belongs to); ``--ray local`` starts a one-machine cluster inside this
process, for trying a run out or measuring what Ray costs. Without the
``ray`` extra, any ``--ray`` is one usage error.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

import msgspec

from streamkit.errors import ClusterError, UsageError, one_line

NAMESPACE = "streamkit"


def import_ray() -> ModuleType:
    """The ``ray`` module, or the usage error that says how to get it."""
    try:
        import ray
    except ImportError:
        raise UsageError("--ray needs Ray: pip install 'streamkit[ray]'") from None
    return ray


class Node(msgspec.Struct, frozen=True):
    """A live node of the cluster: Ray's id for it, and its address for reports."""

    id: str
    address: str


@contextmanager
def joined(address: str) -> Iterator[ModuleType]:
    """Ray, connected to the cluster at ``address`` for the ``with`` block."""
    ray = import_ray()
    # "local" is Ray's own word for a new cluster in this process (never one found running).
    options: dict[str, Any] = {
        "address": address,
        "namespace": NAMESPACE,
        "logging_level": logging.WARNING,
        "include_dashboard": False,
    }
    try:
        ray.init(**options)
    except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError...
        raise ClusterError(f"cannot join the Ray cluster at {address}: {one_line(exc)}") from None
    try:
        yield ray
    finally:
        ray.shutdown()


def live_nodes(ray: ModuleType) -> list[Node]:
    """The cluster's live nodes, the driver's own first (it also holds the backoff)."""
    here = ray.get_runtime_context().get_node_id()
    nodes = [Node(n["NodeID"], n["NodeManagerAddress"]) for n in ray.nodes() if n["Alive"]]
    return sorted(nodes, key=lambda node: (node.id != here, node.address, node.id))


def placements(nodes: list[Node], workers: int | None) -> list[Node]:
    """The node of each worker: one a node, or ``workers`` of them round the nodes."""
    if not nodes:
        raise ClusterError("the Ray cluster has no live node")
    count = workers or len(nodes)
    return [nodes[k % len(nodes)] for k in range(count)]


def shares(total: int, parts: int) -> list[int]:
    """``total`` split over ``parts`` exactly: the first ``total % parts`` get one more."""
    return [total // parts + (k < total % parts) for k in range(parts)]
