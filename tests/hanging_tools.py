"""Python tools that never return, for timeouts and signals while a tool runs.

Offered from a ``--tools`` file as ``python = "hanging_tools:NAME"``, with this
folder on the CLI's ``PYTHONPATH``.
"""

from __future__ import annotations

import threading
from pathlib import Path


def wait_forever(marker: str) -> str:
    """Write ``marker`` (the test then knows the tool runs), then block for good."""
    Path(marker).write_text("started")
    threading.Event().wait()
    return "never"
