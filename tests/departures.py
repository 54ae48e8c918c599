"""When a scripted server's bytes left: the kernel's transmit stamp of each send.

Why: the timed server's truth was its own clock read just before a token's
send. A server preempted between that reading and the send (at c=256 it
shares two cores with the client under test) put its delay into the truth,
and the client, whose reads carry the kernel's receive stamps, was charged
with it: an ITL |p99| error of 2.7 ms at c=256 with no tokens read late.
With ``SO_TIMESTAMPING`` and ``SOF_TIMESTAMPING_TX_SOFTWARE`` the kernel
stamps each ``send`` as it hands the data to the device, which on loopback
is inside the send itself (the client's receive stamp follows it by 2-8 µs
here): the stamp of the moment the bytes left, whatever the server's event
loop was doing around it.

How: the stamp comes on the socket's error queue, keyed (``OPT_ID``) by the
offset of the send's last byte among all the bytes sent since the option was
set, so every byte of the connection goes through ``StampedSender.send_all``
and the key of a send is known. The queue is read at once after each send
(``MSG_ERRQUEUE | MSG_DONTWAIT``, on a duplicate of the socket, since Trio's
``recvmsg`` would wait for readability): on loopback the stamp is there by
then, and an empty queue never wakes the event loop. A send whose stamp is
not there yet (TCP held the bytes back: a full window) has none, and its
time is the server's clock, as before.

Off where ``kernelstamps`` is (a ``MockClock``, off Linux) and when the
socket refuses the option: every ``last_sent`` is then None.
"""

from __future__ import annotations

import os
import socket
import struct

import trio
from arrivals import arrival_clock

SO_TIMESTAMPING = 37  # Linux's value, also SCM_TIMESTAMPING (asm-generic/socket.h)
_FLAGS = (
    (1 << 1)  # SOF_TIMESTAMPING_TX_SOFTWARE: stamp when the data reaches the device
    | (1 << 4)  # SOF_TIMESTAMPING_SOFTWARE: report software stamps
    | (1 << 7)  # SOF_TIMESTAMPING_OPT_ID: key each stamp by its byte offset
    | (1 << 11)  # SOF_TIMESTAMPING_OPT_TSONLY: the stamp without a copy of the data
)
_TIMESPEC = struct.Struct("@ll")  # the first of scm_timestamping's three: software
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # sock_extended_err; the key is ee_data, last
_RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}  # IP_RECVERR, IPV6_RECVERR
ANCILLARY = 512


class StampedSender:
    """Sends a connection's bytes as ``send_all`` does; ``last_sent``: when the last
    send's last byte left (the Trio time of its kernel stamp), or None."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self._stream = stream
        self._kernel = arrival_clock()
        self._queue: socket.socket | None = None
        if self._kernel is not None:
            try:
                stream.socket.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, _FLAGS)
                self._queue = socket.socket(fileno=os.dup(stream.socket.fileno()))
            except OSError:
                self._kernel = None
        self._sent = 0  # bytes since the option was set: the key of the next stamp follows
        self.last_sent: float | None = None

    async def send_all(self, data: bytes) -> None:
        await self._stream.send_all(data)
        self._sent += len(data)
        if self._queue is None:
            return
        self.last_sent = self._drain().get(self._sent - 1)

    def _drain(self) -> dict[int, float]:
        """Every stamp on the error queue, by key, as Trio times."""
        assert self._queue is not None and self._kernel is not None
        stamps: dict[int, float] = {}
        while True:
            try:
                _, ancillary, _, _ = self._queue.recvmsg(
                    0, ANCILLARY, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
                )
            except (BlockingIOError, InterruptedError):
                return stamps
            stamp = key = None
            for level, kind, data in ancillary:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING:
                    sec, nsec = _TIMESPEC.unpack_from(data)
                    stamp = self._kernel.at_ns(sec * 1_000_000_000 + nsec)
                elif (level, kind) in _RECVERR:
                    key = _EXTENDED_ERR.unpack_from(data)[-1]
            if stamp is not None and key is not None:
                stamps[key] = stamp

    def close(self) -> None:
        if self._queue is not None:
            self._queue.close()
            self._queue = None


__all__ = ["StampedSender"]
