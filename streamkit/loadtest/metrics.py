"""Per-request samples and what a run's figures are computed from them.

Definitions follow ``vllm bench serve`` (and agree with GuideLLM and AIPerf):

* TTFT: from sending the request to the first chunk carrying content of any
  kind, a reasoning model's thinking included (vLLM's definition); TTFA,
  time to first answer: to the first chunk of the answer itself.
* ITL: every gap between successive content chunks of a request, pooled over
  all requests (chunks that arrived in the same network read are 0 apart;
  ``itl_same_read`` counts those gaps, out of ``itl_gaps``: the server sent
  the tokens together, or the client read them late, and no stamp taken by
  a client can tell which).
* TPOT: ``(E2E - TTFT) / (output tokens - 1)`` per request with more than one
  output token.
* E2E: from sending the request to the end of its response.
* Throughput: completed requests, output tokens and prompt plus output
  tokens, each divided by the run's duration.
* Goodput: requests per second that met every bound of the SLO (a request
  with one output token has a TPOT of 0 for this purpose, as in vLLM).
* Statistics: mean, population standard deviation, percentiles by linear
  interpolation (numpy's default), max. Failed requests count by error type
  and are left out of every latency figure.

All times are seconds on the monotonic clock, relative to the run's start.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import msgspec

from streamkit.errors import UsageError

PERCENTILES = (50, 90, 95, 99)
STAT_KEYS = ("mean", "stdev", "p50", "p90", "p95", "p99", "max")


class Sample(msgspec.Struct, omit_defaults=True):
    """One request as measured. Times are seconds from the run's start."""

    index: int
    sent_at: float
    end_at: float
    scheduled_at: float | None = None  # open loop: when the schedule said to send
    first_at: float | None = None  # first content chunk, thinking included
    first_answer_at: float | None = None  # first chunk of the answer (not thinking)
    reasoning_tokens: int | None = None  # of output_tokens: a reasoning model's thinking
    itl: list[float] = []
    prompt_tokens: int | None = None
    output_tokens: int | None = None
    tokens_source: str | None = None  # usage | tokenizer | chunks
    error: str | None = None  # error type; None for a completed request
    message: str | None = None
    worker: int = 0
    session: int | None = None  # multi-turn: which conversation, and which turn of it
    turn: int | None = None
    group: int | None = None  # --prefix-groups: which shared prefix the prompt began with

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def ttft(self) -> float | None:
        return None if self.first_at is None else self.first_at - self.sent_at

    @property
    def ttfa(self) -> float | None:
        """Time to the first answer token: TTFT's twin for models that think first."""
        return None if self.first_answer_at is None else self.first_answer_at - self.sent_at

    @property
    def e2e(self) -> float:
        return self.end_at - self.sent_at

    @property
    def lag(self) -> float | None:
        """How late the client sent the request against its schedule."""
        return None if self.scheduled_at is None else self.sent_at - self.scheduled_at

    @property
    def tpot(self) -> float | None:
        ttft = self.ttft
        if ttft is None or not self.output_tokens or self.output_tokens < 2:
            return None
        return (self.e2e - ttft) / (self.output_tokens - 1)


def percentile(ordered: Sequence[float], q: float) -> float:
    """The q-th percentile of sorted values, interpolated linearly (numpy's default)."""
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def summarize(values: Iterable[float], scale: float = 1000.0) -> dict[str, float] | None:
    """mean, stdev, p50, p90, p95, p99 and max of ``values`` times ``scale`` (ms)."""
    ordered = sorted(v * scale for v in values)
    if not ordered:
        return None
    mean = math.fsum(ordered) / len(ordered)
    variance = math.fsum((v - mean) ** 2 for v in ordered) / len(ordered)
    stats = {"mean": mean, "stdev": math.sqrt(variance)}
    for q in PERCENTILES:
        stats[f"p{q}"] = percentile(ordered, q)
    stats["max"] = ordered[-1]
    return {key: round(value, 4) for key, value in stats.items()}


_SLO_ITEM = re.compile(r"^\s*(ttft|tpot|itl|e2e)\s*=\s*([0-9.]+)\s*(ms|s)?\s*$")
SLO_METRICS = ("ttft", "tpot", "itl", "e2e")


def parse_slo(text: str) -> dict[str, float]:
    """``ttft=500ms,tpot=50ms,e2e=10s`` as bounds in seconds (a bare number is ms)."""
    bounds: dict[str, float] = {}
    for item in text.split(","):
        match = _SLO_ITEM.match(item)
        if not match:
            raise UsageError(
                f"--slo: cannot read {item.strip()!r}; expected e.g. "
                "ttft=500ms,tpot=50ms,e2e=10s (metrics: ttft, tpot, itl, e2e)"
            )
        name, number, unit = match.groups()
        try:
            value = float(number)
        except ValueError:
            raise UsageError(f"--slo: {number!r} is not a number") from None
        bounds[name] = value if unit == "s" else value / 1000
    return bounds


