"""The llama.cpp grammar (GBNF) that holds a local model to a JSON Schema.

llama-cpp-python's converter does the work, with two repairs found by
running SmolLM2 under it: its ``char`` rule admits raw control characters
(a newline inside a string, which no JSON parser accepts), and it spells a
bounded repetition as one nested optional group per repeat (a string
``maxLength`` of 1000 is 1000 nested groups). Here ``char`` excludes control
characters, and strings without a ``maxLength`` get llama.cpp's own
``{0,N}`` repetition, so that a model looping inside a string still stops.
Arrays are bounded through the schema (``bounded_schema``).
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from streamkit.protocol.structured import DEFAULT_MAX_STRING, bounded_schema

_CHAR_RULE = 'char ::= [^"\\\\] |'
_JSON_CHAR_RULE = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'
_OPEN_STRING = re.compile(r"\bchar\*")


def json_grammar(schema: dict[str, Any], max_string: int = DEFAULT_MAX_STRING) -> str:
    """GBNF accepting exactly the JSON documents of ``schema`` (strings at most
    ``max_string`` characters where the schema sets no ``maxLength``)."""
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    gbnf = json_schema_to_gbnf(msgspec.json.encode(bounded_schema(schema)).decode())
    gbnf = gbnf.replace(_CHAR_RULE, _JSON_CHAR_RULE)
    return _OPEN_STRING.sub(f"char{{0,{max_string}}}", gbnf)
