"""Choosing and opening the producer a command streams from.

Commands ask for a ``Backend`` built from resolved ``Settings`` and never
learn whether the tokens come from a remote server or a local model.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Protocol

import trio

from streamkit.config import Settings
from streamkit.errors import StreamkitError
from streamkit.events import BatchSend
from streamkit.providers.llama.files import resolve_local_model
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.producer import LlamaLocalProducer
from streamkit.providers.rate_limit import PauseGate
from streamkit.request import GenerationRequest, Message

_loaded: dict[Path, LocalModel] = {}


def local_model(path: Path, name: str) -> LocalModel:
    """The process-wide ``LocalModel`` for ``path``: a model file is loaded once."""
    key = path.resolve()
    if key not in _loaded:
        _loaded[key] = LocalModel(path, name)
    return _loaded[key]


class Backend(Protocol):
    """What every producer offers the commands, capabilities included."""

    serializes: bool
    """Whether requests run one at a time (a local model), so waiting callers can be told."""

    @property
    def model_name(self) -> str | None:
        """The model that answers when a request names none, if known."""
        ...

    @property
    def provider(self) -> str:
        """Where generation happens: the server's base URL, or ``local``."""
        ...

    async def stream(self, request: GenerationRequest, send: BatchSend) -> None: ...

    async def context_budget(
        self, request: GenerationRequest
    ) -> tuple[int, Callable[[Sequence[Message]], int]] | None:
        """The prompt's token budget and a token counter, when the backend knows them."""
        ...

    async def list_models(self) -> list[str]: ...

    async def check_model(self, model: str | None) -> None: ...


@asynccontextmanager
async def open_backend(
    settings: Settings, *, gate: PauseGate | None = None
) -> AsyncIterator[Backend]:
    """The producer for ``settings``: the server at its base URL, else a local model.

    ``gate`` is where a server's requests wait out a 429 (default: one of the
    producer's own; a cluster passes the one its nodes share).
    """
    if not settings.base_url:
        name, path = resolve_local_model(settings.model, settings.local_models)
        yield LlamaLocalProducer(local_model(path, name), max_reply_bytes=settings.max_reply_bytes)
        return
    # Imported here: the HTTP stack costs start-up time that local runs never need.
    from streamkit.providers.openai_http import OpenAIHTTPProducer
    from streamkit.providers.transports import build_transport

    transport = build_transport(
        settings.base_url,
        settings.api_key,
        connect_timeout=settings.connect_timeout,
        idle_timeout=settings.idle_timeout,
    )
    try:
        yield OpenAIHTTPProducer(
            transport,
            api_key=settings.api_key,
            max_retries=settings.max_retries,
            on_retry=_print_retry,
            context_tokens=settings.context_tokens,
            debug=_print_debug if settings.debug else None,
            on_notice=_print_notice,
            max_reply_bytes=settings.max_reply_bytes,
            gate=gate,
        )
    finally:
        with trio.CancelScope(shield=True):
            await transport.aclose()


def _print_retry(error: StreamkitError, delay: float) -> None:
    """Tell the user, on stderr, why the request is about to be sent again."""
    print(f"streamkit: {error.message}; retrying in {delay:.1f} s", file=sys.stderr, flush=True)


def _print_notice(line: str) -> None:
    print(f"streamkit: {line}", file=sys.stderr, flush=True)


def _print_debug(line: str) -> None:
    """``--debug``: one line per HTTP request, on stderr."""
    print(f"streamkit: debug: {line}", file=sys.stderr, flush=True)
