"""The interactive conversation: a line editor, slash commands, and the turns between them.

It runs only when stdin is a terminal (piped stdin is one message, as
ever), with ``LineEditor`` as the prompt: history across runs, editing,
multi-line messages. Slash commands act on the session and never reach
the model; an unknown one is a one-line hint.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Awaitable, Callable
from functools import partial
from pathlib import Path

import msgspec
import platformdirs

from streamkit.cli.external_editor import edit_text
from streamkit.errors import StreamkitError, UsageError
from streamkit.pipeline.command import report
from streamkit.pipeline.interrupts import Interrupts
from streamkit.pipeline.session import ChatSession
from streamkit.protocol.markdown_blocks import code_blocks
from streamkit.protocol.reply import Reply
from streamkit.request import GenerationOptions, Message
from streamkit.sinks.clipboard import copy_through_terminal
from streamkit.sinks.recorder import ConversationLog

HELP = """\
/model NAME    use another model from the next message on
/system TEXT   set the system prompt (no TEXT: remove it)
/retry         ask the last message again
/edit [last]   write the next message in $VISUAL / $EDITOR (last: start from the last one)
/undo          drop the last exchange from the conversation
/clear         start a new conversation
/set KEY VALUE a generation option (max_tokens, temperature, top_p, seed, ...)
/save FILE     write the conversation as Markdown
/copy [N|code] copy the last reply (N: its Nth code block; code: its last) to the clipboard
/tokens        the tokens the conversation takes, against the context window
/help          this list
/exit          end (or Ctrl-D)
Alt-Enter: a newline in the message; a line of \"\"\" starts and ends a block;
Ctrl-C stops a reply, clears a line; Up and Ctrl-R search the history."""
COMMANDS = (
    "/model",
    "/system",
    "/retry",
    "/edit",
    "/undo",
    "/clear",
    "/set",
    "/save",
    "/copy",
    "/tokens",
    "/help",
    "/exit",
    "/quit",
)
SETTABLE = tuple(
    name
    for name in GenerationOptions.__struct_fields__
    if name not in ("extra", "schema", "stop_token_ids", "return_token_ids")
)


def history_path() -> Path:
    """Where the prompt history is kept across runs (the user data directory)."""
    return Path(platformdirs.user_data_dir("streamkit")) / "chat_history"


async def converse(
    session: ChatSession, interrupts: Interrupts, *, vi: bool, keep_history: bool
) -> int:
    """The interactive loop: every turn logged, the history in memory."""
    from streamkit.cli.line_editor import LineEditor  # prompt_toolkit: terminals only

    editor = LineEditor(
        history_file=history_path() if keep_history else None, vi=vi, commands=COMMANDS
    )

    async def read() -> str | object | None:
        with interrupts.guard() as scope, scope:
            return await editor.read()
        return None

    print(
        "Chatting. /help for commands, /exit or Ctrl-D to end; Ctrl-C stops a reply.",
        file=sys.stderr,
    )
    while True:
        line = await read()
        if interrupts.exit_code is not None:
            sys.stderr.write("\n")
            return interrupts.exit_code
        if line is None:  # Ctrl-D
            sys.stderr.write("\n")
            return 0
        if not isinstance(line, str):  # Ctrl-C on an empty line
            print("(to leave: /exit or Ctrl-D)", file=sys.stderr)
            continue
        text = line.strip()
        if not text:
            continue
        if text.startswith("/") and not text.startswith("//"):
            outcome = await _command(session, text, interrupts)
            if outcome == "exit":
                return 0
            if not isinstance(outcome, str) or not outcome.startswith("ask:"):
                continue
            line = outcome.removeprefix("ask:")
        code = await _turn(session, interrupts, partial(session.ask, line))
        if code is not None:
            return code


async def _turn(
    session: ChatSession, interrupts: Interrupts, ask: Callable[[], Awaitable[Reply]]
) -> int | None:
    """One exchange; the exit code when it must end the conversation (SIGTERM)."""
    try:
        reply = await ask()
    except StreamkitError as error:  # e.g. the tool hop limit: the chat goes on
        report(error)
        return None
    error = reply.exception()
    if error is not None:
        report(error)
    if interrupts.exit_code is not None:
        if interrupts.signum != signal.SIGINT:  # SIGTERM ends the conversation
            return interrupts.exit_code
        interrupts.forget()
    return None


async def _command(session: ChatSession, text: str, interrupts: Interrupts) -> str | None:
    """Run a slash command; ``"exit"``, ``"ask:TEXT"`` (send TEXT) or None."""
    name, _, argument = text.partition(" ")
    argument = argument.strip()
    try:
        if name in ("/exit", "/quit"):
            return "exit"
        if name == "/help":
            print(HELP, file=sys.stderr)
        elif name == "/model":
            if not argument:
                raise UsageError(f"/model NAME (now: {session.settings.model or 'default'})")
            session.settings = msgspec.structs.replace(session.settings, model=argument)
            _say(f"model: {argument}")
        elif name == "/system":
            _set_system(session, argument)
            _say("system prompt set" if argument else "system prompt removed")
        elif name == "/retry":
            last = await _drop_last_exchange(session)
            if last is None:
                raise UsageError("nothing to retry yet")
            return f"ask:{last}"
        elif name == "/edit":
            return await _edit(session, argument, interrupts)
        elif name == "/copy":
            _say(_copy(session, argument))
        elif name == "/tokens":
            _say(await session.context_use())
        elif name == "/undo":
            if await _drop_last_exchange(session) is None:
                raise UsageError("nothing to undo")
            _say("the last exchange is out of the conversation (the log keeps it, marked undone)")
        elif name == "/clear":
            await _clear(session)
            _say("a new conversation")
        elif name == "/set":
            _set_option(session, argument)
        elif name == "/save":
            _save(session, argument)
        else:
            raise UsageError(f"unknown command {name}: /help lists them")
    except UsageError as error:
        _say(error.message)
    return None


def _say(line: str) -> None:
    print(f"streamkit: {line}", file=sys.stderr, flush=True)


async def _edit(session: ChatSession, argument: str, interrupts: Interrupts) -> str | None:
    """``ask:TEXT`` with what the editor left, or None when it left nothing."""
    if argument not in ("", "last"):
        raise UsageError("/edit, or /edit last (start from the last message sent)")
    initial = ""
    if argument == "last":
        initial = next((m.content for m in reversed(session.history) if m.role == "user"), "")
        if not initial:
            raise UsageError("no message sent yet: /edit starts a new one")
    text = (await edit_text(initial, interrupts)).strip()
    if not text:
        _say("the message was left empty: nothing sent")
        return None
    return f"ask:{text}"


def _copy(session: ChatSession, argument: str) -> str:
    """Copy the last reply, or one of its code blocks; the line saying what happened."""
    reply = next((m.content for m in reversed(session.history) if m.role == "assistant"), "")
    if not reply:
        raise UsageError("no reply to copy yet")
    what, text = "the last reply", reply
    if argument:
        blocks = code_blocks(reply)
        if argument == "code":
            argument = str(len(blocks))
        if not argument.isdigit():
            raise UsageError("/copy, /copy N (the Nth code block) or /copy code (the last)")
        number = int(argument)
        if not 1 <= number <= len(blocks):
            raise UsageError(f"the last reply has {len(blocks)} code block(s)")
        what, text = f"code block {number} of the last reply", blocks[number - 1]
    return copy_through_terminal(text, what, sys.stdout.buffer, is_terminal=sys.stdout.isatty())


def _set_system(session: ChatSession, text: str) -> None:
    history = session.history
    if history and history[0].role == "system":
        history.pop(0)
    if text:
        history.insert(0, Message("system", text))


async def _drop_last_exchange(session: ChatSession) -> str | None:
    """Remove the last user message and what answered it; that message's text.

    The log keeps the exchange, marked undone (what a later ``--continue``
    leaves out, and ``logs show`` says).
    """
    history = session.history
    for index in range(len(history) - 1, -1, -1):
        if history[index].role == "user":
            text = history[index].content
            del history[index:]
            if session.log is not None:
                await session.log.mark_undone(text)
            return text
    return None


async def _clear(session: ChatSession) -> None:
    system = [m for m in session.history[:1] if m.role == "system"]
    session.history[:] = system
    log = session.log
    if log is not None:
        session.log = ConversationLog(log.store, await log.store.new_conversation())
        if system:
            await session.log.add_message("system", system[0].content)


def _set_option(session: ChatSession, argument: str) -> None:
    key, _, raw = argument.partition(" ")
    if key not in SETTABLE or not raw.strip():
        raise UsageError(f"/set KEY VALUE, KEY one of: {', '.join(SETTABLE)}")
    try:
        value = msgspec.json.decode(raw.strip())
    except msgspec.DecodeError:
        value = raw.strip()
    fields = msgspec.structs.asdict(session.options)
    fields[key] = value
    try:
        session.options = msgspec.convert(fields, GenerationOptions)
    except msgspec.ValidationError as exc:
        raise UsageError(f"/set {key}: {exc}") from None
    _say(f"{key} = {value!r}")


def _save(session: ChatSession, argument: str) -> None:
    if not argument:
        raise UsageError("/save FILE")
    path = Path(os.path.expanduser(argument))
    parts = [f"## {m.role}\n\n{m.content}\n" for m in session.history]
    try:
        path.write_text("\n".join(parts), encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror}") from None
    _say(f"saved {len(session.history)} message(s) to {path}")
