"""The local producer: a GGUF model run by llama-cpp-python in a worker thread.

Threading
    llama.cpp computes each token in C, holding the GIL only between tokens, so
    generation runs in a worker thread (``trio.to_thread.run_sync``) while the
    event loop keeps printing. One ``CapacityLimiter(1)`` per loaded model:
    a ``Llama`` object is not safe to use from two threads at once.

Crossing the thread boundary
    The thread appends events to a ``Mailbox`` and wakes the Trio side only
    when it is waiting, so when the consumer is slower than the model, tokens
    cross in batches (one wake-up, one channel send for many tokens). The
    mailbox (``streamkit.providers.llama.mailbox``) is bounded: past its limit
    the thread waits, which is the producer's share of the backpressure.

Cancellation within one token
    Before each token the thread calls ``trio.from_thread.check_cancelled()``
    and looks at the mailbox's abort flag (set when the consumer went away).
    So Ctrl-C, ``--timeout`` or a closed channel stop generation at the next
    token boundary; the thread always returns before ``stream`` does -- it is
    never abandoned while it holds the model -- and the tokens generated up to
    then are delivered (the pipeline then adds ``Finish("cancelled")``).

KV cache
    The ``Llama`` object is loaded once per backend and reused across turns;
    ``Llama.generate`` keeps the KV cache of the longest common token prefix,
    so a chat turn only evaluates what is new since the previous one.
"""

from __future__ import annotations

import codecs
import contextlib
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from streamkit.config import DEFAULT_MAX_REPLY_BYTES
from streamkit.errors import ModelError, ProtocolError, UsageError, one_line
from streamkit.events import (
    BatchSend,
    Event,
    Finish,
    StreamError,
    TextDelta,
    TokenLogprob,
    Usage,
)
from streamkit.protocol.reply_limit import ReplyLimit
from streamkit.protocol.stops import StopFilter
from streamkit.protocol.structured import bounded_schema
from streamkit.protocol.think import Part, ThinkSplitter, emit, opens_thinking, split_into
from streamkit.providers.llama.mailbox import Mailbox
from streamkit.providers.llama.model import LocalModel
from streamkit.providers.llama.sampling import local_request
from streamkit.request import GenerationRequest, Message

if TYPE_CHECKING:
    from llama_cpp import Llama

    from streamkit.protocol.json_parse import JSONStream

THREAD_NAME = "streamkit-llama"

# llama.cpp's defaults for the sampling options a request leaves unset.
DEFAULT_TEMPERATURE = 0.8
DEFAULT_TOP_P = 0.95
# With a schema: within this many tokens of max_tokens, check each token whether
# closing the JSON document would take the rest of the budget.
CLOSING_WINDOW = 64


