"""A server's request-validation error, as one line a user can act on, sans-IO.

FastAPI servers built on pydantic (llama-cpp-python's among them) answer a
body they cannot validate with a dump of every error, for every branch of
every union, with Python reprs and a stack frame -- under HTTP 500, which
looks transient but is not. This finds the first error and names the field
and the complaint: ``prompt: Input should be a valid string``.
"""

from __future__ import annotations

import re

_COUNT = re.compile(r"^\d+ validation errors?:")
_FIRST = re.compile(
    r"'loc': \((?P<loc>[^)]*)\), 'msg': (?:'(?P<msg1>[^']*)'|\"(?P<msg2>[^\"]*)\")"
    r"(?:, 'input': (?P<input>[^{}]*?)(?:, 'ctx'|\}))?"
)
# Union branches pydantic adds to a location: ('body', 'prompt', 'list[str]', 0).
_BRANCH = re.compile(r"^(str|int|float|bool|none|dict|list|tuple)$|[\[\]]")
_TOKEN_IDS = re.compile(r"^\[\s*\d+(\s*,\s*\d+)*\s*\]$")


def validation_summary(detail: str) -> str | None:
    """``field: message`` for a pydantic validation dump, else None."""
    if not _COUNT.match(detail):
        return None
    match = _FIRST.search(detail)
    if match is None:
        return None
    path = []
    for part in match["loc"].split(","):
        part = part.strip().strip("'\"")
        if not part or _BRANCH.search(part):
            break
        path.append(part)
    if path and path[0] == "body":
        path = path[1:]
    field = ".".join(path) or "body"
    summary = f"the server rejected the request's `{field}`: {match['msg1'] or match['msg2']}"
    if field == "prompt" and _TOKEN_IDS.match((match["input"] or "").strip()):
        summary += " (this server does not take the prompt as token ids)"
    return summary