def meets(sample: Sample, slo: dict[str, float]) -> bool:
    """A completed request within every bound (ITL: its largest gap)."""
    if not sample.ok:
        return False
    values = {
        "ttft": sample.ttft,
        "tpot": sample.tpot or 0.0,
        "itl": max(sample.itl, default=0.0),
        "e2e": sample.e2e,
    }
    return all(
        values[name] is not None and values[name] <= bound  # type: ignore[operator]
        for name, bound in slo.items()
    )


def tokens_source(samples: Iterable[Sample]) -> str | None:
    """Where the output token counts came from: one source, or ``mixed``."""
    sources = {s.tokens_source for s in samples if s.ok and s.tokens_source}
    if not sources:
        return None
    return sources.pop() if len(sources) == 1 else "mixed"


def run_figures(
    samples: Sequence[Sample], duration: float, slo: dict[str, float] | None = None
) -> dict[str, object]:
    """The figures of one run (the ``runs[]`` fields of the JSON report, less its settings)."""
    done = [s for s in samples if s.ok]
    errors = Counter(s.error for s in samples if not s.ok)
    output = sum(s.output_tokens or 0 for s in done)
    prompt = sum(s.prompt_tokens or 0 for s in done)
    per_second = (lambda n: round(n / duration, 4)) if duration > 0 else (lambda n: 0.0)
    good = sum(1 for s in done if meets(s, slo)) if slo else None
    lags = [s.lag for s in samples if s.lag is not None]
    gaps = [gap for s in done for gap in s.itl]
    figures: dict[str, object] = {
        "requests_completed": len(done),
        "requests_failed": len(samples) - len(done),
        "errors": dict(sorted(errors.items())),
        "duration_s": round(duration, 6),
        "request_throughput": per_second(len(done)),
        "output_token_throughput": per_second(output),
        "total_token_throughput": per_second(prompt + output),
        "prompt_tokens": prompt,
        "output_tokens": output,
        "goodput": per_second(good) if good is not None else None,
        "good_requests": good,
        "ttft_ms": summarize(s.ttft for s in done if s.ttft is not None),
        "ttfa_ms": summarize(s.ttfa for s in done if s.ttfa is not None),
        "reasoning_tokens": sum(s.reasoning_tokens or 0 for s in done),
        "itl_ms": summarize(gaps),
        "itl_gaps": len(gaps),
        "itl_same_read": gaps.count(0.0),
        "tpot_ms": summarize(s.tpot for s in done if s.tpot is not None),
        "e2e_ms": summarize(s.e2e for s in done),
        "schedule_lag_ms": summarize(lags),
        "output_tokens_source": tokens_source(done),
    }
    if any(s.turn is not None for s in done):
        figures["by_turn"] = by_turn(done)
    if any(s.group is not None for s in done):
        figures["prefix_groups"] = prefix_groups(done)
    if lags:  # open loop: latency as the user would see it, from the scheduled time
        figures["ttft_from_schedule_ms"] = summarize(
            s.first_at - s.scheduled_at
            for s in done
            if s.first_at is not None and s.scheduled_at is not None
        )
        figures["e2e_from_schedule_ms"] = summarize(
            s.end_at - s.scheduled_at for s in done if s.scheduled_at is not None
        )
    return figures


def by_turn(done: Sequence[Sample]) -> list[dict[str, object]]:
    """Multi-turn sessions: figures per turn index (TTFT grows with the history sent)."""
    turns = sorted({s.turn for s in done if s.turn is not None})
    rows = []
    for turn in turns:
        mine = [s for s in done if s.turn == turn]
        prompts = [s.prompt_tokens for s in mine if s.prompt_tokens]
        rows.append(
            {
                "turn": turn,
                "requests": len(mine),
                "prompt_tokens_mean": round(math.fsum(prompts) / len(prompts), 1)
                if prompts
                else None,
                "ttft_ms": summarize(s.ttft for s in mine if s.ttft is not None),
                "e2e_ms": summarize(s.e2e for s in mine),
            }
        )
    return rows


def prefix_groups(done: Sequence[Sample]) -> dict[str, object]:
    """Shared prefixes: TTFT of the first request of each group against all the others.

    The first is the one sent first in the run: the request that found no
    prefix of its group in the server's cache (unless an earlier run, or the
    warm-up, put it there).
    """
    first: dict[int, Sample] = {}
    for sample in sorted(done, key=lambda s: s.sent_at):
        if sample.group is not None:
            first.setdefault(sample.group, sample)
    firsts = {id(s) for s in first.values()}
    rest = [s for s in done if s.group is not None and id(s) not in firsts]
    return {
        "groups": len(first),
        "first_ttft_ms": summarize(s.ttft for s in first.values() if s.ttft is not None),
        "rest_ttft_ms": summarize(s.ttft for s in rest if s.ttft is not None),
    }
