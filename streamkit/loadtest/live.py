"""The live view on stderr while a benchmark runs, for people watching a terminal.

Shown only when stderr is a terminal. It is redrawn four times a second by
rich's own thread from counters the runner updates, so the event loop pays a
few attribute updates per request and nothing per chunk.
"""

from __future__ import annotations

import statistics
import time

from rich.console import Console
from rich.live import Live
from rich.text import Text

from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.runner import RunSpec


class LiveView:
    """Requests done / in flight / failed, tokens/s, current p50 TTFT, ETA."""

    def __init__(self, console: Console | None = None) -> None:
        self._live = Live(
            self, console=console or Console(stderr=True), refresh_per_second=4, transient=True
        )
        self.spec: RunSpec | None = None
        self.run_number = 0
        self._reset()

    def _reset(self) -> None:
        self.started = time.monotonic()
        self.done = 0
        self.failed = 0
        self.in_flight = 0
        self.tokens = 0
        self.ttfts: list[float] = []

    def __enter__(self) -> LiveView:
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._live.stop()

    def run_started(self, spec: RunSpec) -> None:
        self.spec = spec
        self.run_number += 1
        self._reset()

    def request_started(self) -> None:
        self.in_flight += 1

    def request_done(self, sample: Sample) -> None:
        self.in_flight = max(0, self.in_flight - 1)  # worker processes report no starts
        self.done += 1
        if sample.ok:
            self.tokens += sample.output_tokens or 0
            if sample.ttft is not None:
                self.ttfts.append(sample.ttft)
        else:
            self.failed += 1

    def __rich__(self) -> Text:
        spec = self.spec
        if spec is None:
            return Text("preparing…")
        elapsed = max(time.monotonic() - self.started, 1e-9)
        if spec.rate is not None:
            load = f"rate {spec.rate:g}/s"
        elif spec.trace_speed is not None:
            load = f"trace x{spec.trace_speed:g}"
        elif spec.mode == "sessions":
            load = f"{spec.concurrency} users"
        else:
            load = f"concurrency {spec.concurrency}"
        total = f"/{spec.requests}" if spec.requests else ""
        ttft = f"{statistics.median(self.ttfts[-1000:]) * 1000:.0f} ms" if self.ttfts else "-"
        if spec.requests and self.done:
            eta = f"{(spec.requests - self.done) * elapsed / self.done:.0f} s"
        elif spec.duration:
            eta = f"{max(0.0, spec.duration - elapsed):.0f} s"
        else:
            eta = "-"
        return Text(
            f"run {self.run_number} ({spec.mode}, {load}): {self.done}{total} done, "
            f"{self.in_flight} in flight, {self.failed} failed, "
            f"{self.tokens / elapsed:.0f} tok/s, p50 TTFT {ttft}, ETA {eta}"
        )
