"""Wiring one streamed reply: producer -> channel -> fan-out -> consumers.

::

    producer ──► [channel, BUFFER batches] ──► fan-out ──► [channel] ──► printer
                                                 │ (Reply)  └──────► [channel] ──► ...

Everything runs in one nursery that ends when the reply has been fully
handled; no task outlives ``run_stream``.

Backpressure policy
    Every channel is bounded (``BUFFER`` batches). The consumers wired through
    this pipeline -- the printer, and later the store -- are allowed to slow
    the producer: when one falls ``BUFFER`` batches behind, the fan-out waits,
    the producer's ``send`` waits, and the producer stops reading from the
    network, so memory stays bounded and TCP flow control reaches the server.
    A consumer that must never slow the producer (a relay client) must not be
    wired here directly; it gets its own drop-on-full queue.

Cancellation
    Only the *producer* runs inside the stop scope. A timeout, Ctrl-C or
    SIGTERM cancels that scope: the producer stops (closing its HTTP stream or
    aborting its model thread), its channel closes, and the fan-out and the
    consumers drain what was already received and flush it. Nothing received
    is lost, and the consumers' flush is ordinary code, not a shielded
    ``finally``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import trio

from streamkit.events import Batch, Finish, StreamError
from streamkit.protocol.reply import Reply
from streamkit.protocol.toolcalls import ToolCallAssembler

BUFFER = 16

Producer = Callable[[trio.MemorySendChannel[Batch]], Awaitable[None]]
Consumer = Callable[[trio.MemoryReceiveChannel[Batch]], Awaitable[None]]


async def run_stream(
    produce: Producer,
    consumers: Sequence[Consumer],
    *,
    stop: trio.CancelScope | None = None,
    reply: Reply | None = None,
) -> Reply:
    """Run ``produce`` into ``consumers`` and return what was received.

    ``stop`` is the caller's cancel scope around the producer: the caller
    cancels it to interrupt (Ctrl-C), and gives it a deadline (usually a
    ``relative_deadline``, counted from when the producer starts) to bound the
    reply. After the partial text, consumers see a ``StreamError`` of kind
    ``timeout`` when the deadline passed, or ``Finish("cancelled")`` when the
    scope was cancelled.

    ``reply`` is the one to fill. A consumer that reads the whole reply when
    its stream ends (the log's recorder) says so with ``reads_whole_reply``:
    the fan-out then fills that consumer's ``reply``, so ``Reply.add`` is not
    done twice a batch, and no caller can forget to share it.
    """
    if reply is None:
        readers = [c for c in consumers if getattr(c, "reads_whole_reply", False)]
        reply = readers[0].reply if readers else Reply()  # type: ignore[attr-defined]
    stop = stop or trio.CancelScope()
    send, receive = trio.open_memory_channel[Batch](BUFFER)
    async with trio.open_nursery() as nursery:
        outlets: list[trio.MemorySendChannel[Batch]] = []
        for consume in consumers:
            outlet, inlet = trio.open_memory_channel[Batch](BUFFER)
            outlets.append(outlet)
            nursery.start_soon(consume, inlet)
        nursery.start_soon(_fan_out, receive, outlets, reply)
        async with send:
            with stop:
                await produce(send)
            if stop.cancelled_caught:
                if trio.current_time() >= stop.deadline:
                    message = "the reply took longer than the time allowed (--timeout)"
                    await send.send([StreamError("timeout", message)])
                else:
                    await send.send([Finish("cancelled")])
    return reply


async def _fan_out(
    receive: trio.MemoryReceiveChannel[Batch],
    outlets: list[trio.MemorySendChannel[Batch]],
    reply: Reply,
) -> None:
    """Record each batch in ``reply``, then hand it to every consumer.

    Whole tool calls are added here, once for every producer and consumer: the
    producers emit fragments only (see ``ToolCallAssembler``).
    """
    calls = ToolCallAssembler()
    async with receive:
        try:
            async for batch in receive:
                batch = calls.feed(batch)
                reply.add(batch)
                for outlet in outlets:
                    await outlet.send(batch)
            tail = calls.close()
            if tail:
                reply.add(tail)
                for outlet in outlets:
                    await outlet.send(tail)
        finally:
            for outlet in outlets:
                outlet.close()
