"""Kernel receive stamps for bench's reads (``timing_source: "kernel"`` in the report).

Why: a read timed by the clock after it returns is late by the event loop's turn: under
load, every read waits for the reads queued before it (at c=256 that was
most of the TTFT error). So on Linux each socket has ``SO_TIMESTAMPNS``
(35; the socket module has no constant) and is read with ``recvmsg``: the
ancillary ``SCM_TIMESTAMPNS`` (also 35) is a ``struct timespec`` (two
native longs) of ``CLOCK_REALTIME``, taken when the packet entered the
receive path (on loopback, ``netif_rx`` in the sender's transmit: the
server's send, to a few µs). It is mapped to the Trio clock by an offset
sampled once per target (``KernelClock``): ``time.time_ns()`` between two
``trio.current_time()`` calls, the narrowest of a few tries; the mapping's
error is half that window (well under 1 µs here; printed by the test) plus
any step of the wall clock during the run (``settimeofday``, a leap second:
NTP's slewing moves ``CLOCK_REALTIME`` and ``CLOCK_MONOTONIC`` alike and
changes nothing). A read that spans several segments carries one stamp:
the one of the last skb copied into it (``tcp_recvmsg`` updates its stamp
for each skb it copies and reports it once, after the loop; and segments
coalesced in the receive queue keep the later segment's stamp,
``tcp_try_coalesce``), i.e. when the newest byte of the read arrived. That
is the stamp of the read, as the clock was, only without the loop's lag:
chunks read together are 0 ms apart either way
(``test_kernel_stamp_of_a_read_spanning_segments`` checks it). Kernel
stamps are off, and every read timed by the clock, when the Trio clock is
not the system clock (a test's ``MockClock``: a wall-clock stamp means
nothing on it), off Linux, and when the option is refused; a read that
brings no stamp (end of stream) is timed by the clock.

Measured (bench/bench_accuracy.py, client and server on 2 cores): with the
lean read loop (rawhttp.py), ITL |p99| error 0.5-0.9 ms at c=64 with kernel
stamps, 1.4-3.3 ms with the clock; at c=256, 0.05-34 ms (kernel) and 9-15 ms
(clock) from run to run. Kernel stamps are kept. What they cannot mend: a
loop more than one token gap behind reads two tokens at once, and the
kernel keeps one stamp (the later) for them (at c=256 on a shared machine,
0-768 gaps in 8,000 from run to run, an ITL |p99| of 0.06-22 ms). The
TTFT tail (p99 4-60 ms at c=256 either way) was not in the reads' stamps:
it was the timed server's truth, which started when its loaded event loop
read the request (now at the request's arrival, its kernel stamp), and the
client's own building of each request, inside every TTFT (now timed from
its send, rawhttp.py); with both, TTFT p99 error 0.13-0.28 ms at every
level (two ``--quick`` runs). Part of the ITL tail was in that truth too:
the server read its clock before each token's send, and a server preempted
in between sent later than it said. With the truth at the kernel's
transmit stamps (tests/departures.py), ITL |p99| error 0.01 ms at c=64
and c=256, TTFT p99 0.11 and 0.09 ms (one full run).
"""

from __future__ import annotations

import math
import socket
import struct
import sys
import time

import trio

SO_TIMESTAMPNS = 35  # Linux's value (asm-generic/socket.h); also SCM_TIMESTAMPNS
_TIMESPEC = struct.Struct("@ll")  # struct timespec: tv_sec, tv_nsec (native longs)
ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size)


class KernelClock:
    """Maps a kernel ``CLOCK_REALTIME`` receive stamp onto the Trio clock.

    The offset is sampled once: ``time.time_ns()`` between two readings of
    the Trio clock, the narrowest window of a few tries; ``error`` is half
    that window, the most the mapping can be off by (a wall-clock step
    during the run aside).
    """

    __slots__ = ("_real_ns", "_trio", "error")

    def __init__(self) -> None:
        best = math.inf
        self._real_ns, self._trio = 0, 0.0
        for _ in range(8):
            before = trio.current_time()
            real_ns = time.time_ns()
            after = trio.current_time()
            if after - before < best:
                best = after - before
                self._real_ns, self._trio = real_ns, (before + after) / 2
        self.error = best / 2

    def at(self, ancillary: list[tuple[int, int, bytes]]) -> float | None:
        """The Trio time of a read's stamp, or None when it brought none."""
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                sec, nsec = _TIMESPEC.unpack_from(data)
                return self.at_ns(sec * 1_000_000_000 + nsec)
        return None

    def at_ns(self, real_ns: int) -> float:
        """The Trio time of a ``CLOCK_REALTIME`` stamp in nanoseconds."""
        return self._trio + (real_ns - self._real_ns) * 1e-9


def kernel_clock() -> KernelClock | None:
    """Kernel stamps if they can be had and mapped here, else None (time by the clock).

    Called inside ``trio.run``. Off for any clock but Trio's own (a
    ``MockClock`` has nothing to do with the wall clock) and off Linux;
    probed on a throwaway socket so that a refusal shows before any request.
    """
    if sys.platform != "linux" or type(trio.lowlevel.current_clock()).__name__ != "SystemClock":
        return None
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return None
    return KernelClock()


__all__ = ["ANCILLARY_SIZE", "SO_TIMESTAMPNS", "KernelClock", "kernel_clock"]
