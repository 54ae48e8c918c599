"""OpenAI streaming chunks to streamkit events, sans-IO.

Handles both ``/v1/chat/completions`` (``choices[].delta``) and
``/v1/completions`` (``choices[].text``) streams: text deltas, finish reasons,
``usage`` chunks, logprobs, tool-call deltas (and the legacy
``function_call``), the ``[DONE]`` sentinel (under whatever SSE event name it
comes), and errors sent inside the stream (``data: {"error": ...}`` or
``event: error``).

Chunks are decoded with typed ``msgspec`` structs: fields we do not use are
skipped without being materialised, which is most of the cost of a chunk. A
chunk that is not valid JSON (or not of the expected shape) is counted and
skipped; the count is reported as a protocol error when the stream ends, so
the text around it is kept but nobody mistakes the result for complete.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from streamkit.errors import one_line
from streamkit.events import (
    Event,
    Finish,
    ReasoningDelta,
    StreamError,
    TextDelta,
    TokenLogprob,
    ToolCallDelta,
    Usage,
)
from streamkit.protocol.reasoning import reasoning_of
from streamkit.protocol.sse import ServerSentEvent, SSEDecoder
from streamkit.protocol.think import ThinkSplitter, emit, split_into


class _Function(msgspec.Struct):
    name: str | None = None
    arguments: str | None = None


class _ToolCall(msgspec.Struct):
    index: int = 0
    id: str | None = None
    function: _Function | None = None


class _Delta(msgspec.Struct):
    content: str | None = None
    tool_calls: list[_ToolCall] | None = None
    function_call: _Function | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None
    reasoning_details: list[Any] | None = None


class _Choice(msgspec.Struct):
    index: int = 0
    delta: _Delta | None = None
    text: str | None = None
    finish_reason: str | None = None
    logprobs: Any = None
    token_ids: list[int] | None = None  # vLLM, with return_token_ids


class _CompletionDetails(msgspec.Struct):
    reasoning_tokens: int | None = None


class _Usage(msgspec.Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    total_tokens: int | None = None
    completion_tokens_details: _CompletionDetails | None = None


class _Chunk(msgspec.Struct):
    choices: list[_Choice] | None = None
    usage: _Usage | None = None
    error: Any = None


_decode_chunk = msgspec.json.Decoder(_Chunk).decode


class ChunkParser:
    """Turns decoded SSE events of one response into streamkit events.

    ``feed`` may be called with any number of SSE events; ``close`` is called
    once at end of stream and reports a stream that ended without ``[DONE]``
    and without every choice finished, or with malformed chunks skipped.
    """

    def __init__(self) -> None:
        self.done = False  # [DONE] seen, or an error ended the stream
        self.malformed = 0
        self._first_malformed = ""
        self._open_choices: set[int] = set()
        self._finished_any = False
        # (choice, call index) of the tool calls seen. A call the server sent
        # without an id gets one here, on its first fragment, so that every
        # consumer (the reply, the log, the next request's history) agrees on it.
        self._calls: set[tuple[int, int]] = set()
        self._call_prefix = ""  # made with the first id needed: it asks the kernel
        # Thinking inline in the text (<think>...</think>) is looked for until
        # each choice's answer begins; then its text passes straight through.
        self._think: dict[int, ThinkSplitter] = {}
        self._answering: set[int] = set()

    def feed(self, sse_events: list[ServerSentEvent]) -> list[Event]:
        out: list[Event] = []
        for sse in sse_events:
            if self.done:
                break
            data = sse.data
            # The sentinel ends the stream under any event name: some servers and
            # proxies send ``event: done`` before it (openai-python also checks
            # the data first). A chunk sent after it is never read.
            if data.startswith("[DONE]"):
                self.done = True
                break
            if sse.event != "message":
                if sse.event == "error":
                    out.append(self._error_event(data))
                continue
            try:
                chunk = _decode_chunk(data)
            except msgspec.DecodeError as exc:
                self.malformed += 1
                if not self._first_malformed:
                    self._first_malformed = str(exc)
                continue
            if chunk.error is not None:
                out.append(self._error_event(chunk.error))
                continue
            if chunk.choices:
                for choice in chunk.choices:
                    self._choice_events(choice, out)
            if chunk.usage is not None:
                u = chunk.usage
                details = u.completion_tokens_details
                out.append(
                    Usage(
                        u.prompt_tokens,
                        u.completion_tokens,
                        u.total_tokens,
                        details.reasoning_tokens if details else None,
                    )
                )
        return out

    def close(self) -> list[Event]:
        """End of stream: text held back as a possible tag, then the events that
        report an incomplete stream, if any."""
        out: list[Event] = []
        for index, splitter in sorted(self._think.items()):
            emit(splitter.close(), index, out)
        self._think.clear()
        if self.malformed:
            out.append(
                StreamError(
                    "protocol",
                    f"skipped {self.malformed} malformed stream chunk(s): {self._first_malformed}",
                )
            )
        elif not self.done and (self._open_choices or not self._finished_any):
            out.append(StreamError("protocol", "the stream ended before it was complete"))
        self.done = True
        return out

    def _choice_events(self, choice: _Choice, out: list[Event]) -> None:
        index = choice.index
        text = choice.text
        delta = choice.delta
        if delta is not None:
            text = delta.content
            if delta.tool_calls:
                for call in delta.tool_calls:
                    fn = call.function
                    out.append(
                        ToolCallDelta(
                            call.index,
                            self._call_id(index, call.index, call.id),
                            fn.name if fn else None,
                            (fn.arguments or "") if fn else "",
                            index,
                        )
                    )
            elif delta.function_call is not None:
                fn = delta.function_call
                out.append(
                    ToolCallDelta(
                        0, self._call_id(index, 0, None), fn.name, fn.arguments or "", index
                    )
                )
            if (
                delta.reasoning_content is not None
                or delta.reasoning is not None
                or delta.reasoning_details
            ):
                thought, opaque = reasoning_of(
                    delta.reasoning_content, delta.reasoning, delta.reasoning_details
                )
                if thought or opaque:
                    out.append(ReasoningDelta(thought, index, opaque))
        if text and index not in self._answering:
            text = self._split_thinking(index, text, out)
        if text or choice.token_ids:  # ids without text: a token whose text is held back
            logprobs = _logprobs(choice.logprobs) if choice.logprobs else None
            token_ids = tuple(choice.token_ids) if choice.token_ids is not None else None
            out.append(TextDelta(text or "", index, logprobs, token_ids))
        if choice.finish_reason is not None:
            splitter = self._think.pop(index, None)
            if splitter is not None:
                emit(splitter.close(), index, out)
            self._open_choices.discard(index)
            self._finished_any = True
            out.append(Finish(choice.finish_reason, index))
        else:
            self._open_choices.add(index)

    def _split_thinking(self, index: int, text: str, out: list[Event]) -> str:
        """Reasoning parts of ``text`` into ``out``; the answer text that follows them."""
        splitter = self._think.get(index)
        if splitter is None:
            splitter = self._think[index] = ThinkSplitter()
        answer = split_into(splitter, text, index, out)
        if splitter.answering:
            self._answering.add(index)
            del self._think[index]
        return answer

    def _call_id(self, choice: int, index: int, given: str | None) -> str | None:
        """The id a fragment carries: the server's, or on the first fragment of a call
        that has none, one made up (unique to this response)."""
        if (choice, index) in self._calls:
            return given
        self._calls.add((choice, index))
        if given:
            return given
        if not self._call_prefix:
            self._call_prefix = f"call_{secrets.token_hex(4)}_"
        return f"{self._call_prefix}{index}"

    def _error_event(self, error: Any) -> StreamError:
        self.done = True
        status = None
        message = error
        if isinstance(error, str):
            try:
                error = msgspec.json.decode(error)
            except msgspec.DecodeError:
                error = {"message": error}
            else:
                error = error.get("error", error) if isinstance(error, dict) else error
        if isinstance(error, dict):
            message = error.get("message") or msgspec.json.encode(error).decode()
            code = error.get("code")
            status = code if isinstance(code, int) else None
        text = one_line(message)
        return StreamError("http", f"the server reported an error mid-stream: {text}", status)


def _logprobs(raw: Any) -> tuple[TokenLogprob, ...] | None:
    """Both logprobs shapes: chat ``content[]`` and completions ``tokens[]``."""
    if not isinstance(raw, dict):
        return None
    content = raw.get("content")
    if isinstance(content, list):
        return tuple(
            TokenLogprob(
                item.get("token", ""),
                item.get("logprob"),
                {t["token"]: t["logprob"] for t in item.get("top_logprobs") or []} or None,
            )
            for item in content
            if isinstance(item, dict)
        )
    tokens = raw.get("tokens")
    if isinstance(tokens, list):
        values = raw.get("token_logprobs") or [None] * len(tokens)
        tops = raw.get("top_logprobs") or [None] * len(tokens)
        return tuple(
            TokenLogprob(token, value, top or None)
            for token, value, top in zip(tokens, values, tops, strict=False)
        )
    return None


class OpenAIStreamDecoder:
    """Bytes of an OpenAI SSE response body in, streamkit events out."""

    def __init__(self) -> None:
        self.sse = SSEDecoder()
        self.chunks = ChunkParser()

    def feed(self, data: bytes) -> list[Event]:
        return self.chunks.feed(self.sse.feed(data))

    def close(self) -> list[Event]:
        self.sse.close()
        return self.chunks.close()
