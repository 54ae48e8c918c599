"""Entry point of ``streamkit`` and ``python -m streamkit``.

It imports the CLI inside the ``try`` so that a Ctrl-C during start-up (while
heavy modules load) also ends with exit 130 and no traceback.
"""

import sys


def main() -> None:
    try:
        from streamkit.cli.app import app

        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