class LlamaLocalProducer:
    """Streams generation requests from a local model, in a worker thread."""

    def __init__(
        self, model: LocalModel, *, max_reply_bytes: int = DEFAULT_MAX_REPLY_BYTES
    ) -> None:
        self.model = model
        self.max_reply_bytes = max_reply_bytes  # a longer reply is cut (``ReplyLimit``)

    @property
    def model_name(self) -> str:
        return self.model.name

    @property
    def provider(self) -> str:
        return "local"

    async def stream(self, request: GenerationRequest, send: BatchSend) -> None:
        """Stream ``request`` into ``send``; a cancel stops within one token."""
        try:
            llm = await self.model.llm()
            request, sampling = local_request(request, llm.n_vocab())
        except (ModelError, UsageError) as exc:
            await send.send([StreamError(exc.kind, exc.message)])
            return
        mailbox = Mailbox()
        limit = ReplyLimit(self.max_reply_bytes)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(mailbox.drain, send, limit)
                try:
                    await trio.to_thread.run_sync(
                        self._generate,
                        request,
                        mailbox,
                        sampling,
                        limiter=self.model.limiter,
                        thread_name=THREAD_NAME,
                    )
                finally:
                    mailbox.close()
        finally:
            # Tokens generated after the drain task was cancelled are still
            # received text: hand them on (consumers are outside the cancel).
            leftover = limit.admit(mailbox.take())
            if leftover:
                # Shielded and bounded; a consumer that is gone just misses them.
                with (
                    trio.CancelScope(shield=True),
                    trio.move_on_after(1.0),
                    contextlib.suppress(trio.BrokenResourceError),
                ):
                    await send.send(leftover)

    def _generate(
        self, request: GenerationRequest, mailbox: Mailbox, sampling: dict[str, Any]
    ) -> None:
        """The worker thread: generate until done, cancelled or aborted."""
        llm = self.model._llm
        assert llm is not None
        try:
            prompt = self.model.prompt_tokens(request)
            room = llm.n_ctx() - len(prompt)
            if room <= 0:
                raise ModelError(
                    f"the prompt is {len(prompt)} tokens; the context window is {llm.n_ctx()}"
                )
            seed = request.options.seed
            llm.set_seed(seed if seed is not None else random.randrange(2**31))
            reason, count, thinking = self._sample(llm, request, prompt, room, mailbox, sampling)
        except ModelError as exc:
            mailbox.put(StreamError(exc.kind, exc.message))
            return
        except (RuntimeError, ValueError) as exc:  # llama.cpp failures
            mailbox.put(StreamError("model", f"the model failed: {one_line(exc)}"))
            return
        if reason != "cancelled":
            mailbox.put(Finish(reason))
        mailbox.put(Usage(len(prompt), count, len(prompt) + count, thinking or None))

    def _sample(
        self,
        llm: Llama,
        request: GenerationRequest,
        prompt: list[int],
        room: int,
        mailbox: Mailbox,
        sampling: dict[str, Any],
    ) -> tuple[str, int, int]:
        """Generate into ``mailbox``: the finish reason, tokens generated, and how many of
        them were thinking (``<think>`` text, when the model writes it)."""
        import llama_cpp

        opts = request.options
        limit = min(opts.max_tokens or room, room)
        decoder = codecs.getincrementaldecoder("utf-8")("replace")
        stops = StopFilter(opts.stop)
        vocab = llm._model.vocab
        want_logprobs = opts.logprobs is not None
        logprobs: list[TokenLogprob] = []  # tokens whose text is still held back
        want_ids = opts.return_token_ids
        ids: list[int] = []  # the same, as ids
        stop_ids = frozenset(opts.stop_token_ids)
        schema = bounded_schema(opts.schema) if opts.schema is not None else None
        document = _json_document() if schema is not None else None  # the JSON so far
        count = 0
        thinking = 0
        # A reasoning model's <think> block; a JSON reply (a schema) has none.
        splitter = (
            None
            if schema is not None
            else ThinkSplitter(
                inside=opens_thinking(llm.detokenize(prompt[-8:]).decode("utf-8", "replace"))
            )
        )
        reason = "length"
        tokens = llm.generate(
            prompt,
            temp=DEFAULT_TEMPERATURE if opts.temperature is None else opts.temperature,
            top_p=DEFAULT_TOP_P if opts.top_p is None else opts.top_p,
            grammar=self.model.grammar(schema) if schema is not None else None,
            **sampling,
        )
        try:
            for token in tokens:
                if mailbox.aborted:
                    return "cancelled", count, thinking
                trio.from_thread.check_cancelled()
                if llama_cpp.llama_vocab_is_eog(vocab, token) or token in stop_ids:
                    reason = "stop"
                    break
                count += 1
                piece = llm.detokenize([token])
                text = stops.feed(decoder.decode(piece))
                if want_logprobs:
                    logprobs.append(_token_logprob(llm, token, piece, opts.logprobs or 0))
                if want_ids:
                    ids.append(token)
                if splitter is not None and text:
                    thinking += splitter.in_reasoning
                    text = self._put_thinking(splitter, text, mailbox)
                    if not text:  # thinking: its tokens are not the answer's
                        logprobs, ids = [], []
                    if splitter.answering:
                        splitter = None  # from here on, every piece is answer
                if text:
                    mailbox.put(
                        TextDelta(
                            text,
                            0,
                            tuple(logprobs) if want_logprobs else None,
                            tuple(ids) if want_ids else None,
                        )
                    )
                    logprobs, ids = [], []
                    if document is not None:
                        document = _fed(document, text)
                if stops.stopped:
                    reason = "stop"
                    break
                if count >= limit:
                    break
                if (
                    document is not None
                    and limit - count <= CLOSING_WINDOW
                    and _closing_cost(llm, document, schema) >= limit - count
                ):
                    break  # the rest of the budget goes to closing the document
        finally:
            tokens.close()
        tail = stops.feed(decoder.decode(b"", final=True)) + stops.flush()
        if splitter is not None:
            tail = self._put_thinking(splitter, tail, mailbox) if tail else ""
            for event in _events_of(splitter.close()):
                mailbox.put(event)
        if document is not None and reason == "length":
            document = _fed(document, tail)
            if document is not None and not document.done:  # cut short: close it validly
                count += _closing_cost(llm, document, schema)
                tail += document.closing_text(schema)
        if tail:
            mailbox.put(
                TextDelta(
                    tail,
                    0,
                    tuple(logprobs) if want_logprobs else None,
                    tuple(ids) if want_ids else None,
                )
            )
        return reason, count, thinking

    @staticmethod
    def _put_thinking(splitter: ThinkSplitter, text: str, mailbox: Mailbox) -> str:
        """Thinking in ``text`` into the mailbox; the answer text that ends it."""
        events: list[Event] = []
        answer = split_into(splitter, text, 0, events)
        for event in events:
            mailbox.put(event)
        return answer

    async def context_budget(self, request: GenerationRequest) -> tuple[int, Callable] | None:
        """Tokens the prompt may use (the window less the reply's room), and a counter."""
        llm = await self.model.llm()
        reply_room = request.options.max_tokens or min(512, llm.n_ctx() // 4)

        def count(messages: Sequence[Message]) -> int:
            return len(
                self.model.prompt_tokens(msgspec.structs.replace(request, messages=tuple(messages)))
            )

        return llm.n_ctx() - reply_room, count

    serializes = True  # one request at a time: callers may tell waiting clients

    async def list_models(self) -> list[str]:
        return [self.model.name]

    async def check_model(self, model: str | None) -> None:
        await self.model.llm()


def _events_of(parts: list[Part]) -> list[Event]:
    events: list[Event] = []
    emit(parts, 0, events)
    return events


def _token_logprob(llm: Llama, token: int, piece: bytes, top: int) -> TokenLogprob:
    """The sampled token's log-probability (and the ``top`` best), from the raw logits.

    The logits of the position just sampled are still in llama.cpp's buffer
    when ``generate`` yields; log-softmax in float64 (not the sampler's
    temperature-scaled distribution: the model's own).
    """
    import numpy as np

    logits = np.ctypeslib.as_array(llm._ctx.get_logits(), shape=(llm.n_vocab(),))
    values = logits.astype(np.float64)
    peak = values.max()
    log_total = peak + np.log(np.exp(values - peak).sum())
    alternatives = None
    if top > 0:
        best = np.argpartition(values, -top)[-top:]
        best = best[np.argsort(values[best])[::-1]]
        alternatives = {
            llm.detokenize([int(i)]).decode("utf-8", "replace"): float(values[i] - log_total)
            for i in best
        }
    return TokenLogprob(
        piece.decode("utf-8", "replace"), float(values[token] - log_total), alternatives
    )


def _closing_cost(llm: Llama, document: JSONStream, schema: dict[str, Any] | None) -> int:
    """Tokens the shortest schema-valid end of ``document`` takes."""
    closing = document.closing_text(schema)
    return len(llm.tokenize(closing.encode("utf-8"), add_bos=False, special=False))


def _fed(document: JSONStream, text: str) -> JSONStream | None:
    """``document`` after ``text``, or None once it is not JSON (the grammar should
    prevent that; the final check then reports the reply)."""
    try:
        document.feed(text)
    except ProtocolError:  # not JSON
        return None
    return document


def _json_document() -> JSONStream:
    from streamkit.protocol.json_parse import JSONStream  # only with a schema

    return JSONStream()
