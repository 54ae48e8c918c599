"""The WebSocket relay: one model behind a WebSocket server, for many clients.

Each connection has one receive loop, one sender task and one task per
request, all in the connection's nursery; a request is the same pipeline as
``chat`` (``run_stream``) with a consumer that turns events into frames.

Backpressure
    The producer must never wait for a client. Frames go into the
    connection's ``Outbox``, which never blocks: consecutive ``delta`` frames
    of one request are merged while the client is behind (never reordered,
    never dropped). A client that stops reading is dropped -- its requests
    cancelled, its socket closed -- when one frame cannot be sent within
    ``slow_client_timeout``, or when its outbox holds more than
    ``send_queue`` frames even after merging.

Cancellation
    ``cancel`` frames and disconnects cancel the request's scope: a local
    generation stops within a token, a remote HTTP stream is closed. On
    shutdown every running request ends with an ``error`` frame of type
    ``shutting_down`` and connections close with code 1001.
"""

from __future__ import annotations

import secrets
import sys
from functools import partial
from typing import Any
from urllib.parse import parse_qs, urlsplit

import msgspec
import trio
from trio_websocket import (
    ConnectionClosed,
    Endpoint,
    WebSocketConnection,
    WebSocketRequest,
    serve_websocket,
)

from streamkit.config import RelayLimits
from streamkit.errors import ToolHopLimit, UsageError
from streamkit.events import (
    AssembledToolCall,
    Batch,
    ReasoningDelta,
    StreamError,
    TextDelta,
    ToolCallDelta,
    Usage,
)
from streamkit.pipeline.command import report_log_failure
from streamkit.pipeline.relay_outbox import Outbox
from streamkit.pipeline.relay_tools import relayed_with_tools
from streamkit.pipeline.stream import run_stream
from streamkit.pipeline.tool_hops import ToolHops
from streamkit.protocol.relay_frames import (
    BadFrame,
    CancelFrame,
    GenerateFrame,
    error_frame,
    finish_frame,
    origin_allowed,
    parse_frame,
)
from streamkit.protocol.reply import Reply
from streamkit.providers.backend import Backend
from streamkit.sinks.recorder import new_conversation_log
from streamkit.store.async_store import AsyncStore

_encode = msgspec.json.Encoder().encode


class Relay:
    """Accepts WebSocket clients and runs their requests on ``backend``."""

    def __init__(
        self,
        backend: Backend,
        *,
        limits: RelayLimits,
        token: str | None = None,
        allowed_origins: tuple[str, ...] = (),
        default_model: str | None = None,
        store: AsyncStore | None = None,
        tools: ToolHops | None = None,
    ) -> None:
        self.backend = backend
        self.limits = limits
        self.token = token
        self.allowed_origins = allowed_origins
        self.default_model = default_model
        self.store = store  # with --log: one conversation per relayed request
        self.tools = tools  # run here, on the relay's side (``tool_hops``)
        self.connections: set[_Connection] = set()
        self.admitted = 0  # connections past the checks, handshake done or not
        self.local_in_flight = 0  # requests running or waiting on a one-at-a-time model
        self._listening = trio.CancelScope()

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Serve until ``stop()``; then end gracefully (requests told, 1001 close).

        Connections live in a nursery outside the listener's scope, so that
        stopping the listener does not cut them off before they are told.
        """
        async with trio.open_nursery() as handlers:
            with self._listening:
                async with trio.open_nursery() as listener:
                    try:
                        server = await listener.start(
                            partial(
                                serve_websocket,
                                self._handle,
                                host,
                                port,
                                None,
                                handler_nursery=handlers,
                                max_message_size=self.limits.max_message_bytes,
                            )
                        )
                    except OSError as exc:
                        raise UsageError(
                            f"cannot listen on {host}:{port}: {exc.strerror}"
                        ) from None
                    task_status.started(server.port)
            with trio.move_on_after(1.0):
                async with trio.open_nursery() as closing:
                    for connection in list(self.connections):
                        closing.start_soon(connection.shutdown)
            handlers.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop accepting clients and shut the open connections down."""
        self._listening.cancel()

    async def _handle(self, request: WebSocketRequest) -> None:
        refusal = self._refusal(request)
        if refusal is not None:
            status, reason = refusal
            await request.reject(status, body=reason.encode())
            return
        # Counted from here, before the handshake's own I/O: clients arriving
        # together must not all pass the check while each one's accept is pending.
        self.admitted += 1
        try:
            ws = await request.accept()
            connection = _Connection(self, ws)
            self.connections.add(connection)
            try:
                await connection.run()
            finally:
                self.connections.discard(connection)
        finally:
            self.admitted -= 1

    def _refusal(self, request: WebSocketRequest) -> tuple[int, str] | None:
        headers = {name.lower(): value for name, value in request.headers}
        if self.token is not None:
            offered = headers.get(b"authorization", b"").decode("latin-1")
            offered = offered.removeprefix("Bearer ").strip()
            if not offered:
                offered = parse_qs(urlsplit(request.path).query).get("token", [""])[0]
            if not secrets.compare_digest(offered.encode(), self.token.encode()):
                return 401, "missing or wrong token"
        origin = headers.get(b"origin")
        local = request.local
        own = (local.address, local.port) if isinstance(local, Endpoint) else ("", 0)
        if origin is not None and not origin_allowed(
            origin.decode("latin-1"), (str(own[0]), own[1]), self.allowed_origins
        ):
            return 403, "origin not allowed"
        if self.admitted >= self.limits.max_connections:
            return 503, "too many connections"
        return None


