"""Error types shared by every layer. The CLI turns them into one line and an exit code."""


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
    in its place, a full disk, a read-only file to write. Exit code 2, decided before
    anything is written; the file is left as it is."""

    exit_code = 2
