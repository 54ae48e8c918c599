"""Assembling streamed tool-call fragments into whole calls, sans-IO."""

from __future__ import annotations

import msgspec

from streamkit.events import ToolCallDelta


class ToolCall(msgspec.Struct, frozen=True):
    """A complete tool call as the model sent it (arguments still JSON text)."""

    index: int
    id: str | None
    name: str | None
    arguments: str

    def problem(self) -> str | None:
        """Why the call cannot be run (no name, arguments not a JSON object), or None."""
        if not self.name:
            return "the tool call has no function name"
        try:
            value = msgspec.json.decode(self.arguments or "{}")
        except msgspec.DecodeError as exc:
            return f"the arguments are not valid JSON: {exc}"
        if not isinstance(value, dict):
            return "the arguments are not a JSON object"
        return None

    def parsed_arguments(self) -> dict:
        """The arguments as a dict (call only when ``problem()`` is None)."""
        return msgspec.json.decode(self.arguments or "{}")


class ToolCallAccumulator:
    """Merges ``ToolCallDelta`` fragments by ``index``.

    ``id`` and ``name`` are taken from the first fragment that carries them;
    a server that repeats them on later fragments does not get them
    concatenated. ``arguments`` are concatenated in arrival order, so calls
    whose fragments interleave are still assembled correctly.
    """

    def __init__(self) -> None:
        self._ids: dict[int, str | None] = {}
        self._names: dict[int, str | None] = {}
        self._arguments: dict[int, list[str]] = {}

    def add(self, delta: ToolCallDelta) -> None:
        index = delta.index
        if index not in self._arguments:
            self._arguments[index] = []
            self._ids[index] = None
            self._names[index] = None
        if delta.id and not self._ids[index]:
            self._ids[index] = delta.id
        if delta.name and not self._names[index]:
            self._names[index] = delta.name
        if delta.arguments:
            self._arguments[index].append(delta.arguments)

    def calls(self) -> list[ToolCall]:
        """The calls so far, ordered by index."""
        return [
            ToolCall(index, self._ids[index], self._names[index], "".join(parts))
            for index, parts in sorted(self._arguments.items())
        ]