class _Connection:
    def __init__(self, relay: Relay, ws: WebSocketConnection) -> None:
        self.relay = relay
        self.ws = ws
        self.limits = relay.limits
        self.outbox = Outbox(relay.limits.send_queue)
        self.requests: dict[Any, trio.CancelScope] = {}
        self.shutting_down = False
        self._no_requests = trio.Event()
        self._nursery: trio.Nursery | None = None

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            nursery.start_soon(self._send_loop)
            try:
                await self._receive_loop()
            except ConnectionClosed:
                pass
            finally:
                nursery.cancel_scope.cancel()  # a gone client: stop its requests now

    async def _receive_loop(self) -> None:
        while True:
            with trio.move_on_after(self.limits.idle_timeout):
                data = await self.ws.get_message()
                self._dispatch(data)
                continue
            await self.ws.aclose(1000, "idle")
            return

    def _dispatch(self, data: str | bytes) -> None:
        frame = parse_frame(
            data, default_model=self.relay.default_model, max_tokens=self.limits.max_tokens
        )
        if isinstance(frame, BadFrame):
            self.outbox.put(error_frame(frame.id, "bad_frame", frame.message))
        elif isinstance(frame, CancelFrame):
            scope = self.requests.get(frame.id)
            if scope is None:
                self.outbox.put(
                    error_frame(frame.id, "unknown_id", "no running request has this id")
                )
            else:
                scope.cancel()
        elif frame.id in self.requests:
            self.outbox.put(
                error_frame(frame.id, "duplicate_id", "a request with this id is still running")
            )
        elif len(self.requests) >= self.limits.max_requests_per_connection:
            self.outbox.put(
                error_frame(
                    frame.id,
                    "too_many_requests",
                    f"at most {self.limits.max_requests_per_connection} requests at once",
                )
            )
        else:
            scope = trio.CancelScope()
            self.requests[frame.id] = scope
            # A local model runs one request at a time: a request that must
            # wait is told how many are ahead of it, counted here, in arrival
            # order (tasks may start in any order).
            relay, ahead = self.relay, None
            if relay.backend.serializes:
                ahead = relay.local_in_flight
                relay.local_in_flight += 1
            assert self._nursery is not None
            self._nursery.start_soon(self._run_request, frame, scope, ahead)

    async def _run_request(
        self, frame: GenerateFrame, scope: trio.CancelScope, ahead: int | None
    ) -> None:
        outbox, frame_id = self.outbox, frame.id

        async def forward(receive: trio.MemoryReceiveChannel[Batch]) -> None:
            async with receive:
                async for batch in receive:
                    await outbox.wait_for_room()
                    for event in batch:
                        if isinstance(event, TextDelta):
                            if event.choice == 0:
                                outbox.put({"type": "delta", "id": frame_id, "text": event.text})
                        elif isinstance(event, ReasoningDelta):
                            if event.choice == 0 and event.text:
                                outbox.put(
                                    {"type": "reasoning", "id": frame_id, "text": event.text}
                                )
                        elif isinstance(event, ToolCallDelta):  # named as in --events
                            outbox.put(
                                {
                                    "type": "tool_call_delta",
                                    "id": frame_id,
                                    "call": msgspec.to_builtins(event),
                                }
                            )
                        elif isinstance(event, AssembledToolCall):
                            outbox.put(
                                {
                                    "type": "tool_call",
                                    "id": frame_id,
                                    "call": msgspec.to_builtins(event),
                                }
                            )
                        elif isinstance(event, Usage):
                            outbox.put(
                                {
                                    "type": "usage",
                                    "id": frame_id,
                                    "usage": msgspec.to_builtins(event),
                                }
                            )

        relay = self.relay
        if ahead:
            outbox.put({"type": "queued", "id": frame_id, "position": ahead})
        log = (
            await new_conversation_log(relay.store, batch="relay")
            if relay.store is not None
            else None
        )
        try:
            if relay.tools is not None and frame.request.kind == "chat":
                reply = await relayed_with_tools(
                    relay.backend, relay.tools, frame, forward, log, scope, outbox
                )
            else:
                consumers: list = [forward]
                if log is not None:
                    consumers.append(await log.record_request(frame.request, relay.backend))
                reply = await run_stream(
                    partial(relay.backend.stream, frame.request), consumers, stop=scope
                )
        except ToolHopLimit as exc:
            reply = Reply()
            reply.error = StreamError(exc.kind, exc.message)
        finally:
            if ahead is not None:
                relay.local_in_flight -= 1
            del self.requests[frame_id]
            if not self.requests:
                self._no_requests.set()
        report_log_failure()  # the relay's own stderr says so once; the client got its reply
        if self.shutting_down:
            outbox.put(error_frame(frame_id, "shutting_down", "the relay is shutting down"))
        elif reply.error is not None:
            outbox.put(error_frame(frame_id, reply.error.kind, reply.error.message))
        else:
            outbox.put(finish_frame(frame_id, reply, frame.request.options.schema))

    async def _send_loop(self) -> None:
        while True:
            batch = await self.outbox.next_batch()
            if self.outbox.overflowed:
                await self._drop("the client fell too far behind")
                return
            for frame in batch:
                with trio.move_on_after(self.limits.slow_client_timeout) as slow:
                    try:
                        await self.ws.send_message(_encode(frame).decode())
                    except ConnectionClosed:
                        # The client went away mid-send: a disconnect like any
                        # other, which ends this connection's requests only.
                        assert self._nursery is not None
                        self._nursery.cancel_scope.cancel()
                        return
                if slow.cancelled_caught:
                    await self._drop("the client stopped reading")
                    return
            if not self.outbox.frames:
                self.outbox.sent.set()

    async def _drop(self, reason: str) -> None:
        print(f"streamkit: relay: dropping {self._peer()}: {reason}", file=sys.stderr)
        for scope in self.requests.values():
            scope.cancel()
        with trio.move_on_after(1.0):
            await self.ws.aclose(1008, reason)
        assert self._nursery is not None
        self._nursery.cancel_scope.cancel()

    async def shutdown(self) -> None:
        """Graceful end: every running request gets ``shutting_down``, then close 1001."""
        self.shutting_down = True
        if self.requests:
            self._no_requests = trio.Event()
            for scope in self.requests.values():
                scope.cancel()
            await self._no_requests.wait()
        await self.outbox.sent.wait()  # the send loop delivers the final frames
        await self.ws.aclose(1001, "the relay is shutting down")

    def _peer(self) -> str:
        remote = self.ws.remote
        return f"{getattr(remote, 'address', remote)}:{getattr(remote, 'port', '')}"
