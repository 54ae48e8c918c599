"""A chat session: the history, the log, the tools, and how one turn runs."""

from __future__ import annotations

import sys

import msgspec

from streamkit.config import Settings
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.toolloop import run_with_tools
from streamkit.pipeline.turn import stream_turn
from streamkit.protocol.history import fit_history
from streamkit.protocol.reply import Reply
from streamkit.providers.backend import Backend
from streamkit.request import GenerationOptions, GenerationRequest, Message
from streamkit.sinks.printer import Display, ReasoningView
from streamkit.sinks.recorder import ConversationLog
from streamkit.tools.dispatch import Dispatcher


class ChatSession:
    """Runs the turns of one conversation, to stdout and the log."""

    def __init__(
        self,
        backend: Backend,
        settings: Settings,
        options: GenerationOptions,
        history: list[Message],
        *,
        interrupts: Interrupts,
        log: ConversationLog | None,
        events: bool = False,
        stats: bool = False,
        dispatcher: Dispatcher | None = None,
        max_hops: int = 8,
        tool_choice: str | None = None,
        reasoning: ReasoningView | None = None,
        display: Display = "plain",
    ) -> None:
        self.backend = backend
        self.settings = settings
        self.options = options
        self.history = history
        self.interrupts = interrupts
        self.log = log
        self.events = events
        self.stats = stats
        self.dispatcher = dispatcher
        self.max_hops = max_hops
        self.tool_choice = tool_choice
        self.reasoning = reasoning  # where thinking is shown (None: nowhere)
        self.display = display  # how the reply's text is shown
        self.last_reply: Reply | None = None  # for /tokens: what the server counted
        self._counted: tuple[Message, ...] = ()  # the history that count was of

    async def ask(self, text: str) -> Reply:
        """One user message and the model's answer (after any tool calls)."""
        self.history.append(Message("user", text))
        request = await fitted_request(
            self.backend, self.settings.model, self.options, self.history
        )
        if self.dispatcher is not None:
            request = msgspec.structs.replace(request, tool_choice=self.tool_choice)
            reply = await run_with_tools(
                self.backend,
                request,
                self.history,
                dispatcher=self.dispatcher,
                max_hops=self.max_hops,
                guard=self._guard,
                events=self.events,
                stats=self.stats,
                log=self.log,
                prompt_text=text,
                fit=self._fit,
                reasoning=self.reasoning,
                display=self.display,
            )
        else:
            with self._guard() as scope:
                reply = await stream_turn(
                    self.backend,
                    request,
                    stop=scope,
                    events=self.events,
                    stats=self.stats,
                    log=self.log,
                    prompt_text=text,
                    reasoning=self.reasoning,
                    display=self.display,
                )
        self.last_reply = reply
        if reply.text:
            self.history.append(Message("assistant", reply.text))
        elif self.history[-1].role == "user":
            self.history.pop()  # nothing came back: the user may ask again
        self._counted = tuple(self.history)
        return reply

    async def context_use(self) -> str:
        """One line: the tokens the conversation takes, against what the context allows.

        The server's own count (the last reply's usage) when it sent one and
        the history has not changed since; else the backend's count of the
        history (approximate for a remote server), said to be one.
        """
        request = GenerationRequest(
            "chat", self.settings.model, self.options, messages=tuple(self.history)
        )
        budget = await self.backend.context_budget(request)
        usage = self.last_reply.usage if self.last_reply is not None else None
        answered = bool(self.history) and tuple(self.history) == self._counted
        messages = f"{len(self.history)} message(s)"
        if usage is not None and usage.prompt_tokens is not None and answered:
            used = usage.prompt_tokens + (usage.completion_tokens or 0)
            line = (
                f"{used} tokens in {messages}, as the server counted the last "
                f"exchange ({usage.prompt_tokens} prompt + {usage.completion_tokens or 0}"
                " reply)"
            )
        elif budget is not None:
            line = f"about {budget[1](self.history)} tokens in {messages} (streamkit's count)"
        else:
            size = sum(len(m.content) for m in self.history)
            return (
                f"{size} characters in {messages}; the server reported no token usage "
                "and the context window is unknown (context_tokens in the profile)"
            )
        if budget is None:
            return line + "; the context window is unknown (context_tokens in the profile)"
        return (
            line + f", of the {budget[0]} the prompt may use (the context window less "
            "room for the reply)"
        )

    def _guard(self):
        return self.interrupts.guard(self.settings.timeout)

    async def _fit(self, history: list[Message]) -> tuple[Message, ...]:
        """What is sent of ``history``: see ``fitted_request``."""
        request = await fitted_request(self.backend, self.settings.model, self.options, history)
        return request.messages


async def fitted_request(
    backend: Backend, model: str | None, options: GenerationOptions, history: list[Message]
) -> GenerationRequest:
    """The chat request for ``history``, its oldest turns dropped if the model needs it.

    ``history`` itself keeps everything (it is what the log and later turns
    see); only what is sent shrinks, and the user is told.
    """
    request = GenerationRequest("chat", model, options, messages=tuple(history))
    budget = await backend.context_budget(request)
    if budget is None:
        return request
    limit, count = budget
    messages, dropped = fit_history(history, limit, count)
    if dropped:
        print(
            f"streamkit: the conversation is longer than the context window; "
            f"sending it without its {dropped} oldest message(s)",
            file=sys.stderr,
        )
    return msgspec.structs.replace(request, messages=tuple(messages))
