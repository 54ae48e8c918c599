"""Scoring text on a server: echoed prompt log-probabilities, checked before trusted.

The server is asked for ``/completions`` with the whole text as the prompt,
``echo``, ``logprobs`` and one generated token (``max_tokens`` 0 is refused
by some servers). The echoed entries past the context are the score; the
split follows the server's tokens by character offset, a token straddling
the end of the context belongs to the continuation (as in local scoring).

Before the first result is trusted, one echoed position is compared with the
server's ordinary next-token answer for the same prefix
(``protocol/echo.check_position``). A server that fails the check still gets
its numbers written, each result marked ``"trusted": false``, and the command
ends with a protocol error saying why.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import trio

from streamkit.errors import HTTPStatusError, ModelError, UsageError
from streamkit.protocol.context_limit import exceeds_context
from streamkit.protocol.echo import (
    EchoedPrompt,
    check_position,
    first_continuation_token,
    generated_top,
    parse_echo,
)
from streamkit.protocol.scoring import ScoreResult, build_result
from streamkit.providers.openai_http import OpenAIHTTPProducer

CHECK_ALTERNATIVES = 5  # top_logprobs asked for the consistency check's reference


class RemoteScorer:
    """Scores texts with one server's echoed log-probabilities."""

    def __init__(self, producer: OpenAIHTTPProducer, model: str | None) -> None:
        self.producer = producer
        self.model = model
        self.problem: str | None = None  # why the server's scores are not trusted
        self._checked = False
        self._check_lock = trio.Lock()

    async def score(
        self,
        record_id: Any,
        context: str,
        continuation: str,
        *,
        top: int = 0,
        ranges: Sequence[tuple[int, int]] = (),
    ) -> ScoreResult:
        if not continuation:
            raise UsageError("nothing to score: the continuation is empty")
        prompt = context + continuation
        try:
            payload = await self.producer.request_json(
                "POST", "completions", self._body(prompt, max(top, 1), echo=True)
            )
        except HTTPStatusError as exc:
            if exceeds_context(exc.message):  # as a local model says it: one exit code
                raise ModelError(exc.message, status=exc.status) from None
            raise
        echo = parse_echo(payload, prompt)
        first = first_continuation_token(echo, len(context))
        scored = [i for i in range(first, len(echo.tokens)) if echo.logprobs[i] is not None]
        if not scored:
            raise UsageError("nothing to score: the continuation adds no token")
        await self._check_once(prompt, echo)
        alternatives = [echo.top[i] or {} for i in scored]
        return build_result(
            record_id,
            [echo.tokens[i].encode() for i in scored],
            [echo.logprobs[i] for i in scored],
            is_greedy=all(
                top_of and max(top_of, key=top_of.__getitem__) == echo.tokens[i]
                for i, top_of in zip(scored, alternatives, strict=True)
            ),
            top_logprobs=[
                dict(sorted(a.items(), key=lambda kv: -kv[1])[:top]) for a in alternatives
            ]
            if top
            else None,
            continuation=continuation,
            ranges=ranges,
            trusted=self.problem is None,
        )

    async def _check_once(self, prompt: str, echo: EchoedPrompt) -> None:
        """Compare one echoed position with the server's next-token answer, once a run.

        The position is the last token that starts a word (the prompt is cut
        just before its space, where any tokenizer splits the same way), else
        the last token.
        """
        async with self._check_lock:
            if self._checked:
                return
            candidates = [
                i
                for i, offset in enumerate(echo.offsets)
                if offset > 0 and echo.logprobs[i] is not None
            ]
            if not candidates:
                return  # one token: nothing to compare yet; a longer text will be checked
            words = [i for i in candidates if echo.tokens[i][:1].isspace()]
            index = (words or candidates)[-1]
            answer = await self.producer.request_json(
                "POST",
                "completions",
                self._body(prompt[: echo.offsets[index]], CHECK_ALTERNATIVES, echo=False),
            )
            self.problem = check_position(echo, index, generated_top(answer))
            self._checked = True

    def _body(self, prompt: str, alternatives: int, *, echo: bool) -> dict[str, Any]:
        body: dict[str, Any] = {
            "prompt": prompt,
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": alternatives,
            "echo": echo,
        }
        if self.model:
            body["model"] = self.model
        return body
