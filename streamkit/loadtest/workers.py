"""``--workers N``: one run spread over N processes, each with its own event loop.

One Python process is one core: past a few hundred requests per second (or a
few thousand chunks per second) its event loop, not the server, sets the
pace. Each worker runs the k-th slice of the same run (``Runner`` with
``part=(k, n)``: every n-th request, a share of the concurrency, every n-th
arrival of the one seeded schedule) against a start time all workers share,
so their samples, sent back one JSON line each, merge into exactly the run one
process would have measured: percentiles come from every sample, never
averaged.

Protocol on the worker's stdin/stdout (the API key travels on the pipe, never
in arguments or the environment): the parent writes the job as one JSON line;
the worker sets up (tokenizer, workload, connection) and prints ``ready``;
the parent writes the shared start time (wall clock) once every worker is
ready; the worker prints one line per finished request, then an ``end``
line. Ctrl-C: the parent forwards SIGINT and keeps what the workers report.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from streamkit.config import Settings
from streamkit.errors import StreamkitError
from streamkit.loadtest.metrics import Sample
from streamkit.loadtest.runner import Observer, RunResult, RunSpec

START_MARGIN_S = 0.05  # between the "go" line and the shared start
SHUTDOWN_GRACE_S = 10.0  # for workers to report after Ctrl-C


class Job(msgspec.Struct):
    config: Any  # a BenchConfig, as builtins
    settings: Settings
    spec: RunSpec
    part: tuple[int, int]


class _Line(msgspec.Struct, omit_defaults=True):
    """One line from a worker: ``ready``, a ``sample``, or the ``end`` of its run."""

    kind: str
    sample: Sample | None = None
    duration: float = 0.0
    stopped: str | None = None
    error: str | None = None
    connections_opened: int | None = None


def _enc(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise NotImplementedError(type(value))


def _dec(kind: type, value: Any) -> Any:
    if kind is Path:
        return Path(value)
    raise NotImplementedError(kind)


_encode = msgspec.json.Encoder(enc_hook=_enc).encode
_decode_line = msgspec.json.Decoder(_Line).decode


class WorkerPool:
    """Runs each run over ``config.workers`` fresh worker processes."""

    def __init__(self, config: Any, settings: Settings, observer: Observer | None) -> None:
        self.config = config
        self.settings = settings
        self.observer = observer

    async def run(self, result: RunResult) -> None:
        count = self.config.workers
        if self.observer is not None:
            self.observer.run_started(result.spec)
        processes = [
            await trio.lowlevel.open_process(
                [sys.executable, "-m", "streamkit.loadtest.workers"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for _ in range(count)
        ]
        readers = [_Reader(process) for process in processes]
        ready = trio.Semaphore(0)
        go = trio.Event()
        try:
            async with trio.open_nursery() as nursery:
                for k, reader in enumerate(readers):
                    job = Job(
                        msgspec.to_builtins(self.config, enc_hook=_enc),
                        self.settings,
                        result.spec,
                        (k, count),
                    )
                    nursery.start_soon(self._talk, reader, job, result, ready, go)
                for _ in processes:
                    await ready.acquire()
                go.set()
        finally:
            with trio.CancelScope(shield=True):
                await self._finish(readers, result)

    async def _talk(
        self, reader: _Reader, job: Job, result: RunResult, ready: trio.Semaphore, go: trio.Event
    ) -> None:
        stdin = reader.process.stdin
        assert stdin is not None
        await stdin.send_all(_encode(job) + b"\n")
        line = await reader.next()
        if line is None or line.kind != "ready":
            reader.ended = True
            message = line.error if line is not None else None
            raise StreamkitError(message or "a benchmark worker process failed to start")
        ready.release()
        await go.wait()
        await stdin.send_all(_encode(time.time() + START_MARGIN_S) + b"\n")
        await self._collect(reader, result)

    async def _collect(self, reader: _Reader, result: RunResult) -> None:
        while not reader.ended:
            line = await reader.next()
            if line is None:
                reader.ended = True
            elif line.kind == "sample" and line.sample is not None:
                result.samples.append(line.sample)
                if self.observer is not None:
                    self.observer.request_done(line.sample)
            elif line.kind == "end":
                reader.ended = True
                result.duration = max(result.duration, line.duration)
                result.stopped = result.stopped or line.stopped
                if line.connections_opened is not None:
                    result.connections_opened = (
                        result.connections_opened or 0
                    ) + line.connections_opened

    async def _finish(self, readers: list[_Reader], result: RunResult) -> None:
        """Ask workers still running to stop, keep what they report, reap them."""
        with trio.move_on_after(SHUTDOWN_GRACE_S):
            async with trio.open_nursery() as nursery:
                for reader in readers:
                    if not reader.ended:
                        with contextlib.suppress(OSError):
                            reader.process.send_signal(signal.SIGINT)
                        nursery.start_soon(self._collect, reader, result)
            for reader in readers:
                await reader.process.wait()
        for reader in readers:
            if reader.process.returncode is None:
                reader.process.kill()
                await reader.process.wait()
        result.samples.sort(key=lambda s: s.index)


class _Reader:
    """Decoded lines from a worker's stdout; a cancelled read loses nothing."""

    def __init__(self, process: trio.Process) -> None:
        from streamkit.protocol.ndjson import LineSplitter

        self.process = process
        self.ended = False
        self._splitter = LineSplitter()
        self._pending: list[bytes] = []

    async def next(self) -> _Line | None:
        """The next line, or None once the worker closed its stdout."""
        stdout = self.process.stdout
        assert stdout is not None
        while not self._pending:
            data = await stdout.receive_some(65536)
            lines = self._splitter.feed(data) if data else self._splitter.close()
            self._pending.extend(raw for _, raw in lines)
            if not data and not self._pending:
                return None
        return _decode_line(self._pending.pop(0))


