"""The shell completion scripts in ``completions/``, generated from the Typer app.

The scripts are Typer's: each asks ``streamkit`` itself what to complete, so
commands, options and values (profiles, models, files) always match the
installed version. ``python -m streamkit.cli.completions DIR`` writes them;
a test regenerates them and fails when the committed ones are stale.
"""

from __future__ import annotations

import sys
from pathlib import Path

from typer._completion_shared import get_completion_script

PROG = "streamkit"
COMPLETE_VAR = "_STREAMKIT_COMPLETE"
FILES = {"bash": "streamkit.bash", "zsh": "_streamkit", "fish": "streamkit.fish"}


def completion_scripts() -> dict[str, str]:
    """File name -> script text, for bash, zsh and fish."""
    return {
        name: get_completion_script(prog_name=PROG, complete_var=COMPLETE_VAR, shell=shell).rstrip(
            "\n"
        )
        + "\n"
        for shell, name in FILES.items()
    }


def write_completion_scripts(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in completion_scripts().items():
        (directory / name).write_text(text)


if __name__ == "__main__":
    write_completion_scripts(Path(sys.argv[1] if len(sys.argv) > 1 else "completions"))
