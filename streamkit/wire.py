"""The exact bytes a request is sent as, and what the response says about it, sans-IO.

One encoding serves the remote producer and the failed-request log, so a
replay sends byte for byte what was sent the first time. From a response,
only the headers worth keeping are kept -- the request id a provider asks for
in a support ticket, rate limits, ``retry-after``, server time -- never
cookies or anything that could carry a credential.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from streamkit.request import GenerationRequest, openai_body

KEPT_HEADERS = frozenset({"x-request-id", "request-id", "retry-after", "openai-processing-ms"})
KEPT_PREFIXES = ("x-ratelimit-",)

_encode = msgspec.json.Encoder().encode


def request_bytes(
    request: GenerationRequest, schema_form: str = "json_schema"
) -> tuple[str, bytes]:
    """The endpoint path (relative to the base URL) and the JSON body, as sent."""
    path, body = openai_body(request, schema_form)
    return path, _encode(body)


def kept_headers(headers: Iterable[tuple[str, str]]) -> dict[str, str]:
    """The response headers that matter for debugging and rate limits, lower-cased."""
    kept = {}
    for name, value in headers:
        name = name.lower()
        if name in KEPT_HEADERS or name.startswith(KEPT_PREFIXES):
            kept[name] = value
    return kept


def describe_headers(headers: dict[str, str]) -> str:
    """``x-request-id=abc x-ratelimit-remaining-requests=99`` (request id first)."""
    names = sorted(headers, key=lambda n: (n not in ("x-request-id", "request-id"), n))
    return " ".join(f"{name}={headers[name]}" for name in names)
