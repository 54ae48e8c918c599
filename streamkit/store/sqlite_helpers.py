"""What every use of the log's SQLite file shares: transactions, migration scripts,
full-text queries of plain words, and damaged files as one usage line.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from streamkit.errors import UsageError


def plain_words(text: str) -> str:
    """``text`` as an FTS5 query for all its words, none of them syntax.

    Each whitespace-separated term is quoted, so ``e-mail``, ``what's``, ``3.5``
    and ``C++`` are searched as written (FTS5 reads a bare ``-`` or ``.`` as
    syntax): the tokenizer splits a quoted term into a phrase of its words.
    """
    terms = text.split()
    if not terms:
        raise UsageError("nothing to search for")
    return " ".join('"' + term.replace('"', '""') + '"' for term in terms)


@contextmanager
def unusable_database(path: Path) -> Iterator[None]:
    """A query that fails on a damaged file is a usage error: the database is unusable.

    For commands that only read and manage the log (``logs``), where the log
    is the whole job, not a side effect of a reply.
    """
    try:
        yield
    except sqlite3.DatabaseError as exc:
        raise UsageError(f"cannot use the log database {path}: {exc}") from None


class Transaction:
    """``with store.transaction():`` -- BEGIN IMMEDIATE ... COMMIT / ROLLBACK.

    IMMEDIATE takes the write lock up front, so a writer waits (busy timeout)
    instead of failing with "database is locked" half-way through.

    Inside a transaction already open (the writes of one group commit,
    ``streamkit.store.async_store``) it does nothing: the group is the unit.
    No savepoint is needed for a write that fails there: each write either
    fails at its first change (a removed conversation's foreign key) or
    after statements that changed nothing (``ROW_GONE``), and the errors that
    can strike half-way (a full disk, an I/O error) make SQLite roll back the
    whole transaction. Two statements saved per write, at thousands a second.
    """

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._outer = False

    def __enter__(self) -> None:
        self._outer = not self.db.in_transaction
        if self._outer:
            self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, value: object, traceback: object) -> None:
        if not self._outer:
            return
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:
            # Some errors (a full disk) have already rolled the transaction
            # back; a failing ROLLBACK must not hide the error that matters.
            with suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


def statements(script: str) -> list[str]:
    """Split a migration script into statements (trigger bodies kept whole)."""
    statements, current = [], []
    for line in script.strip().splitlines():
        current.append(line)
        candidate = "\n".join(current)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            current = []
    return statements