# -- the worker process ----------------------------------------------------------------------


def main() -> int:
    """A worker: read the job, run its slice, report each sample on stdout."""
    from streamkit.pipeline.command import run_command
    from streamkit.pipeline.interrupts import Interrupts

    async def body(interrupts: Interrupts) -> int:
        from streamkit.loadtest.runner import Runner
        from streamkit.loadtest.setup import BenchConfig, build_workload, open_target, tokenizer_for

        out = sys.stdout.buffer
        job = msgspec.json.decode(await _read_line(), type=Job)
        config = msgspec.convert(job.config, BenchConfig, dec_hook=_dec)
        try:
            tokenizer = tokenizer_for(config, job.settings)
            total = (job.spec.requests or 0) + job.spec.warmup
            workload = build_workload(config, job.settings, total or 256, tokenizer)
        except StreamkitError as exc:
            out.write(_encode(_Line("end", error=exc.message)) + b"\n")
            out.flush()
            return exc.exit_code

        class Reporter:
            def run_started(self, spec: RunSpec) -> None:
                pass

            def request_started(self) -> None:
                pass

            def request_done(self, sample: Sample) -> None:
                out.write(_encode(_Line("sample", sample=sample)) + b"\n")
                out.flush()

        result = RunResult(job.spec)
        async with open_target(job.settings) as target:
            runner = Runner(
                target,
                workload,
                tokenizer=tokenizer,
                timeout=job.settings.timeout,
                observer=Reporter(),
                part=job.part,
            )
            out.write(b'{"kind":"ready"}\n')
            out.flush()
            start = msgspec.json.decode(await _read_line(), type=float)
            origin = trio.current_time() + (start - time.time())
            with interrupts.guard() as scope, scope:
                await runner.run(result, origin=origin)
        end = _Line(
            "end",
            duration=result.duration,
            stopped=result.stopped,
            connections_opened=result.connections_opened,
        )
        out.write(_encode(end) + b"\n")
        out.flush()
        return 0

    return run_command(body)


async def _read_line() -> bytes:
    return await trio.to_thread.run_sync(sys.stdin.buffer.readline, abandon_on_cancel=True)


if __name__ == "__main__":
    sys.exit(main())
