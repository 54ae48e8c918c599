"""Assembling streamed tool-call fragments into whole calls, sans-IO."""

from __future__ import annotations

import msgspec

from streamkit.events import AssembledToolCall, Batch, Finish, StreamError, ToolCallDelta


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


class ToolCallAssembler:
    """Adds the whole calls to a stream of batches: one ``AssembledToolCall`` per call.

    It runs once per reply in the pipeline, between every producer and every
    consumer, so that the remote and the local producers alike need emit only
    fragments and every consumer sees the same whole calls. A choice's calls go
    out just before its ``Finish``; calls still open when the stream fails go
    out just before the ``StreamError`` (which stays the last event), and
    ``close`` returns any left when the stream simply ended. Fragments pass
    through unchanged, and a batch that needs nothing added is returned as is.
    """

    def __init__(self) -> None:
        self._open: dict[int, ToolCallAccumulator] = {}  # by choice

    def feed(self, batch: Batch) -> Batch:
        """``batch`` with the calls it completes inserted (a new list if any)."""
        out: Batch | None = None
        for position, event in enumerate(batch):
            kind = type(event)
            if kind is ToolCallDelta:
                accumulator = self._open.get(event.choice)
                if accumulator is None:
                    accumulator = self._open[event.choice] = ToolCallAccumulator()
                accumulator.add(event)
            elif self._open and (kind is Finish or kind is StreamError):
                if out is None:
                    out = batch[:position]
                out.extend(self._take(event.choice if kind is Finish else None))
            if out is not None:
                out.append(event)
        return batch if out is None else out

    def close(self) -> Batch:
        """End of stream: the calls of choices that never finished."""
        return self._take(None)

    def _take(self, choice: int | None) -> Batch:
        """The assembled calls of ``choice`` (of every choice if None), forgotten here."""
        choices = sorted(self._open) if choice is None else [choice]
        out: Batch = []
        for number in choices:
            accumulator = self._open.pop(number, None)
            if accumulator is None:
                continue
            for call in accumulator.calls():
                problem = call.problem()
                out.append(
                    AssembledToolCall(
                        call.index,
                        call.id,
                        call.name,
                        call.arguments,
                        problem is None,
                        problem,
                        number,
                    )
                )
        return out
