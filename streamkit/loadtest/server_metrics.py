"""The server's own view of a run, from its Prometheus exposition text, sans-IO.

Parsed with ``prometheus_client``'s text parser (the ``bench`` extra),
imported only when ``--server-metrics`` is given. Each serving engine names
the same few things its own way; the names below are read, summed over
their label sets (several models, several engines on one endpoint):

* queue -- requests waiting: vLLM ``vllm:num_requests_waiting``, llama.cpp
  ``llamacpp:requests_deferred``, SGLang ``sglang:num_queue_reqs``, TGI
  ``tgi_queue_size``;
* running -- requests being served: ``vllm:num_requests_running``,
  ``llamacpp:requests_processing``, ``sglang:num_running_reqs``,
  ``tgi_batch_current_size``;
* kv_cache -- share of the KV cache in use (0 to 1): ``vllm:kv_cache_usage_perc``
  (``vllm:gpu_cache_usage_perc`` before vLLM 0.10), ``llamacpp:kv_cache_usage_ratio``,
  ``sglang:token_usage``;
* prompt and output tokens it counted (counters, their gain over the run):
  ``vllm:prompt_tokens_total`` / ``vllm:generation_tokens_total``,
  ``llamacpp:prompt_tokens_total`` / ``llamacpp:tokens_predicted_total``,
  ``sglang:prompt_tokens_total`` / ``sglang:generation_tokens_total``,
  ``tgi_request_input_length_sum`` / ``tgi_request_generated_tokens_sum``;
* the server's TTFT histogram: ``vllm:time_to_first_token_seconds``,
  ``sglang:time_to_first_token_seconds``; its percentiles over a run come from
  the bucket counts gained between the scrapes before and after it, as
  Prometheus's ``histogram_quantile`` computes them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

GAUGES = {
    "queue": (
        "vllm:num_requests_waiting",
        "llamacpp:requests_deferred",
        "sglang:num_queue_reqs",
        "tgi_queue_size",
    ),
    "running": (
        "vllm:num_requests_running",
        "llamacpp:requests_processing",
        "sglang:num_running_reqs",
        "tgi_batch_current_size",
    ),
    "kv_cache": (
        "vllm:kv_cache_usage_perc",
        "vllm:gpu_cache_usage_perc",
        "llamacpp:kv_cache_usage_ratio",
        "sglang:token_usage",
    ),
}
COUNTERS = {
    "prompt_tokens": (
        "vllm:prompt_tokens_total",
        "llamacpp:prompt_tokens_total",
        "sglang:prompt_tokens_total",
        "tgi_request_input_length_sum",
    ),
    "output_tokens": (
        "vllm:generation_tokens_total",
        "llamacpp:tokens_predicted_total",
        "sglang:generation_tokens_total",
        "tgi_request_generated_tokens_sum",
    ),
}
TTFT_HISTOGRAMS = ("vllm:time_to_first_token_seconds", "sglang:time_to_first_token_seconds")


class Scrape(msgspec.Struct, frozen=True):
    """One scrape: the known gauges and counters, and the TTFT histogram's buckets."""

    gauges: dict[str, float]
    buckets: dict[float, float]  # upper bound (inf for +Inf) -> cumulative count


def parse_scrape(text: str) -> Scrape:
    """The exposition text of one scrape; ValueError when it is not that format."""
    values: dict[str, float] = {}
    buckets: dict[float, float] = {}
    wanted = {name for names in (*GAUGES.values(), *COUNTERS.values()) for name in names}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in wanted:
                values[sample.name] = values.get(sample.name, 0.0) + float(sample.value)
            elif (
                family.name in TTFT_HISTOGRAMS
                and sample.name.endswith("_bucket")
                and "le" in sample.labels
            ):
                bound = float(sample.labels["le"])  # "+Inf" reads as inf
                buckets[bound] = buckets.get(bound, 0.0) + float(sample.value)
    gauges = {}
    for kind, names in (*GAUGES.items(), *COUNTERS.items()):
        found = [values[name] for name in names if name in values]
        if found:
            gauges[kind] = found[0]
    return Scrape(gauges, buckets)


def histogram_quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The q-quantile (0..1) of cumulative ``buckets``, linear within a bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):  # in the open top bucket: its lower edge, as Prometheus
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / (count - previous_count)
            )
        previous_bound, previous_count = bound, count
    return previous_bound


def run_summary(
    url: str,
    interval: float,
    before: Scrape | None,
    during: Sequence[tuple[float, Scrape]],
    after: Scrape | None,
    failed: int,
) -> dict[str, Any]:
    """The ``server_metrics`` object of a run record."""
    points = [(t, scrape) for t, scrape in during]
    summary: dict[str, Any] = {
        "url": url,
        "interval_s": interval,
        "scrapes": len(points) + (before is not None) + (after is not None),
        "failed_scrapes": failed,
        "series": {},
    }
    for kind in GAUGES:
        series = [[round(t, 3), s.gauges[kind]] for t, s in points if kind in s.gauges]
        values = [v for _, v in series]
        summary["series"][kind] = series
        summary[kind] = {
            "before": before.gauges.get(kind) if before else None,
            "max": max(values) if values else None,
            "mean": round(math.fsum(values) / len(values), 4) if values else None,
            "after": after.gauges.get(kind) if after else None,
        }
    summary["tokens_during_run"] = {
        kind: (
            after.gauges[kind] - before.gauges[kind]
            if before and after and kind in before.gauges and kind in after.gauges
            else None
        )
        for kind in COUNTERS
    }
    summary["server_ttft_ms"] = _ttft(before, after)
    return summary


def _ttft(before: Scrape | None, after: Scrape | None) -> dict[str, float] | None:
    if after is None or not after.buckets:
        return None
    start = before.buckets if before else {}
    gained = {bound: count - start.get(bound, 0.0) for bound, count in after.buckets.items()}
    total = max(gained.values(), default=0.0)
    if total <= 0:
        return None
    stats: dict[str, float] = {"count": total}
    for q in (50, 90, 99):
        value = histogram_quantile(q / 100, gained)
        if value is not None:
            stats[f"p{q}"] = round(value * 1000, 3)
    return stats
