"""When a request reached a scripted server: the kernel's receive stamp of its bytes.

Why: a server's event loop reads a request late when it is busy (at c=256 the
timed server, in Python on a shared core, was tens of ms behind), and a TTFT
timed from that read leaves the wait out, which a serving team counts as
part of TTFT and a client cannot help timing from its send. So a connection
is read with ``recvmsg`` and ``SO_TIMESTAMPNS``, as bench's client reads
(``streamkit/loadtest/kernelstamps.py``, whose mapping onto the Trio clock
is reused): each read brings the ``CLOCK_REALTIME`` stamp the kernel put on
the newest segment it copied, on loopback taken in the sender's ``send``.

For a request that spans several segments (head and body in two writes, a
body larger than one segment), the read that completes it reports the
stamp of the last segment it copied (``tcp_recvmsg`` keeps the stamp of
each skb it copies and reports the last; segments coalesced in the receive
queue keep the later one's, ``tcp_try_coalesce``): the arrival of the
request's last byte, whether the earlier segments were read before it or
in the same read. Two limits, neither met by bench: bytes of a pipelined
next request copied in that same read make the stamp theirs (later); and a
request completed from bytes an earlier read left in the buffer carries
that read's stamp.

Off (each read timed by the Trio clock as it returns, the old app-side
time) where kernelstamps is: under a ``MockClock``, off Linux, or when the
socket refuses the option.
"""

from __future__ import annotations

import math
import socket

import trio

from streamkit.loadtest.kernelstamps import (
    ANCILLARY_SIZE,
    SO_TIMESTAMPNS,
    KernelClock,
    kernel_clock,
)

_KERNEL: trio.lowlevel.RunVar[KernelClock | None] = trio.lowlevel.RunVar("arrivals_kernel")


def arrival_clock() -> KernelClock | None:
    """This run's mapping of kernel stamps (None: none), made once per run, as a Trio
    ``SystemClock`` has a new offset each run; a test reads its ``error`` bound."""
    try:
        return _KERNEL.get()
    except LookupError:
        clock = kernel_clock()
        _KERNEL.set(clock)
        return clock


class StampedReceiver:
    """Reads a connection as ``receive_some`` does, keeping when the last read's bytes came.

    ``arrived``: the Trio time of the newest byte of the last read (the
    kernel's stamp, else the clock as the read returned); NaN before any.
    """

    def __init__(self, stream: trio.SocketStream) -> None:
        self._socket = stream.socket
        self._kernel = arrival_clock()
        if self._kernel is not None:
            try:
                self._socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
            except OSError:
                self._kernel = None
        self._ancillary = 0 if self._kernel is None else ANCILLARY_SIZE
        self.arrived = math.nan

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        """Up to ``max_bytes`` (64 KiB if None); ``b""`` at the end of the stream; a reset
        is ``trio.BrokenResourceError``, as from ``trio.SocketStream``."""
        try:
            data, ancillary, _, _ = await self._socket.recvmsg(max_bytes or 65536, self._ancillary)
        except OSError as exc:  # a reset: as trio's streams say it
            raise trio.BrokenResourceError(exc) from exc
        stamp = None if self._kernel is None else self._kernel.at(ancillary)
        self.arrived = trio.current_time() if stamp is None else stamp
        return data


__all__ = ["StampedReceiver", "arrival_clock"]
