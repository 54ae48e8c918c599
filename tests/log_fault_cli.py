"""``streamkit`` as a program, with the log's limits made small for tests of log failures.

``LOG_TEST_BUSY_MS``: the busy timeout (ms), so a lock held by another
connection outlasts it in a moment. ``LOG_TEST_FULL``: every connection may
not grow the file (``PRAGMA max_page_count`` at its size when opened), which
SQLite reports as ``SQLITE_FULL`` -- "database or disk is full" -- as a full
disk would.
"""

from __future__ import annotations

import os
import sys

from streamkit.store import database

if "LOG_TEST_BUSY_MS" in os.environ:
    database.BUSY_TIMEOUT_MS = int(os.environ["LOG_TEST_BUSY_MS"])

if "LOG_TEST_FULL" in os.environ:
    _open = database.Store.__init__

    def _open_full(self: database.Store, path) -> None:
        _open(self, path)
        (pages,) = self.db.execute("PRAGMA page_count").fetchone()
        self.db.execute(f"PRAGMA max_page_count = {pages}")

    database.Store.__init__ = _open_full

if __name__ == "__main__":
    from streamkit.__main__ import main

    sys.argv[0] = "streamkit"
    main()
