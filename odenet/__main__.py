"""``python -m odenet`` == the ``odenet`` console script.

Ctrl-C during start-up (before the command line is parsed: importing typer, rich) prints the
same one line as later and exits 130, instead of a traceback from inside an import.
"""

import os
import signal


def _interrupted_at_startup(signum: int, frame: object) -> None:
    os.write(2, b"interrupted; run the same command to resume\n")
    os._exit(130)  # nothing was written yet: no cleanup to run


def main() -> None:
    """Install the start-up Ctrl-C handler, then hand over to ``odenet.cli.main`` (which
    replaces it with KeyboardInterrupt once its own handling is in place)."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, _interrupted_at_startup)
    from odenet.cli import main as cli_main

    cli_main()


if __name__ == "__main__":
    main()
