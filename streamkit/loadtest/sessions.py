"""``--sessions N``: N users, each playing conversations of the dataset turn by turn.

A turn's request carries the whole history: the system prompt, every
earlier user turn, and the reply the server actually gave to it (not the
dataset's reply, whose length only sets how long the server's should be), as
a chat client would send it. Between a reply and the next turn the user
thinks (``--think-time``, drawn from a generator seeded by the run's seed
and the conversation), so the server sees the idle gaps real users leave.
A turn that fails ends its conversation: there is no reply to carry on with.

Each sample carries its conversation (``session``) and ``turn`` (1-based):
the report gives figures per turn index, where TTFT grows with the history.
"""

from __future__ import annotations

import itertools
import math
import random
from collections.abc import Callable
from typing import Protocol

import trio

from streamkit.loadtest.client import Measurement
from streamkit.loadtest.conversations import Conversation
from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.schedule import ThinkTime, parse_think_time, share
from streamkit.loadtest.workload import Item, Workload
from streamkit.providers.llama.tokenizer import Tokenizer
from streamkit.request import GenerationOptions, GenerationRequest, Message


class Sender(Protocol):
    """What a conversation's turns need of the runner (runner.py): its tokenizer, to
    count a history, and its ``send``. Trace sessions (tracesessions.py) need no more."""

    tokenizer: Tokenizer | None

    async def send(
        self,
        index: int,
        item: Item,
        scheduled: float | None,
        origin: float,
        record: Callable[[Sample], None],
    ) -> Measurement: ...


class Runner(Sender, Protocol):
    """What a sessions run needs of the runner (runner.py, which calls ``play``)."""

    workload: Workload
    part: tuple[int, int]


class Spec(Protocol):
    concurrency: int | None
    requests: int | None
    duration: float | None
    seed: int
    ramp_up: float
    think_time: str | None


async def play(
    runner: Runner,
    spec: Spec,
    origin: float,
    record: Callable[[Sample], None],
    stop: trio.CancelScope,
) -> None:
    """The run: ``spec.concurrency`` users sharing this worker's conversations."""
    conversations = runner.workload.conversations
    k, n = runner.part
    count = spec.requests if spec.requests is not None else len(conversations)
    numbers = iter(range(k, count, n))  # shared: each conversation is played by one user
    users = max(1, share(spec.concurrency or 1, (k, n)))
    think = parse_think_time(spec.think_time) if spec.think_time else ThinkTime("fixed", 0.0)
    limit = origin + spec.duration if spec.duration else math.inf
    indices = itertools.count(k, n)  # sample indices, unique across workers

    async def user(number: int) -> None:
        if spec.ramp_up:
            await trio.sleep_until(origin + spec.ramp_up * number / users)
        for conversation_number in numbers:
            if trio.current_time() >= limit or stop.cancel_called:
                return
            conversation = conversations[conversation_number % len(conversations)]
            rng = random.Random(f"{spec.seed}/{conversation_number}")
            await _conversation(
                runner,
                conversation,
                conversation_number,
                rng,
                think,
                limit,
                origin,
                record,
                stop,
                indices,
            )

    async with trio.open_nursery() as nursery:
        for number in range(users):
            nursery.start_soon(user, number)


async def _conversation(
    runner: Runner,
    conversation: Conversation,
    number: int,
    rng: random.Random,
    think: ThinkTime,
    limit: float,
    origin: float,
    record: Callable[[Sample], None],
    stop: trio.CancelScope,
    indices: itertools.count[int],
) -> None:
    workload = runner.workload
    history: list[Message] = []
    if conversation.system:
        history.append(Message("system", conversation.system))
    for turn_number, turn in enumerate(conversation.turns, 1):
        if turn_number > 1:
            await trio.sleep(think.draw(rng))
            if trio.current_time() >= limit or stop.cancel_called:
                return
        history.append(Message("user", turn.user))
        options = GenerationOptions(max_tokens=turn.output_tokens, temperature=workload.temperature)
        request = GenerationRequest("chat", workload.model, options, messages=tuple(history))
        item = Item(
            request,
            history_tokens(runner.tokenizer, history),
            turn.output_tokens,
            session=number,
            turn=turn_number,
        )
        measurement = await runner.send(next(indices), item, None, origin, record)
        if measurement.error is not None:
            return
        history.append(Message("assistant", "".join(measurement.text)))


def history_tokens(tokenizer: Tokenizer | None, history: list[Message]) -> int:
    """The history's length in the model's tokens (the server's usage, when it sends
    one, replaces it in the sample); without a tokenizer, its words."""
    text = "\n".join(m.content for m in history)
    if tokenizer is not None:
        return tokenizer.count(text)
    return len(text.split())
