"""The remote producer: an OpenAI-compatible server, streamed over a ``Transport``.

It owns its I/O and nothing else: it sends the request, feeds each network
read of the response body to the sans-IO decoder, and sends the resulting
events to the pipeline as one batch per read. Failures never escape as
exceptions: they end the stream with a ``StreamError`` event after whatever
was already received, so every consumer sees the same ending.

Timeouts are the caller's: the connect and idle (read) limits live in the
transport the caller builds (``build_transport``), the whole-request limit
is a cancel scope in the pipeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit

import msgspec
import trio

from streamkit.config import DEFAULT_MAX_REPLY_BYTES
from streamkit.errors import (
    HTTPStatusError,
    ModelError,
    ProtocolError,
    RequestTimeout,
    StreamkitError,
    UsageError,
    one_line,
    redact,
)
from streamkit.events import BatchSend, StreamError
from streamkit.protocol.http_errors import ERROR_BODY_LIMIT, connection_error, status_message
from streamkit.protocol.openai import OpenAIStreamDecoder
from streamkit.protocol.openai_json import body_kind, completion_events, not_a_stream_message
from streamkit.protocol.reply_limit import ReplyLimit, describe_size
from streamkit.protocol.retry import backoff_delay, is_retryable_status, parse_retry_after
from streamkit.protocol.structured import SCHEMA_FORMS, names_response_format, server_schema
from streamkit.protocol.urls import join_url, public_url, split_query, url_secrets
from streamkit.protocol.wire import request_bytes
from streamkit.providers.exchange import Exchange
from streamkit.providers.rate_limit import PauseGate, RateLimitGate
from streamkit.providers.transport import (
    ConnectTimeout,
    DecodingError,
    InvalidURL,
    ReadTimeout,
    Response,
    Transport,
    TransportError,
    WriteTimeout,
)
from streamkit.request import GenerationRequest, Message

_HEADERS = (("Accept", "text/event-stream"), ("Content-Type", "application/json"))
_JSON = (("Content-Type", "application/json"),)
T = TypeVar("T")


class OpenAIHTTPProducer:
    """Streams generation requests from one OpenAI-compatible server."""

    serializes = False  # a server takes concurrent requests

    def __init__(
        self,
        transport: Transport,
        *,
        api_key: str | None = None,
        max_retries: int = 2,
        on_retry: Callable[[StreamkitError, float], None] | None = None,
        context_tokens: int | None = None,
        debug: Callable[[str], None] | None = None,
        on_notice: Callable[[str], None] | None = None,
        max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES,
        gate: PauseGate | None = None,
    ) -> None:
        self.transport = transport
        self.max_reply_bytes = max_reply_bytes  # a longer reply is cut (``ReplyLimit``)
        self.on_notice = on_notice  # things the user should know, once (stderr)
        self.schema_form: str | None = None  # the response_format form that worked
        self._said: set[str] = set()  # notices already given
        self._schema_probe = trio.Lock()
        self.debug = debug  # --debug: gets one line per HTTP request
        self.context_tokens = context_tokens
        self.max_retries = max_retries
        self.on_retry = on_retry
        self.gate: PauseGate = gate or RateLimitGate()  # a cluster passes its shared one
        base, query = split_query(transport.url)  # shown as http://h/v1?q, never h/v1/?q
        self._base_url = public_url(base.rstrip("/") + (f"?{query}" if query else ""))
        self._secrets = [api_key, *url_secrets(transport.url)]

    @property
    def model_name(self) -> str | None:
        return None  # the server decides

    @property
    def provider(self) -> str:
        return self.base_url

    @property
    def base_url(self) -> str:
        """The server's base URL as it is shown and logged: without credentials."""
        return self._base_url

    async def stream(self, request: GenerationRequest, send: BatchSend) -> None:
        """Stream ``request`` into ``send`` as batches of events, then return.

        Retries (connection errors, 408/409/429/5xx) happen only while nothing
        has been sent yet. The channel is not closed here: the caller owns it.
        """
        if request.options.schema is not None:
            await self._stream_structured(request, send)
            return
        path, raw = request_bytes(request)
        await self.stream_body(path, raw, send, key=request.idempotency_key)

    async def _stream_structured(self, request: GenerationRequest, send: BatchSend) -> None:
        """A request with a schema: in the ``response_format`` form this server takes.

        Until a form has worked, one request at a time probes them in order
        (the others wait on the lock), so a batch pays for the probe once; a
        refusal is only ever an HTTP error before any output, so asking again
        in the next form is safe.
        """
        if self.schema_form is None:
            async with self._schema_probe:
                if self.schema_form is None:
                    await self._probe_schema_forms(request, send)
                    return
        self._say_bounds(request, self.schema_form)
        await self.stream_body(
            *request_bytes(request, self.schema_form), send, key=request.idempotency_key
        )

    async def _probe_schema_forms(self, request: GenerationRequest, send: BatchSend) -> None:
        """``request`` in each form of ``SCHEMA_FORMS`` until one is not refused; that
        one is kept in ``schema_form`` (and said, if it was not the first)."""
        refusals: list[str] = []
        for form in SCHEMA_FORMS:
            self._say_bounds(request, form)
            try:
                await self._with_retries(
                    lambda form=form: self._stream_once(
                        *request_bytes(request, form), send, key=request.idempotency_key
                    )
                )
            except HTTPStatusError as error:
                if _refuses_schema(error) and form != SCHEMA_FORMS[-1]:
                    refusals.append(f"{form}: {error.message}")
                    continue
                message = error.message
                if refusals:
                    message += " (after refusing " + "; ".join(refusals) + ")"
                await send.send([StreamError(error.kind, message, error.status)])
                return
            except StreamkitError as error:
                await send.send([StreamError(error.kind, error.message, error.status)])
                return
            self.schema_form = form
            if refusals and self.on_notice is not None:
                self.on_notice(
                    f"the server takes a schema as {form} (refused: "
                    + "; ".join(refusals)
                    + "); used for the rest of the run"
                )
            return

    def _say_bounds(self, request: GenerationRequest, form: str) -> None:
        """Tell the user, once, that the schema sent in ``form`` has bounds theirs lacks."""
        assert request.options.schema is not None
        _, notice = server_schema(form, request.options.schema, request.options.max_tokens)
        if notice is not None and notice not in self._said and self.on_notice is not None:
            self._said.add(notice)
            self.on_notice(notice)

    async def stream_body(
        self,
        path: str,
        raw: bytes,
        send: BatchSend,
        *,
        key: str | None = None,
    ) -> None:
        """Stream the answer to a request body given as bytes (``replay`` sends stored
        ones), with the retries of ``stream``; ``key`` is the ``Idempotency-Key``."""
        try:
            await self._with_retries(lambda: self._stream_once(path, raw, send, key=key))
        except StreamkitError as error:
            await send.send([StreamError(error.kind, error.message, error.status)])

    async def _with_retries(self, attempt_once: Callable[[], Awaitable[T]]) -> T:
        """``attempt_once()`` until it succeeds, fails for good or runs out of retries.

        After a 429 the shared gate holds every request of this producer.
        """
        attempt = 0
        while True:
            await self.gate.wait()
            try:
                return await attempt_once()
            except StreamkitError as error:
                if not error.retryable or attempt >= self.max_retries:
                    raise
                delay = backoff_delay(attempt, error.retry_after)
                if self.on_retry is not None:
                    self.on_retry(error, delay)
                attempt += 1
                if error.status == 429:
                    self.gate.hold(delay)  # everyone waits, this request included
                else:
                    await trio.sleep(delay)

    async def _stream_once(
        self,
        path: str,
        raw: bytes,
        send: BatchSend,
        *,
        key: str | None = None,
    ) -> None:
        """One attempt. Raises ``StreamkitError`` only while nothing was sent."""
        sent_any = False
        limit = ReplyLimit(self.max_reply_bytes)
        exchange = Exchange("POST", join_url(self.base_url, path))
        try:
            headers = _HEADERS if key is None else (*_HEADERS, ("Idempotency-Key", key))
            async with self.transport.stream("POST", path, raw, headers) as response:
                await send.send([exchange.answered(response, (path, raw))])
                if response.status >= 400:
                    raise await self._status_error(response, path)
                kind = body_kind(response.header("content-type"))
                if kind == "json":  # a server that ignored "stream": the whole reply
                    whole = await self._whole_body(response, exchange, limit)
                    events = limit.admit(completion_events(whole))
                    sent_any = True
                    await send.send(events)
                    return
                if kind != "event-stream":
                    raise ProtocolError(
                        not_a_stream_message(response.header("content-type"), self.base_url)
                    )
                decoder = OpenAIStreamDecoder()
                async for data in response.body:
                    exchange.received()
                    events = decoder.feed(data)
                    if events:
                        events = limit.admit(events)
                        sent_any = True
                        await send.send(events)
                        if decoder.chunks.done or limit.exceeded:
                            break
                tail = limit.admit(decoder.close())
                if tail:
                    await send.send(tail)
        except (TransportError, OSError) as exc:
            exchange.failed(exc)
            error = self._translate(exc, sent_any)
            if not sent_any:
                raise error from None
            await send.send([StreamError(error.kind, error.message, error.status)])
        except ProtocolError as exc:
            await send.send([StreamError(exc.kind, redact(exc.message, self._secrets))])
        finally:
            exchange.end()
            if self.debug is not None:
                self.debug(redact(exchange.line(), self._secrets))

    async def _whole_body(self, response: Response, exchange: Exchange, limit: ReplyLimit) -> bytes:
        """A non-streamed answer's body, read up to a bound: the reply's cap, with room
        for what JSON wraps around the text (escapes, logprobs, framing)."""
        bound = 4 * limit.max_bytes + ERROR_BODY_LIMIT
        raw = bytearray()
        async for data in response.body:
            exchange.received()
            raw += data
            if len(raw) > bound:
                raise ProtocolError(
                    f"the JSON answer is larger than {describe_size(bound)}, more than a reply "
                    f"of {describe_size(limit.max_bytes)} needs (max_reply_bytes in the "
                    "config file): not read"
                )
        return bytes(raw)

    async def _status_error(
        self, response: Response, path: str, method: str = "POST"
    ) -> HTTPStatusError:
        """An error answer as one line (its body read up to ``ERROR_BODY_LIMIT``)."""
        raw = b""
        async for data in response.body:
            raw += data
            if len(raw) >= ERROR_BODY_LIMIT:
                break
        where = f"{method} {urlsplit(join_url(self.transport.url, path)).path}"
        message, rejected = status_message(response.status, response.reason, where, raw)
        return HTTPStatusError(
            redact(message, self._secrets),
            status=response.status,
            retryable=is_retryable_status(response.status) and not rejected,
            retry_after=parse_retry_after(response.header("retry-after"), time.time()),
        )

    def _translate(self, exc: Exception, sent_any: bool) -> StreamkitError:
        """Map a transport/OS exception to streamkit's hierarchy (the one boundary)."""
        url = self.base_url
        cause = redact(one_line(exc), self._secrets)
        if isinstance(exc, ConnectTimeout):
            return RequestTimeout(
                f"connecting to {url} timed out (--connect-timeout)", retryable=True
            )
        if isinstance(exc, ReadTimeout | WriteTimeout):
            return RequestTimeout(f"no data from {url} within the idle timeout (--idle-timeout)")
        if isinstance(exc, InvalidURL):
            return UsageError(f"invalid base URL {url!r}: {cause}")
        if isinstance(exc, DecodingError):
            return ProtocolError(f"undecodable response body from {url}: {cause}")
        return connection_error(url, cause, sent_any)

    async def context_budget(self, request: GenerationRequest) -> tuple[int, Callable] | None:
        """From the profile's ``context_tokens`` (the API does not tell it), else None.

        Remote tokenizers are unknown, so messages are counted approximately:
        about four characters a token, plus a few tokens of framing each.
        """
        if self.context_tokens is None:
            return None
        reply_room = request.options.max_tokens or min(1024, self.context_tokens // 4)

        def approximate(messages: Sequence[Message]) -> int:
            return sum(len(m.content) // 4 + 8 for m in messages)

        return self.context_tokens - reply_room, approximate

    async def request_json(self, method: str, path: str, body: Any = None) -> Any:
        """One non-streamed request: the decoded JSON answer, or a ``StreamkitError``.

        Retried like a stream that has sent nothing yet: it has no output to lose.
        """
        return await self._with_retries(lambda: self._request_json_once(method, path, body))

    async def _request_json_once(self, method: str, path: str, body: Any) -> Any:
        raw = (
            None
            if body is None
            else json.dumps(  # the bytes httpx's json= sends
                body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        )
        try:
            async with self.transport.stream(
                method, path, raw, _JSON if raw is not None else ()
            ) as response:
                if response.status >= 400:
                    raise await self._status_error(response, path, method)
                content = b"".join([data async for data in response.body])
        except (TransportError, OSError) as exc:
            raise self._translate(exc, False) from None
        try:
            return msgspec.json.decode(content)
        except msgspec.DecodeError as exc:
            raise ProtocolError(f"unexpected /{path} answer from {self.base_url}: {exc}") from None

    async def list_models(self) -> list[str]:
        """The model ids the server offers (GET /models)."""
        payload = await self._request_json_once("GET", "models", None)  # a preflight: no retries
        try:
            return [item["id"] for item in payload["data"]]
        except (KeyError, TypeError) as exc:
            raise ProtocolError(f"unexpected /models answer from {self.base_url}: {exc}") from None

    async def check_model(self, model: str | None) -> None:
        """Preflight: the server is reachable and knows ``model``."""
        models = await self.list_models()
        if model and model not in models:
            known = ", ".join(models[:10]) or "none"
            raise ModelError(f"model {model!r} is not offered by {self.base_url} (it has: {known})")


def _refuses_schema(error: HTTPStatusError) -> bool:
    """A refusal worth another ``response_format`` form: a 4xx about the request (not
    auth, not a missing model or route, not rate limits), or a 5xx naming the field."""
    status = error.status or 0
    if 400 <= status < 500:
        return status not in (401, 403, 404, 408, 409, 429)
    return names_response_format(error.message)
