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

Inline consumers
    A consumer that only takes note of each batch (the stats, the log's
    recorder) has ``take(batch)`` and ``end()`` instead of a channel: it is
    fed in the task that receives the batch, with no task, channel or
    checkpoint of its own. When every consumer is inline (a batch line), there
    is no fan-out task either: the producer's ``send`` feeds them. A batch
    then costs a few calls instead of two channel hops and three task
    switches, which is most of a short reply's cost at 256 lines in flight.
    An inline consumer may also have ``settle()``, awaited once the reply
    has been handled (the recorder: until its end is written to the log).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

import trio

from streamkit.events import Batch, BatchSend, Finish, StreamError
from streamkit.protocol.reply import Reply
from streamkit.protocol.toolcalls import ToolCallAssembler

BUFFER = 16

Producer = Callable[[BatchSend], Awaitable[None]]
ChannelConsumer = Callable[[trio.MemoryReceiveChannel[Batch]], Awaitable[None]]


class InlineConsumer(Protocol):
    """A consumer fed in the receiving task: no I/O and no waiting in ``take``."""

    def take(self, batch: Batch) -> None: ...

    def end(self) -> None: ...


Consumer = ChannelConsumer | InlineConsumer


async def run_stream(
    produce: Producer,
    consumers: Sequence[Consumer],
    *,
    stop: trio.CancelScope | None = None,
    reply: Reply | None = None,
    settle: bool = True,
) -> Reply:
    """Run ``produce`` into ``consumers`` and return what was received.

    ``stop`` is the caller's cancel scope around the producer: the caller
    cancels it to interrupt (Ctrl-C), and gives it a deadline (usually a
    ``relative_deadline``, counted from when the producer starts) to bound the
    reply. After the partial text, consumers see a ``StreamError`` of kind
    ``timeout`` when the deadline passed, or ``Finish("cancelled")`` when the
    scope was cancelled.

    ``reply`` is the one to fill. A consumer that reads the reply itself, as
    it grows and when it ends (the log's recorder), says so with ``reads_whole_reply``:
    ``run_stream`` then fills that consumer's ``reply``, so ``Reply.add`` is not
    done twice a batch, and no caller can forget to share it.

    ``settle``: wait for the inline consumers that finish in the background
    (the recorder's end, written to the log); a caller that passes False waits
    for them its own way (a batch's writer, for the log's queue).
    """
    if reply is None:
        readers = [c for c in consumers if getattr(c, "reads_whole_reply", False)]
        reply = readers[0].reply if readers else Reply()  # type: ignore[union-attr]
    stop = stop or trio.CancelScope()
    inline: list[InlineConsumer] = [c for c in consumers if hasattr(c, "take")]  # type: ignore[misc]
    channelled = [c for c in consumers if not hasattr(c, "take")]
    feed = _Feed(reply, inline)
    if not channelled:  # nothing to run beside the producer: not even a nursery
        try:
            await _produce(produce, feed, stop)
        finally:
            feed.finish()
        if settle:
            await feed.settle()
        return reply
    async with trio.open_nursery() as nursery:
        send, receive = trio.open_memory_channel[Batch](BUFFER)
        outlets: list[trio.MemorySendChannel[Batch]] = []
        for consume in channelled:
            outlet, inlet = trio.open_memory_channel[Batch](BUFFER)
            outlets.append(outlet)
            nursery.start_soon(consume, inlet)  # type: ignore[arg-type]
        nursery.start_soon(_fan_out, receive, outlets, feed)
        async with send:
            await _produce(produce, send, stop)
    if settle:
        await feed.settle()
    return reply


async def _produce(produce: Producer, send: BatchSend, stop: trio.CancelScope) -> None:
    """The producer inside ``stop``; then, if it was stopped, the batch that says why."""
    with stop:
        await produce(send)
    if stop.cancelled_caught:
        if trio.current_time() >= stop.deadline:
            message = "the reply took longer than the time allowed (--timeout)"
            await send.send([StreamError("timeout", message)])
        else:
            await send.send([Finish("cancelled")])


class _Feed:
    """Each batch once: whole tool calls assembled, added to the reply, given to the
    inline consumers. It is the producer's ``send`` when no consumer needs a channel.
    """

    def __init__(self, reply: Reply, inline: list[InlineConsumer]) -> None:
        self.reply = reply
        self.inline = inline
        self.calls = ToolCallAssembler()  # producers emit fragments only
        self.finished = False

    def add(self, batch: Batch) -> Batch:
        batch = self.calls.feed(batch)
        self._take(batch)
        return batch

    async def send(self, value: Batch) -> None:
        # No checkpoint: the producer's own network or thread waits are its
        # checkpoints, and a memory channel's would cost a task switch a batch.
        self.add(value)

    def finish(self) -> Batch:
        """The tool calls still open, as a last batch; then ``end()`` for each consumer."""
        if self.finished:
            return []
        self.finished = True
        tail = self.calls.close()
        if tail:
            self._take(tail)
        for consumer in self.inline:
            consumer.end()
        return tail

    async def settle(self) -> None:
        """Wait for the inline consumers that finish in the background."""
        for consumer in self.inline:
            settle = getattr(consumer, "settle", None)
            if settle is not None:
                await settle()

    def _take(self, batch: Batch) -> None:
        self.reply.add(batch)
        for consumer in self.inline:
            consumer.take(batch)


async def _fan_out(
    receive: trio.MemoryReceiveChannel[Batch],
    outlets: list[trio.MemorySendChannel[Batch]],
    feed: _Feed,
) -> None:
    """Record each batch (``feed``), then hand it to every channel consumer."""
    async with receive:
        try:
            async for batch in receive:
                batch = feed.add(batch)
                for outlet in outlets:
                    await outlet.send(batch)
            tail = feed.finish()
            if tail:
                for outlet in outlets:
                    await outlet.send(tail)
        finally:
            feed.finish()
            for outlet in outlets:
                outlet.close()
