"""How ``logs`` shows failed requests and what servers answered (kept out of logs.py)."""

from __future__ import annotations

import datetime
import sys
from typing import Any

import msgspec

from streamkit.errors import one_line
from streamkit.protocol.urls import join_url
from streamkit.protocol.wire import describe_headers
from streamkit.store.records import FailedRequest, StoredMessage


def print_failed(requests: list[FailedRequest], *, as_json: bool) -> None:
    """``logs list --failed``: one line (or JSON object) per failed request."""
    for item in requests:
        if as_json:
            record: dict[str, Any] = msgspec.structs.asdict(item)
            record["body"] = msgspec.json.decode(item.body)
            record["response_headers"] = msgspec.json.decode(item.response_headers or "{}")
            sys.stdout.buffer.write(msgspec.json.encode(record) + b"\n")
            continue
        when = datetime.datetime.fromtimestamp(item.failed_at).strftime("%Y-%m-%d %H:%M")
        status = f"HTTP {item.http_status}" if item.http_status else "no answer"
        took = f"{item.duration_s:.1f} s" if item.duration_s is not None else "-"
        where = (
            join_url(item.provider, item.endpoint)
            if item.provider.startswith(("http://", "https://"))
            else f"{item.provider}/{item.endpoint}"
        )
        print(
            f"{item.id:>5}  {when}  {status:<9}  {took:>7}  {item.model or '-':<12}  "
            f"{where}  {one_line(item.error or '', 60)}"
        )


def response_line(request_id: int, response: tuple[int, dict[str, str]]) -> str:
    """``logs show``: the server's answer to the request behind a reply."""
    status, headers = response
    line = f"[request {request_id}: HTTP {status}"
    return line + (f"; {describe_headers(headers)}]" if headers else "]")


def with_response(
    message: StoredMessage, response: tuple[int, dict[str, str]] | None
) -> dict[str, Any]:
    """A message for ``logs show --json``, with the server's answer when there was one."""
    record = msgspec.structs.asdict(message)
    if response is not None:
        record["http_status"], record["response_headers"] = response
    return record
