"""Stop sequences over streamed text, sans-IO.

A local model produces text a token at a time; a stop sequence can span
several tokens. ``StopFilter`` holds back just the tail that could still turn
out to be the start of a stop sequence, so text is released as early as
possible and never includes (any part of) the stop sequence.
"""

from __future__ import annotations


class StopFilter:
    """Feed text pieces; get back the text that is safe to emit."""

    def __init__(self, stops: tuple[str, ...] | list[str]) -> None:
        self.stops = tuple(s for s in stops if s)
        self.stopped = False
        self._held = ""

    def feed(self, text: str) -> str:
        """Text that can be emitted now; sets ``stopped`` when a stop sequence appeared."""
        if self.stopped:
            return ""
        if not self.stops:
            return text
        buffer = self._held + text
        cut = min((i for i in (buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self._held = ""
            return buffer[:cut]
        keep = self._longest_partial_stop(buffer)
        self._held = buffer[len(buffer) - keep :] if keep else ""
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """At the end of generation: release what was held back."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _longest_partial_stop(self, buffer: str) -> int:
        """Length of the longest suffix of ``buffer`` that starts a stop sequence."""
        best = 0
        for stop in self.stops:
            for length in range(min(len(stop) - 1, len(buffer)), best, -1):
                if buffer.endswith(stop[:length]):
                    best = length
                    break
        return best
