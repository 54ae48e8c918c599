"""JSONL batches: one reader, N workers, one writer, in one nursery.

::

    reader ──► [jobs, N] ──► worker × N ──► [results, N] ──► writer ──► output
       └── takes a window slot per line ─────── the writer frees it ──┘

Memory stays flat however long the input: the reader takes one of ``window``
slots before handing a line on and the writer frees it when that line's
result is written, so at most ``window`` lines are between reading and
writing -- including results parked in the writer's reorder buffer while an
earlier line is still running. What grows is one id key a line, kept so that
an id names one line only (``BatchIds``).

Every input line yields exactly one output record: a result, or an error
record (``{"id", "error": {"type", "message", "status"}}``) for a malformed,
overlong or duplicate-id line or a failed request. Each record is written and flushed as one whole
line. On Ctrl-C the workers are cancelled, and results that were finished
but still waiting for an earlier line are written before returning, so no
finished work is lost (``--resume`` redoes only what is missing).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

import msgspec
import trio

from streamkit.errors import ToolHopLimit
from streamkit.events import Batch, ToolResult, encode_event_line, is_reply_event
from streamkit.pipeline.batch_files import LineOutput
from streamkit.pipeline.jsonl_lines import LineReader
from streamkit.pipeline.line_records import (
    content,
    error_record,
    reasoning_fields,
    replayed_record,
    usage_fields,
)
from streamkit.pipeline.stream import run_stream
from streamkit.pipeline.tool_hops import ToolHops, reply_with_tools, tool_result_fields
from streamkit.protocol.ndjson import (
    BatchIds,
    BatchRecord,
    InputProblem,
    id_key,
    parse_record,
)
from streamkit.protocol.reply import Reply
from streamkit.protocol.structured import PartialTracker
from streamkit.providers.backend import Backend
from streamkit.request import GenerationOptions, GenerationRequest
from streamkit.sinks.recorder import new_conversation_log, replay_or_record
from streamkit.sinks.stats import StatsRecorder
from streamkit.store.async_store import AsyncStore, Queued
from streamkit.store.records import StoredMessage

if TYPE_CHECKING:  # rich.progress costs start-up time; only a terminal needs it
    from streamkit.sinks.progress import BatchProgress

_encode = msgspec.json.Encoder().encode
Result = tuple[int, dict[str, Any], Queued | None]  # seq, record, the line's last log write


class BatchSummary(msgspec.Struct):
    total: int = 0
    failed: int = 0
    skipped: int = 0


class BatchRunner:
    """Runs every line of a JSONL input through ``backend``."""

    def __init__(
        self,
        backend: Backend,
        output: LineOutput,
        *,
        kind: str,
        model: str | None,
        defaults: GenerationOptions,
        concurrency: int = 8,
        ordered: bool = True,
        events: bool = False,
        skip_ids: frozenset[bytes] = frozenset(),
        request_timeout: float | None = None,
        progress: BatchProgress | None = None,
        store: AsyncStore | None = None,
        batch_name: str | None = None,
        replay: dict[bytes, StoredMessage] | None = None,
        tools: ToolHops | None = None,
    ) -> None:
        self.backend = backend
        self.output = output
        self.kind = kind
        self.model = model
        self.defaults = defaults
        self.concurrency = concurrency
        self.ordered = ordered
        self.events = events
        self.skip_ids = skip_ids
        self.request_timeout = request_timeout
        self.progress = progress
        self.store = store  # the conversation log: one conversation per line
        self.batch_name = batch_name
        self.replay = replay or {}  # --resume from the log: id key -> completed reply
        self.window = max(4 * concurrency, 16)
        self.summary = BatchSummary()
        self.work = LineWork(
            backend,
            model=model,
            request_timeout=request_timeout,
            events=output if events else None,
            store=store,
            batch_name=batch_name,
            replay=self.replay,
            tools=tools,
            log_waited_by_caller=True,  # ``_write`` waits for each line's rows
        )

    async def run(self, source: trio.abc.ReceiveStream) -> BatchSummary:
        slots = trio.Semaphore(self.window)
        jobs_send, jobs_receive = trio.open_memory_channel[tuple[int, Any]](self.concurrency)
        results_send, results_receive = trio.open_memory_channel[Result](self.concurrency)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write, results_receive, slots)
            async with results_send, jobs_receive:
                for _ in range(self.concurrency):
                    nursery.start_soon(self._work, jobs_receive.clone(), results_send.clone())
            nursery.start_soon(self._read, source, jobs_send, slots)
        return self.summary

    async def _read(
        self,
        source: trio.abc.ReceiveStream,
        jobs: trio.MemorySendChannel[tuple[int, Any]],
        slots: trio.Semaphore,
    ) -> None:
        reader = LineReader(source)
        ids = BatchIds()
        seq = 0
        async with jobs:
            while (numbered := await reader.next_line()) is not None:
                number, line = numbered
                job = parse_record(
                    number, line, kind=self.kind, model=self.model, defaults=self.defaults
                )
                taken = ids.duplicate(number, job.id)
                if taken is not None and isinstance(job, BatchRecord):
                    job = InputProblem(number, job.id, taken)
                if id_key(job.id) in self.skip_ids:
                    self.summary.skipped += 1
                    continue
                await slots.acquire()
                await jobs.send((seq, job))
                seq += 1

    async def _work(
        self,
        jobs: trio.MemoryReceiveChannel[tuple[int, Any]],
        results: trio.MemorySendChannel[Result],
    ) -> None:
        async with jobs, results:
            async for seq, job in jobs:
                if self.progress:
                    self.progress.started()
                record = await self.work.run(job)
                if self.progress:
                    self.progress.finished(record)
                # The line's rows are queued by now (its reply's end last): the
                # writer waits for them, so the worker goes on to the next line.
                logged = self.store.last_queued() if self.store is not None else None
                await results.send((seq, record, logged))

    async def _write(
        self, results: trio.MemoryReceiveChannel[Result], slots: trio.Semaphore
    ) -> None:
        parked: dict[int, dict[str, Any]] = {}
        next_seq = 0
        try:
            async with results:
                async for seq, record, logged in results:
                    if logged is not None and not logged.done.is_set():
                        await logged.done.wait()  # a result follows its rows in the log
                    if not self.ordered:
                        self._emit(record)
                        slots.release()
                        continue
                    parked[seq] = record
                    while next_seq in parked:
                        self._emit(parked.pop(next_seq))
                        slots.release()
                        next_seq += 1
        finally:
            # Interrupted: finished results still waiting for an earlier line
            # are written anyway (out of order) rather than lost -- unless it
            # is the output that failed.
            for seq in sorted(parked) if not self.output.failed else ():
                self._emit(parked.pop(seq))

    def _emit(self, record: dict[str, Any]) -> None:
        self.summary.total += 1
        if "error" in record:
            self.summary.failed += 1
        self.output.write(_encode({"type": "result", **record} if self.events else record) + b"\n")


class LineWork:
    """The work of one line, apart from reading and writing: the request, its
    record, the log and the replay of lines already answered.

    ``BatchRunner`` runs it in each of its workers, and so does each Ray actor
    of a cluster batch, so one machine and a cluster answer a line the same way.
    """

    def __init__(
        self,
        backend: Backend,
        *,
        model: str | None,
        request_timeout: float | None = None,
        events: LineOutput | None = None,
        store: AsyncStore | None = None,
        batch_name: str | None = None,
        replay: dict[bytes, StoredMessage] | None = None,
        tools: ToolHops | None = None,
        log_waited_by_caller: bool = False,
    ) -> None:
        self.backend = backend
        self.model = model
        self.request_timeout = request_timeout
        self.events = events  # --events: where each line's events go as they arrive
        self.store = store
        self.batch_name = batch_name
        self.replay = replay or {}
        self.tools = tools  # chat lines' tool calls are run, and the model asked again
        # The caller waits for a line's log writes before its result goes out, so
        # ``run`` need not -- unless a tool call's row must point at the reply's.
        self.wait_for_log = not log_waited_by_caller or tools is not None

    async def run(self, job: BatchRecord | InputProblem) -> dict[str, Any]:
        """The output record of one line: its result, or its error record."""
        if isinstance(job, InputProblem):
            return error_record(job.id, "input", job.message, None)
        done = self.replay.get(id_key(job.id))
        if done is not None:
            return replayed_record(job, done)
        recorder = StatsRecorder()
        consumers: list[Callable] = [recorder]
        schema = job.request.options.schema
        if self.events is not None:
            partials = PartialTracker() if schema is not None else None
            consumers.append(partial(_forward_events, self.events, job.id, partials))
        log = None
        if self.store is not None:
            log = await new_conversation_log(
                self.store, batch=self.batch_name, record_id=id_key(job.id).decode()
            )
            stored = await replay_or_record(log, job.idempotency_key)
            if stored is not None:
                return replayed_record(job, stored)
        deadline = trio.current_time() + (self.request_timeout or math.inf)  # the whole line

        async def stream_one(request: GenerationRequest, hop: int) -> Reply:
            sinks = list(consumers)
            if log is not None:  # the line's messages once, then each reply
                sinks.append(
                    await (
                        log.record_request(request, self.backend)
                        if hop == 1
                        else log.reply_recorder(request, self.backend)
                    )
                )
            return await run_stream(
                partial(self.backend.stream, request),
                sinks,
                stop=trio.CancelScope(deadline=deadline),
                settle=self.wait_for_log,
            )

        ran: list[ToolResult] = []
        if self.tools is not None and job.request.kind == "chat":
            try:
                reply, ran = await reply_with_tools(stream_one, job.request, self.tools, log)
            except ToolHopLimit as exc:
                return error_record(job.id, exc.kind, exc.message, None)
        else:
            reply = await stream_one(job.request, 1)
        if reply.error is not None:
            record = error_record(job.id, reply.error.kind, reply.error.message, reply.error.status)
            if reply.text:
                record["text"] = reply.text  # what was received before the failure
            record.update(reasoning_fields(reply))
            return record
        ended = recorder.ended_at or trio.current_time()
        record = content(job.id, reply.text, reply.finish_reason, schema)
        if "error" in record:
            return record
        record.update(reasoning_fields(reply))
        record.update(
            {
                "finish_reason": reply.finish_reason,
                "usage": usage_fields(reply.usage) if reply.usage else None,
                "model": job.request.model or self.backend.model_name,
                "latency": {
                    "ttft_s": (
                        round(recorder.first_token_at - recorder.started, 6)
                        if recorder.first_token_at is not None
                        else None
                    ),
                    "total_s": round(ended - recorder.started, 6),
                },
            }
        )
        if job.request.options.return_token_ids:
            record["token_ids"] = reply.token_ids
        if ran:
            record["tool_results"] = tool_result_fields(ran)
        if reply.tool_calls:
            record["tool_calls"] = [
                {
                    "id": c.id,
                    "type": "function",
                    "function": {"name": c.name, "arguments": c.arguments},
                }
                for c in reply.tool_calls
            ]
        return record


async def _forward_events(
    output: LineOutput,
    record_id: Any,
    partials: PartialTracker | None,
    receive: trio.MemoryReceiveChannel[Batch],
) -> None:
    """``--events``: each event as a JSON line tagged with its input line's id (with a
    schema, the value parsed so far as ``json_partial`` events too)."""
    prefix = b'{"id":' + _encode(record_id) + b","
    async with receive:
        async for batch in receive:
            shown = [e for e in batch if is_reply_event(e)]
            partial = partials.after(batch) if partials is not None else None
            if partial is not None:
                shown.append(partial)
            output.write(b"".join(prefix + encode_event_line(e)[1:] for e in shown))
