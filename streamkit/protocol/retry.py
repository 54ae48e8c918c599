"""When and how long to wait before retrying a request, sans-IO.

Connection failures and the statuses 408, 409, 429 and 5xx are retried with
exponential backoff and full jitter (a uniform delay between 0 and
``BASE * 2**attempt``, capped), unless the server said how long to wait in
``Retry-After`` (seconds or an HTTP date), which is honoured up to
``RETRY_AFTER_CAP``. Only requests that have not yet produced any output are
retried: text already shown is never silently regenerated.
"""

from __future__ import annotations

import random
from collections.abc import Callable

BACKOFF_BASE = 0.5  # seconds before the first retry, at most
BACKOFF_CAP = 8.0  # seconds, at most, of one jittered wait
RETRY_AFTER_CAP = 60.0  # seconds, at most, that a server's Retry-After makes us wait

RETRYABLE_STATUSES = frozenset({408, 409, 429})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (``now`` is UNIX time)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        import email.utils  # an HTTP date: rare, and the module costs start-up time

        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            return None
        seconds = when.timestamp() - now
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), RETRY_AFTER_CAP)


def backoff_delay(
    attempt: int,
    retry_after: float | None = None,
    uniform: Callable[[float, float], float] = random.uniform,
) -> float:
    """Seconds to wait before retry number ``attempt`` (0 for the first retry)."""
    if retry_after is not None:
        return retry_after
    return uniform(0.0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))
