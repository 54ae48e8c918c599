"""Entry point of ``streamkit`` and ``python -m streamkit``.

It imports the CLI inside the ``try`` so that a Ctrl-C during start-up (while
heavy modules load) also ends with exit 130 and no traceback.
"""

import gc
import sys


def main() -> None:
    # Objects here are freed by reference counting (a test keeps a logged batch
    # line free of cycles). At the default threshold of 700 the collector runs
    # every few ms, during the imports and then during a batch, where it walks
    # the hundreds of lines in flight each time: a tenth of a large batch's CPU.
    gc.set_threshold(50_000, 10, 10)
    try:
        from streamkit.cli.app import app_for, disable_colour_if_asked

        disable_colour_if_asked(sys.argv[1:])
        app = app_for(sys.argv[1:])

        # The hundreds of module objects imported above live until exit; moving
        # them out of the collector's reach makes exit ~40 ms faster, which is
        # most of the time between Ctrl-C and the shell prompt.
        gc.freeze()
        app(prog_name="streamkit")
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
