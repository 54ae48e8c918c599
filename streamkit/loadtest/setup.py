"""What a benchmark runs against and with: its checked configuration, the target, the workload.

Both the ``bench`` command (one process) and each ``--workers`` process build
their target and workload here, so the two never import each other.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import msgspec
import trio

from streamkit.config import Settings
from streamkit.errors import UsageError
from streamkit.loadtest.client import BackendTarget, HTTPTarget, Target
from streamkit.loadtest.trace import parse_trace
from streamkit.loadtest.workload import (
    Workload,
    load_dataset,
    random_workload,
    session_workload,
    trace_workload,
)
from streamkit.providers.llama.files import resolve_local_model
from streamkit.providers.llama.tokenizer import Tokenizer


class BenchConfig(msgspec.Struct, frozen=True):
    """Everything the command line asked for, checked."""

    endpoint: str = "chat"
    dataset: str = "random"
    prompt_tokens: int = 256
    output_tokens: int = 128
    prompt_tokens_stdev: float = 0.0
    output_tokens_stdev: float = 0.0
    output_tokens_given: bool = False
    tokenizer: Path | None = None
    temperature: float | None = None
    concurrency: tuple[int, ...] = ()
    rate: tuple[float, ...] = ()
    burstiness: float = 1.0
    sweep: bool = False
    sweep_steps: int = 5
    requests: int | None = None
    duration: float | None = None
    warmup: int = 0
    seed: int = 0
    slo: dict[str, float] | None = None  # seconds
    workers: int = 1
    json_path: Path | None = None
    csv_path: Path | None = None
    plots_dir: Path | None = None
    html_path: Path | None = None
    repeat: int = 1
    sessions: int | None = None  # users playing the dataset's conversations at once
    think_time: str | None = None
    prefix_tokens: int = 0
    prefix_groups: int = 1
    trace: Path | None = None
    trace_speed: float = 1.0
    ramp_up: float = 0.0
    find_capacity: bool = False
    slo_percentile: float = 99.0
    goodput_target: float | None = None  # --goodput: the share of requests within the SLO
    capacity_precision: float = 0.1
    server_metrics: str | None = None  # the Prometheus endpoint's URL
    server_metrics_interval: float = 1.0
    command_line: tuple[str, ...] = ()  # as given, the API key masked: for --html


def tokenizer_for(config: BenchConfig, settings: Settings) -> Tokenizer | None:
    if config.tokenizer is not None:
        return Tokenizer(config.tokenizer)
    if not settings.base_url:  # the local model's own tokenizer
        _, path = resolve_local_model(settings.model, settings.local_models)
        return Tokenizer(path)
    return None


def model_name(settings: Settings) -> str | None:
    """The model asked for; for the local backend, the one that will answer."""
    if settings.base_url:
        return settings.model
    return resolve_local_model(settings.model, settings.local_models)[0]


def build_workload(
    config: BenchConfig, settings: Settings, count: int, tokenizer: Tokenizer | None
) -> Workload:
    kind = "completion" if config.endpoint == "completions" else "chat"
    given = config.output_tokens if config.output_tokens_given else None
    if config.trace is not None:
        try:
            raw = config.trace.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read trace {config.trace}: {exc.strerror}") from None
        return trace_workload(
            parse_trace(raw, config.trace.name),
            kind=kind,
            model=settings.model,
            tokenizer=tokenizer,
            seed=config.seed,
            temperature=config.temperature,
            name=config.trace.name,
        )
    if config.sessions is not None:
        return session_workload(
            Path(config.dataset),
            model=settings.model,
            output_tokens=given,
            default_output=config.output_tokens,
            tokenizer=tokenizer,
            temperature=config.temperature,
        )
    if config.dataset == "random":
        return random_workload(
            count,
            kind=kind,
            model=settings.model,
            prompt_tokens=config.prompt_tokens,
            output_tokens=config.output_tokens,
            prompt_stdev=config.prompt_tokens_stdev,
            output_stdev=config.output_tokens_stdev,
            seed=config.seed,
            tokenizer=tokenizer,
            temperature=config.temperature,
            prefix_tokens=config.prefix_tokens,
            prefix_groups=config.prefix_groups,
        )
    return load_dataset(
        Path(config.dataset),
        kind=kind,
        model=settings.model,
        output_tokens=given,
        tokenizer=tokenizer,
        temperature=config.temperature,
    )


@asynccontextmanager
async def open_target(settings: Settings) -> AsyncIterator[Target]:
    """The server at the base URL (no retries), else the local model.

    A plain ``http://`` server reached directly is read by ``RawHTTPTarget``
    (trio sockets and h11: each read timed before any other work); ``https://``
    and a server behind an environment proxy by ``HTTPTarget`` (over the httpx
    transport), as every other command reads them.
    """
    if not settings.base_url:
        from streamkit.providers.backend import open_backend

        async with open_backend(settings) as backend:
            await backend.check_model(settings.model)
            yield BackendTarget(backend)
        return
    from streamkit.providers.transports import build_transport, proxied

    if settings.base_url.lower().startswith("http://") and not proxied(settings.base_url):
        from streamkit.loadtest.rawhttp import RawHTTPTarget  # the lean path: timed reads

        raw = RawHTTPTarget(
            settings.base_url,
            settings.api_key,
            connect_timeout=settings.connect_timeout,
            idle_timeout=settings.idle_timeout,
        )
        try:
            yield raw
        finally:
            with trio.CancelScope(shield=True):
                await raw.aclose()
        return
    from streamkit.providers.openai_http import OpenAIHTTPProducer
    from streamkit.providers.transport import Transport

    def new_transport() -> Transport:  # TLS, or a proxy from the environment: httpx
        return build_transport(
            settings.base_url or "",
            settings.api_key,
            connect_timeout=settings.connect_timeout,
            idle_timeout=settings.idle_timeout,
            lean=False,
        )

    target = HTTPTarget(
        OpenAIHTTPProducer(new_transport(), api_key=settings.api_key, max_retries=0),
        new_transport,
    )
    try:
        yield target
    finally:
        with trio.CancelScope(shield=True):
            await target.aclose()
