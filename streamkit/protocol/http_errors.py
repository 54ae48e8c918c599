"""What an HTTP failure says, in one line a user can act on, sans-IO.

The remote producer and bench's lean client share these, so a refused
connection or an error status reads the same whichever client met it.
"""

from __future__ import annotations

import msgspec

from streamkit.errors import (
    ConnectFailed,
    ProtocolError,
    StreamkitError,
    one_line,
)
from streamkit.protocol.validation import validation_summary

ERROR_BODY_LIMIT = 64 * 1024  # of an error answer's body, read for its message


def connection_error(url: str, cause: str, sent_any: bool) -> StreamkitError:
    """A connection that failed: before any output, a connect failure (safe to send
    again); after, a stream that broke (what arrived is kept)."""
    if sent_any:
        return ProtocolError(f"the connection to {url} broke mid-stream: {cause}")
    return ConnectFailed(f"cannot connect to {url}: {cause}", retryable=True)


def status_message(status: int, reason: str, where: str, raw: bytes) -> tuple[str, bool]:
    """The one line for an HTTP error answer (``where``: ``POST /v1/...``; ``raw``: its
    body), and whether the server rejected the request body itself (a validation error:
    sending it again won't help)."""
    detail = _error_detail(raw)
    rejected = validation_summary(detail)
    message = f"HTTP {status} {reason} from {where}".replace("  ", " ")
    if rejected or detail:
        message += f": {rejected or detail}"
    return message, rejected is not None


def _error_detail(raw: bytes) -> str:
    """The human part of an error body: ``error.message``, ``detail`` or text."""
    try:
        payload = msgspec.json.decode(raw)
    except msgspec.DecodeError:
        return one_line(raw.decode("utf-8", "replace"))[:300]
    if isinstance(payload, dict):
        error = payload.get("error")
        if isinstance(error, dict) and error.get("message"):
            return one_line(str(error["message"]))[:500]
        for key in ("error", "detail", "message"):
            if payload.get(key):
                return one_line(str(payload[key]))[:500]
    return one_line(raw.decode("utf-8", "replace"))[:300]
