"""``streamkit logs``: list, show, search, export and remove logged conversations."""

from __future__ import annotations

import datetime
import sys
from collections.abc import Callable
from typing import Annotated, NoReturn

import msgspec
import typer

from streamkit.cli import options as opt
from streamkit.cli.failed import print_failed, response_line, with_response
from streamkit.config import load_config, resolve_settings
from streamkit.errors import UsageError, one_line
from streamkit.pipeline.command import run_blocking_command
from streamkit.store.database import Store
from streamkit.store.records import StoredMessage
from streamkit.store.sqlite_helpers import unusable_database

logs_app = typer.Typer(name="logs", no_args_is_help=True)


@logs_app.callback()
def logs() -> None:
    """The conversation log: every prompt and reply, kept in SQLite.

    chat and complete (--jsonl batches too) log every exchange unless --no-log;
    --db PATH, $STREAMKIT_DB or `db` in the config file choose the file.

    Examples:

      streamkit logs list -n 5

      streamkit logs show 3f2a9c1d0b7e

      streamkit logs search e-mail

      streamkit logs export > backup.jsonl

      streamkit logs rm 3f2a9c1d0b7e
    """


JSONOutput = Annotated[bool, typer.Option("--json", help="One JSON object a line")]
Limit = Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most this many")]


def _open(db: opt.Database) -> Store:
    config = load_config()
    settings = resolve_settings(
        profile=None,
        base_url=None,
        api_key=None,
        model=None,
        connect_timeout=None,
        idle_timeout=None,
        timeout=None,
        max_retries=None,
        config=config,
    )
    return Store(opt.database_path(db, settings))


def _run(body: Callable[[Store], None], db: opt.Database) -> NoReturn:
    """Run a ``logs`` command on the opened log; a damaged file is one line, exit 2."""

    def run() -> None:
        store = _open(db)
        try:
            with unusable_database(store.path):
                body(store)
        finally:
            store.close()

    raise typer.Exit(run_blocking_command(run))


def _when(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M")


def _print_json(value: object) -> None:
    sys.stdout.buffer.write(msgspec.json.encode(value) + b"\n")


@logs_app.command("list")
def list_conversations(
    db: opt.Database = None,
    limit: Limit = 20,
    as_json: JSONOutput = False,
    failed: Annotated[
        bool,
        typer.Option(
            "--failed",
            help="List failed requests instead (their ids are what `streamkit replay` takes)",
        ),
    ] = False,
) -> None:
    """The latest conversations: id, when, messages, model, first prompt.

    Examples:

      streamkit logs list -n 5

      streamkit logs list --json | jq -r .id

      streamkit logs list --failed
    """

    def body(store: Store) -> None:
        if failed:
            print_failed(store.failed_requests(limit), as_json=as_json)
            return
        for item in store.conversations(limit):
            if as_json:
                _print_json(item)
            else:
                print(
                    f"{item.id}  {_when(item.updated_at)}  {item.messages:3d} msgs  "
                    f"{item.model or '-':<12}  {one_line(item.first_prompt, 50)}"
                )

    _run(body, db)


@logs_app.command("show")
def show(
    conversation_id: Annotated[str, typer.Argument(help="Conversation id (see `logs list`)")],
    db: opt.Database = None,
    as_json: JSONOutput = False,
) -> None:
    """Every message of one conversation, with how each reply ended.

    Examples:

      streamkit logs show 3f2a9c1d0b7e

      streamkit logs show 3f2a9c1d0b7e --json | jq -r 'select(.role=="assistant").content'
    """

    def body(store: Store) -> None:
        if not store.has_conversation(conversation_id):
            raise UsageError(f"no conversation {conversation_id!r} in the log")
        responses = store.responses(conversation_id)
        for message in store.messages(conversation_id):
            response = responses.get(message.request_id or -1)
            if as_json:
                _print_json(with_response(message, response))
            else:
                print(f"## {message.role}{_reply_facts(message)}")
                if response is not None:
                    print(response_line(message.request_id or 0, response))
                if message.reasoning:
                    print(f"### reasoning\n{message.reasoning}\n### answer")
                print(message.content)
                for call in msgspec.json.decode(message.tool_calls or "[]"):
                    print(f"-> {call['name']}({call['arguments']})  [{call['id']}]")
                print()

    _run(body, db)


def _reply_facts(message: StoredMessage) -> str:
    undone = f"undone {_when(message.undone_at)}" if message.undone_at is not None else None
    if message.role == "tool":
        return f" (answer to {message.tool_call_id}{', ' + undone if undone else ''})"
    if message.role != "assistant":
        return f" ({undone})" if undone else ""
    facts = [message.model or "?", message.status, *([undone] if undone else [])]
    if message.finish_reason:
        facts.append(f"finish={message.finish_reason}")
    if message.ttft_s is not None:
        facts.append(f"ttft={message.ttft_s * 1000:.0f}ms")
    if message.error:
        facts.append(f"error: {message.error}")
    return " (" + ", ".join(facts) + ")"


@logs_app.command("search")
def search(
    query: Annotated[
        str,
        typer.Argument(help="Words a message must all contain (with --fts: an SQLite FTS5 query)"),
    ],
    db: opt.Database = None,
    limit: Limit = 20,
    as_json: JSONOutput = False,
    fts: Annotated[
        bool, typer.Option("--fts", help='QUERY is FTS5 syntax: AND, OR, NOT, "phrases", prefix*')
    ] = False,
    reasoning: Annotated[
        bool,
        typer.Option(
            "--reasoning", help="Search the thinking of reasoning models instead of the messages"
        ),
    ] = False,
) -> None:
    """Messages with every word of QUERY, best match first.

    Words are taken as written (e-mail, what's, 3.5, C++); --fts for the query syntax.

    Examples:

      streamkit logs search primes

      streamkit logs search "what's the e-mail"

      streamkit logs search --fts '"capital of" AND France'
    """

    def body(store: Store) -> None:
        for message, snippet in store.search(query, limit, fts=fts, reasoning=reasoning):
            if as_json:
                _print_json({**msgspec.structs.asdict(message), "snippet": snippet})
            else:
                print(f"{message.conversation_id}  {message.role:<9}  {one_line(snippet, 80)}")

    _run(body, db)


@logs_app.command("export")
def export(db: opt.Database = None) -> None:
    """Every logged message as JSON lines, oldest first.

    Examples:

      streamkit logs export > backup.jsonl
    """

    def body(store: Store) -> None:
        for message in store.all_messages():
            _print_json(message)

    _run(body, db)


@logs_app.command("rm")
def remove(
    conversation_ids: Annotated[list[str], typer.Argument(help="Conversation ids to delete")],
    db: opt.Database = None,
) -> None:
    """Delete conversations and everything in them.

    Examples:

      streamkit logs rm 3f2a9c1d0b7e
    """

    def body(store: Store) -> None:
        missing = [cid for cid in conversation_ids if not store.delete_conversation(cid)]
        if missing:
            raise UsageError(f"no conversation {', '.join(map(repr, missing))} in the log")

    _run(body, db)
