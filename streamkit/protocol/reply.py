"""The result of one streamed reply, accumulated from its events.

The pipeline feeds every batch to a ``Reply`` before the consumers see it, so
the command always knows what was received -- the partial text after a
Ctrl-C, a timeout or a server error included -- and which error, if any,
ended the stream.
"""

from __future__ import annotations

from streamkit.errors import StreamkitError, error_for_kind
from streamkit.events import (
    Event,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from streamkit.protocol.toolcalls import ToolCall, ToolCallAccumulator


class Reply:
    """Text, finish reason, usage, tool calls and error of one reply (choice 0)."""

    def __init__(self) -> None:
        self._parts: list[str] = []
        self.finish_reason: str | None = None
        self.usage: Usage | None = None
        self.error: StreamError | None = None
        self._tool_calls = ToolCallAccumulator()
        self.token_ids: list[int] = []  # of the text, when the producer gave them
        self._reasoning: list[str] = []  # the thinking, kept apart from the text
        self.opaque_reasoning: list[dict] = []  # sealed parts, as the provider sent them

    def add(self, batch: list[Event]) -> None:
        for event in batch:
            if type(event) is TextDelta:
                if event.choice == 0:
                    self._parts.append(event.text)
                    if event.token_ids:
                        self.token_ids.extend(event.token_ids)
            elif type(event) is ReasoningDelta:
                if event.choice == 0:
                    self._reasoning.append(event.text)
                    self.opaque_reasoning.extend(event.opaque)
            elif isinstance(event, ToolCallDelta):
                if event.choice == 0:
                    self._tool_calls.add(event)
            elif isinstance(event, Finish):
                if event.choice == 0:
                    self.finish_reason = event.reason
            elif isinstance(event, Usage):
                self.usage = event
            elif isinstance(event, StreamError) and self.error is None:
                self.error = event

    @property
    def text(self) -> str:
        return "".join(self._parts)

    def text_pieces(self, start: int = 0) -> list[str]:
        """The text's pieces from the ``start``-th on, as they came: a consumer that
        writes the text as it grows (the log) keeps its place in them instead of
        collecting every piece again."""
        return self._parts[start:]

    @property
    def reasoning(self) -> str:
        """The thinking that came before the answer ("" from a model that does not think)."""
        return "".join(self._reasoning)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return self._tool_calls.calls()

    def exception(self) -> StreamkitError | None:
        """The exception the stream's error stands for (``None`` if it ended well)."""
        if self.error is None:
            return None
        return error_for_kind(self.error.kind, self.error.message, self.error.status)
