"""The names the model sees for MCP tools: the server's own where possible.

Providers restrict function names (OpenAI: ``^[a-zA-Z0-9_-]{1,64}$``), and
two servers may both offer ``search``. A tool keeps its own name when that
name is valid and no other offered tool has it; otherwise it becomes
``SERVER__TOOL``, with other characters replaced by ``_``, cut to the limit
with a short hash of the exact pair so that two long names stay apart. The
model's name maps back to the exact server and tool through the table this
returns, never by parsing the name.
"""

from __future__ import annotations

import hashlib
import re
from collections import Counter
from collections.abc import Collection, Iterable

NAME_LIMIT = 64
_VALID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_INVALID_CHARACTER = re.compile(r"[^A-Za-z0-9_-]")
_HASH_LENGTH = 8


def exposed_names(
    tools: Iterable[tuple[str, str]], taken: Collection[str] = ()
) -> dict[str, tuple[str, str]]:
    """``{model-facing name: (server, tool)}`` for the ``(server, tool)`` pairs.

    ``taken`` holds names already offered by other tools (built-ins, the
    config's): an MCP tool never shadows one of them.
    """
    pairs = list(dict.fromkeys(tools))
    counts = Counter(tool for _, tool in pairs)
    names: dict[str, tuple[str, str]] = {}
    for server, tool in pairs:
        if _VALID.match(tool) and counts[tool] == 1 and tool not in taken:
            names[tool] = (server, tool)
    for server, tool in pairs:
        if (server, tool) in names.values():
            continue
        name = _namespaced(server, tool)
        if name in names or name in taken:
            name = _hashed(name, server, tool)
        names[name] = (server, tool)
    return names


def _namespaced(server: str, tool: str) -> str:
    name = _INVALID_CHARACTER.sub("_", f"{server}__{tool}")
    return name if len(name) <= NAME_LIMIT else _hashed(name, server, tool)


def _hashed(name: str, server: str, tool: str) -> str:
    digest = hashlib.sha256(f"{server}\0{tool}".encode()).hexdigest()[:_HASH_LENGTH]
    return f"{name[: NAME_LIMIT - _HASH_LENGTH - 1]}_{digest}"
