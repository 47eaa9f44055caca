"""Error types shared by every layer. The CLI turns them into one line and an exit code."""

import errno


class OdenetError(Exception):
    """Base class: an error whose message is meant for the user as it is."""

    exit_code = 1


class ConfigError(OdenetError, ValueError):
    """Bad input: an unknown name, an invalid number, a malformed list. Exit code 2."""

    exit_code = 2


class DataError(OdenetError):
    """A dataset that cannot be found, fetched or verified. Exit code 1."""

    exit_code = 1


class StoreError(OdenetError):
    """A study database that cannot be used: damaged (not a database, truncated), a directory
    in its place, a read-only file to write. Exit code 2, decided before anything is written;
    the file is left as it is. (A full disk is ``DiskFull``.)"""

    exit_code = 2


class DiskFull(OdenetError, OSError):
    """No space left on the device that ``filename`` was being written to. Exit code 1: not
    bad input, and not one run's failure either (every later write would fail too), so a
    study stops at once. An OSError (errno ENOSPC) too: code that tolerates a failed write
    (an optional cache) still does."""

    exit_code = 1

    def __init__(self, path: object) -> None:
        super().__init__(errno.ENOSPC, "No space left on device", str(path))

    def __reduce__(self):  # pickled as it is made (OSError's default passes errno, strerror)
        return (type(self), (self.filename,))

    def __str__(self) -> str:
        return (
            f"no space left on device ({self.filename}); free some space and run the same "
            "command again (a study resumes where it stopped)"
        )


class LeaseLost(OdenetError):
    """A run this process was training was taken from it: its lease expired (the process was
    paused, or its heartbeat could not reach the store, for longer than the grace period) and
    another process reclaimed or reset the run. Raised by the study's recorder through an
    executor's ``emit`` so that the training of that run stops without writing its results;
    executors catch it (the study goes on with its other runs)."""

    def __init__(self, run_id: str, detail: str) -> None:
        super().__init__(f"run {run_id!r} was taken from this process ({detail})")
        self.run_id = run_id


class Terminated(BaseException):  # noqa: N818 - named like KeyboardInterrupt, its sibling
    """SIGTERM (a cluster or container stopping the process), raised in the main thread by the
    command line's handler as Ctrl-C raises KeyboardInterrupt: not an Exception, so that no
    ``except Exception`` takes it for a run's failure. The study gives its runs back and the
    command exits 143."""
