"""A scripted HTTP/1.1 server that ends kept-alive connections the way real servers do.

Real servers (llama.cpp's ``llama-server`` among them) close an idle
keep-alive connection on their own schedule, without a ``Connection: close``
on the answer before: a client that sends its next request on it in that
moment gets the connection closed under it, with no byte of an answer. That
race cannot be produced on demand against a real server, so this one scripts
it: each connection answers ``answers`` requests, then reads one more and
closes the connection, ``drop_after`` seconds later, without answering.

It also answers with ``Connection: close`` or as HTTP/1.0 and keeps the
connection open all the same, so that a client that reused such a connection
would be seen doing it (``answered`` counts the requests served on each
connection).

Run in the test's own Trio loop (``nursery.start(server.serve)`` gives the
port), so that under ``trio.testing.MockClock`` its delays are exact.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import trio

TOKENS = ("Hello", ",", " world")


@dataclass
class ClosingServer:
    # requests each connection answers before it drops the next one; a list gives
    # them connection by connection (its last value for the rest); None: all
    answers: int | list[int] | None = None
    drop_after: float = 0.0  # seconds from reading the dropped request to closing
    ttft: float = 0.0  # seconds from reading a request to the whole answer
    status_line: bytes = b"HTTP/1.1 200 OK"
    close_header: bool = False  # answer with "Connection: close" (and stay open)
    answered: list[int] = field(default_factory=list)  # requests answered, by connection
    dropped: int = 0

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        async with trio.open_nursery() as nursery:
            nursery.start_soon(trio.serve_listeners, self._handle, listeners)
            task_status.started(listeners[0].socket.getsockname()[1])

    async def _handle(self, stream: trio.SocketStream) -> None:
        index = len(self.answered)
        self.answered.append(0)
        answers = self.answers
        if isinstance(answers, list):
            answers = answers[min(index, len(answers) - 1)]
        buffer = bytearray()
        async with stream:
            while await _read_request(stream, buffer):
                if answers is not None and self.answered[index] == answers:
                    self.dropped += 1
                    await trio.sleep(self.drop_after)
                    return
                await trio.sleep(self.ttft)
                self.answered[index] += 1
                await stream.send_all(self._answer())

    def _answer(self) -> bytes:
        body = (
            b"".join(
                b"data: "
                + json.dumps({"choices": [{"index": 0, "delta": {"content": token}}]}).encode()
                + b"\n\n"
                for token in TOKENS
            )
            + b"data: [DONE]\n\n"
        )
        head = [
            self.status_line,
            b"Content-Type: text/event-stream",
            b"Content-Length: " + str(len(body)).encode(),
        ]
        if self.close_header:
            head.append(b"Connection: close")
        return b"\r\n".join(head) + b"\r\n\r\n" + body


async def _read_request(stream: trio.SocketStream, buffer: bytearray) -> bool:
    """Read one request (head and Content-Length body); False when the client closed."""
    while b"\r\n\r\n" not in buffer:
        data = await stream.receive_some()
        if not data:
            return False
        buffer += data
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    length = next(
        (
            int(line.split(b":")[1])
            for line in head.split(b"\r\n")
            if line.lower().startswith(b"content-length:")
        ),
        0,
    )
    while len(rest) < length:
        data = await stream.receive_some()
        if not data:
            return False
        rest += data
    buffer[:] = rest[length:]
    return True
