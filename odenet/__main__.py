"""``python -m odenet`` == the ``odenet`` console script.

Ctrl-C or SIGTERM during start-up (before the command line is parsed: importing typer, rich)
prints the same one line as later and exits 130 or 143, instead of a traceback from inside an
import (or, for SIGTERM to a container's PID 1, instead of being ignored).
"""

import os
import signal

_LINES = {
    signal.SIGINT: (130, b"interrupted; run the same command to resume\n"),
    signal.SIGTERM: (143, b"terminated (SIGTERM); run the same command to resume\n"),
}


def _interrupted_at_startup(signum: int, frame: object) -> None:
    code, line = _LINES[signal.Signals(signum)]
    os.write(2, line)
    os._exit(code)  # nothing was written yet: no cleanup to run


def main() -> None:
    """Install the start-up Ctrl-C and SIGTERM handlers, then hand over to
    ``odenet.cli.main`` (which replaces them with exceptions once its own handling is in
    place)."""
    for signum in _LINES:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _interrupted_at_startup)
    from odenet.cli import main as cli_main  # noqa: PLC0415 (after the handlers, on purpose)

    cli_main()


if __name__ == "__main__":
    main()
