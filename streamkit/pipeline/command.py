"""Running a command's async body under Trio and turning its end into an exit code.

This is the one place where errors become what the user sees: a
``StreamkitError`` is one ``streamkit: ...`` line on stderr and its exit code;
Ctrl-C and SIGTERM are 130 and 143 with no traceback; a closed stdout
(``| head -1``) ends quietly. An output that cannot be written (a full disk,
an I/O error) is an ``OutputError`` (exit 12) wherever the write was: the
writers that know their output say so themselves, and stdout is flushed here
before the command ends, so text still buffered fails here and not in the
interpreter's own exit. Exceptions from nurseries arrive as exception groups
and are unwrapped here. A log that failed while the command ran is one warning
line (after the reply that met it, or at the end) and exit 11 when nothing
else failed.
"""

from __future__ import annotations

import errno
import os
import sys
from collections.abc import Awaitable, Callable

import trio

from streamkit.errors import EXIT_INTERRUPTED, LogError, OutputError, StreamkitError
from streamkit.pipeline.interrupts import Interrupts
from streamkit.protocol.reply import Reply
from streamkit.store.health import LogHealth, command_health, current_health

EXIT_BROKEN_PIPE = 141
# An OSError with one of these, raised by a write no writer translated, is the output's.
OUTPUT_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EIO})

CommandBody = Callable[[Interrupts], Awaitable[int | None]]


def run_command(body: CommandBody) -> int:
    """Run ``body`` in a fresh Trio run with signal handling; return the exit code."""
    interrupts = Interrupts()

    async def root() -> int | None:
        async with trio.open_nursery() as nursery:
            await nursery.start(interrupts.watch, nursery.cancel_scope)
            code = await body(interrupts)
            nursery.cancel_scope.cancel()
            return code

    with command_health() as health:
        try:
            code = trio.run(root)
            sys.stdout.flush()
        except KeyboardInterrupt:
            return _with_log_failure(health, EXIT_INTERRUPTED)
        except BaseException as exc:
            return _with_log_failure(health, _exit_code_for(exc, interrupts))
        if interrupts.exit_code is not None:
            return _with_log_failure(health, interrupts.exit_code)
        return _with_log_failure(health, code or 0)


def _with_log_failure(health: LogHealth, code: int) -> int:
    """The log's failure line if no one reported it yet; exit 11 if all else succeeded."""
    report_log_failure(health)
    if code == 0 and health.failure is not None:
        return health.failure.exit_code
    return code


def report_log_failure(health: LogHealth | None = None) -> None:
    """The line of a log failure not reported yet (after a reply, at the end): once."""
    failure = (health or current_health()).unreported()
    if failure is not None:
        report(failure)


def run_blocking_command(body: Callable[[], int | None]) -> int:
    """Run a short command that does no streaming (no Trio run, same error handling)."""
    try:
        code = body()
        sys.stdout.flush()
        return code or 0
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BaseException as exc:
        return _exit_code_for(exc, Interrupts())


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    return [exc]


def _exit_code_for(exc: BaseException, interrupts: Interrupts) -> int:
    leaves = _leaves(exc)
    if any(isinstance(leaf, BrokenPipeError) for leaf in leaves):
        _silence_stdout()
        return EXIT_BROKEN_PIPE
    errors = [_as_streamkit_error(leaf) for leaf in leaves]
    errors = [error for error in errors if error is not None]
    if errors:
        if isinstance(errors[0], OutputError):
            _release_stdout()
        report(errors[0])
        if isinstance(errors[0], LogError):
            current_health().unreported()  # that was its line
        return errors[0].exit_code
    if all(isinstance(leaf, KeyboardInterrupt) for leaf in leaves):
        return interrupts.exit_code or EXIT_INTERRUPTED
    raise exc


def _as_streamkit_error(exc: BaseException) -> StreamkitError | None:
    """The error a user is told about, if ``exc`` is one (a failed write: ``OutputError``)."""
    if isinstance(exc, StreamkitError):
        return exc
    if isinstance(exc, OSError) and exc.errno in OUTPUT_ERRNOS:
        return OutputError(f"cannot write the output: {exc.strerror}")
    return None


def report(error: StreamkitError) -> None:
    """The one stderr line for an error."""
    print(f"streamkit: {error.message}", file=sys.stderr, flush=True)


def reply_exit_code(reply: Reply, interrupts: Interrupts) -> int:
    """The exit code after a reply: its error's (reported) unless a signal decided it."""
    error = reply.exception()
    if error is not None and interrupts.exit_code is None:
        report(error)
        return error.exit_code
    return 0


def _release_stdout() -> None:
    """After a failed write: what stdout still buffers goes out if it can, else is
    dropped, so the interpreter's final flush cannot fail again."""
    try:
        sys.stdout.flush()
    except OSError:
        _silence_stdout()


def _silence_stdout() -> None:
    """Point stdout at /dev/null so the interpreter's final flush cannot fail again."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
