"""Generation speed as the user sees it: time to first token and tokens/s.

A consumer like the printer, so it measures the stream as delivered, with the
pipeline's own cost included. Token counts come from the producer's ``usage``
when it reports one; otherwise text deltas are counted, which is said in the
report (a delta is usually, not always, one token). The server's request id
and rate-limit headers, when it sent them, end the line.
"""

from __future__ import annotations

import trio

from streamkit.events import Batch, ResponseInfo, TextDelta, Usage
from streamkit.protocol.wire import describe_headers


class StatsRecorder:
    def __init__(self) -> None:
        self.started = trio.current_time()
        self.first_token_at: float | None = None
        self.ended_at: float | None = None
        self.deltas = 0
        self.usage: Usage | None = None
        self.response: ResponseInfo | None = None

    def take(self, batch: Batch) -> None:
        """Inline consumer (``run_stream``): fed in the receiving task."""
        for event in batch:
            if type(event) is TextDelta:
                if self.first_token_at is None:
                    self.first_token_at = trio.current_time()
                self.deltas += 1
            elif isinstance(event, Usage):
                self.usage = event
            elif type(event) is ResponseInfo:
                self.response = event

    def end(self) -> None:
        self.ended_at = trio.current_time()

    def summary(self) -> str:
        """One line: TTFT, tokens, tokens/s after the first token."""
        line = self._speed()
        if self.response is not None and self.response.headers:
            line += "; " + describe_headers(self.response.headers)
        return line

    def _speed(self) -> str:
        if self.first_token_at is None or self.ended_at is None:
            return "no tokens received"
        ttft = self.first_token_at - self.started
        counted = self.usage is not None and self.usage.completion_tokens is not None
        tokens = self.usage.completion_tokens if counted else self.deltas
        unit = "tokens" if counted else "text deltas"
        span = self.ended_at - self.first_token_at
        rate = f"{(tokens - 1) / span:.1f}/s" if span > 0 and tokens > 1 else "n/a"
        return f"ttft {ttft * 1000:.0f} ms, {tokens} {unit}, {rate} after the first"
