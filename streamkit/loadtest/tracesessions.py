"""``--trace`` sessions: a trace's requests that share a ``session_id`` are one conversation.

A session's later turn carries the session's earlier prompts and the replies
the server actually gave to them, in order, as ``--sessions`` does for a
dataset's conversations (sessions.py): the server sees the history a chat
client would send, and a prefix cache has it to reuse. A record's input
length is that of its own new prompt; the history comes on top of it. For
the completions endpoint the history is the earlier prompts and replies as
one text, one a line.

Each turn is still due at its own trace time. When the session's previous
turn has not finished by then, the turn waits for it (a user does not send
the next message before the reply has arrived) and the wait counts as
schedule lag, as a late send does under ``--rate``: latencies from the
scheduled time include it, so a server too slow for the trace cannot hide
that behind the history. A turn that fails ends its session, as in
``--sessions``: there is no reply to carry on with, so the session's later
turns are not sent.

With several workers a session's turns all go to one worker, where its
history is; records without a session are dealt as every other schedule is.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import msgspec
import trio

from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.sessions import Sender, history_tokens
from streamkit.loadtest.workload import Item
from streamkit.request import GenerationRequest, Message


def trace_share(
    times: Sequence[float], items: Sequence[Item], part: tuple[int, int]
) -> list[tuple[int, float]]:
    """Worker ``k`` of ``n``'s ``(index, time)`` arrivals of a trace.

    A record with a session goes to the worker of its session's number, so
    that one process holds the whole conversation; the others every n-th,
    as ``schedule.split`` deals them.
    """
    k, n = part
    return [
        (index, at)
        for index, at in enumerate(times)
        if (index if items[index].session is None else items[index].session) % n == k
    ]


class TraceSessions:
    """The conversations of one trace replay, each session's turns played in order."""

    def __init__(self, sender: Sender) -> None:
        self._sender = sender
        self._history: dict[int, list[Message]] = {}
        self._last: dict[int, trio.Event] = {}  # set when the session's latest turn is over
        self._ended: set[int] = set()  # sessions a failed turn ended

    def turn(
        self,
        index: int,
        item: Item,
        scheduled: float,
        origin: float,
        record: Callable[[Sample], None],
    ) -> Callable[[], Awaitable[None]]:
        """The turn of ``item`` (which has a session), placed after every turn of its
        session taken so far: call this in trace order, and run what it returns."""
        assert item.session is not None
        session = item.session
        previous = self._last.get(session)
        over = self._last[session] = trio.Event()

        async def play() -> None:
            try:
                if previous is not None:
                    await previous.wait()
                if session not in self._ended:
                    await self._play(session, index, item, scheduled, origin, record)
            finally:
                over.set()

        return play

    async def _play(
        self,
        session: int,
        index: int,
        item: Item,
        scheduled: float,
        origin: float,
        record: Callable[[Sample], None],
    ) -> None:
        history = self._history.setdefault(session, [])
        history.append(_own_prompt(item.request))
        sent = msgspec.structs.replace(
            item,
            request=_with_history(item.request, history),
            prompt_tokens=history_tokens(self._sender.tokenizer, history),
        )
        measurement = await self._sender.send(index, sent, scheduled, origin, record)
        if measurement.error is not None:
            self._ended.add(session)
        else:
            history.append(Message("assistant", "".join(measurement.text)))


def _own_prompt(request: GenerationRequest) -> Message:
    if request.kind == "completion":
        return Message("user", request.prompt)
    return request.messages[-1]


def _with_history(request: GenerationRequest, history: list[Message]) -> GenerationRequest:
    if request.kind == "completion":
        return msgspec.structs.replace(request, prompt="\n".join(m.content for m in history))
    return msgspec.structs.replace(request, messages=tuple(history))
