"""Sending a failed request again, for debugging a server.

The log keeps a failed request's endpoint and body exactly as sent (never
its headers). A replay sends those bytes unchanged -- to the server that
failed, or to another ``--base-url`` -- unless ``--model`` asks for another
model, which is the one field rewritten.
"""

from __future__ import annotations

import msgspec

from streamkit.errors import UsageError
from streamkit.store.records import FailedRequest


def replay_target(stored: FailedRequest, flag: str | None, configured: str | None) -> str:
    """Where to send it: ``--base-url``, else the server that failed, else the settings'."""
    original = stored.provider if stored.provider.startswith(("http://", "https://")) else None
    target = flag or original or configured
    if not target:
        raise UsageError(
            f"request {stored.id} went to the {stored.provider} model; give "
            "--base-url to replay it to a server"
        )
    return target


def replay_body(stored: FailedRequest, model: str | None) -> bytes:
    """The stored body, byte for byte; with ``model``, that field changed."""
    if model is None:
        return stored.body
    body = msgspec.json.decode(stored.body)
    body["model"] = model
    return msgspec.json.encode(body)
