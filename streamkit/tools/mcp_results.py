"""An MCP tool result, as the tool message the model gets and the record the log keeps.

Pure functions over the result as JSON (the wire form, ``isError`` and
``structuredContent`` by their MCP names), so that they are tested by
feeding dicts:

* text blocks are the message, one after the other;
* ``structuredContent`` is the message, as JSON, when there is no text (a
  server that sends both sends the same data twice: the spec asks for its
  JSON as a text block too);
* images, audio and binary resources are described by type and size -- a
  model cannot read base64, and it would fill the context -- and the log
  keeps the whole result, data included;
* ``isError`` makes it an error result (``status`` ``error``).
"""

from __future__ import annotations

import binascii
import json
from typing import Any

import msgspec


class McpAnswer(msgspec.Struct, frozen=True):
    content: str
    record: str | None  # the whole result as JSON, when the message leaves data out
    is_error: bool


def tool_message(result: dict[str, Any]) -> McpAnswer:
    """What the model and the log get of one ``tools/call`` result."""
    parts: list[str] = []
    texts = 0
    binary = False
    for block in result.get("content") or []:
        text, is_text, is_binary = _block(block)
        parts.append(text)
        texts += is_text
        binary = binary or is_binary
    structured = result.get("structuredContent")
    if structured is not None and not texts:
        parts.insert(0, json.dumps(structured, ensure_ascii=False))
    record = json.dumps(result, ensure_ascii=False) if binary else None
    return McpAnswer("\n".join(parts), record, bool(result.get("isError")))


def _block(block: dict[str, Any]) -> tuple[str, bool, bool]:
    """One content block: its text, whether it is text, whether data was left out."""
    kind = block.get("type")
    if kind == "text":
        return str(block.get("text", "")), True, False
    if kind in ("image", "audio"):
        size = _decoded_size(block.get("data", ""))
        return f"[{kind} {block.get('mimeType', 'of unknown type')}, {size} bytes]", False, True
    if kind == "resource_link":
        return f"[resource {block.get('name', '')} at {block.get('uri', '')}]", False, False
    if kind == "resource":
        resource = block.get("resource") or {}
        uri = resource.get("uri", "")
        if "text" in resource:
            return f"[resource {uri}]\n{resource['text']}", True, False
        size = _decoded_size(resource.get("blob", ""))
        mime = resource.get("mimeType", "of unknown type")
        return f"[resource {uri}, {mime}, {size} bytes]", False, True
    return f"[{kind or 'unknown'} content]", False, True


def _decoded_size(data: str) -> int:
    try:
        return len(binascii.a2b_base64(data))
    except (binascii.Error, ValueError):
        return len(data)
