"""The interactive chat's prompt: prompt_toolkit's line editor, run beside the Trio loop.

prompt_toolkit runs its own event loop, so each prompt runs in a worker
thread (``trio.to_thread``) while Trio keeps handling signals. The terminal
is in raw mode while a prompt is open, so Ctrl-C there is a key, not SIGINT:
on a line it clears the line, on an empty line it is a hint. A SIGTERM (or
any cancel of the Trio side) asks the prompt to end and waits for its
thread, so the terminal is back in cooked mode before the command exits.

Keys: Emacs (or Vi) editing, Up/Down and Ctrl-R through the history, Tab
completes slash commands; Alt-Enter or Esc-Enter inserts a newline, a
bracketed paste arrives as one message, and a line of ``\"\"\"`` opens a
block that a line of ``\"\"\"`` closes.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import trio

HINT = object()  # Ctrl-C on an empty line: the caller prints how to leave
BLOCK = '"""'


class LineEditor:
    """Reads one message at a time from the terminal, with history and completion."""

    def __init__(self, *, history_file: Path | None, vi: bool, commands: Sequence[str]) -> None:
        from prompt_toolkit import PromptSession
        from prompt_toolkit.completion import WordCompleter
        from prompt_toolkit.history import FileHistory, InMemoryHistory
        from prompt_toolkit.key_binding import KeyBindings

        history: Any = InMemoryHistory()
        if history_file is not None:
            history_file.parent.mkdir(parents=True, exist_ok=True)
            history = FileHistory(str(history_file))
        keys = KeyBindings()

        @keys.add("escape", "enter")
        def _newline(event: Any) -> None:
            event.current_buffer.insert_text("\n")

        @keys.add("c-c")
        def _interrupt(event: Any) -> None:
            buffer = event.current_buffer
            if buffer.text:
                buffer.reset()
            else:
                event.app.exit(result=HINT)

        self._session: Any = PromptSession(
            history=history,
            key_bindings=keys,
            vi_mode=vi,
            enable_history_search=False,
            completer=WordCompleter(list(commands), sentence=True, match_middle=False),
            complete_while_typing=False,
        )
        self._lock = trio.Lock()

    async def read(self, prompt: str = "> ") -> str | object | None:
        """The next message; ``None`` at Ctrl-D on an empty line; ``HINT`` for Ctrl-C."""
        first = await self._prompt(prompt)
        if not isinstance(first, str) or first.strip() != BLOCK:
            return first
        lines: list[str] = []
        while True:  # a block: everything up to the closing line, as typed
            line = await self._prompt("... ")
            if not isinstance(line, str):
                return line
            if line.strip() == BLOCK:
                return "\n".join(lines)
            lines.append(line)

    async def _prompt(self, prompt: str) -> str | object | None:
        done = threading.Event()
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(self._session.prompt(prompt))
            except EOFError:
                outcome.append(None)
            except KeyboardInterrupt:
                outcome.append(HINT)
            finally:
                done.set()

        async with self._lock:
            try:
                await trio.to_thread.run_sync(run, abandon_on_cancel=True)
            except trio.Cancelled:
                self._stop(done)
                raise
        return outcome[0] if outcome else None

    def _stop(self, done: threading.Event) -> None:
        """End an open prompt from outside its thread, and wait until the terminal is back."""
        app = self._session.app
        loop = getattr(app, "loop", None)
        if app.is_running and loop is not None:
            loop.call_soon_threadsafe(lambda: app.exit(exception=EOFError()))
        done.wait(2.0)
