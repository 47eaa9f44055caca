"""The study database as a file: opening it without writing, and turning sqlite3's errors
about the file (not a database, truncated, a full disk, read-only) into one-line StoreErrors.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from odenet.errors import StoreError


def connect_read_only(path: Path, isolation: str | None) -> sqlite3.Connection:
    """Open ``path`` without writing: mode=ro, or immutable when even the WAL index cannot be
    set up (a read-only directory without a -shm file; a cleanly closed study has no WAL)."""
    uri = f"file:{quote(str(path.absolute()))}"
    for flags in ("?mode=ro", "?mode=ro&immutable=1"):
        con = sqlite3.connect(uri + flags, uri=True, timeout=60.0, isolation_level=isolation)
        try:
            con.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            return con
        except sqlite3.OperationalError:
            con.close()
            if "immutable" in flags:
                raise
    raise AssertionError("unreachable")


# sqlite3 messages that say the file (not the SQL) is the problem -> what to tell the user.
_FILE_PROBLEMS = (
    ("file is not a database", "is not an SQLite database (overwritten or damaged)"),
    ("malformed", "is damaged (malformed or truncated)"),
    ("disk is full", "cannot be written: the disk is full"),
    ("readonly", "is read-only"),
    ("unable to open", "cannot be opened"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
)
_FIXES = {
    "disk is full": "free some space and run the same command to resume",
    "readonly": "make the study directory writable, or copy it somewhere writable",
}


@contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """sqlite3 errors about the database file -> StoreError (one line, exit 2)."""
    try:
        yield
    except sqlite3.DatabaseError as err:
        text = str(err).lower()
        for key, what in _FILE_PROBLEMS:
            if key in text:
                fix = _FIXES.get(
                    key,
                    "it was left as it is; restore it from a backup, or move it away and run "
                    "the study again to start over",
                )
                raise StoreError(f"the study database {str(path)!r} {what}; {fix}") from None
        raise


def quietly(undo: Callable[[], object]) -> None:
    """A rollback after an error: a second error (the disk still full) must not hide the first."""
    try:
        undo()
    except sqlite3.Error:
        pass


def check_intact(path: Path, tries: int = 3) -> None:
    """StoreError unless ``path`` is an intact SQLite database; reads it without writing.

    Opened immutable (no lock, no -wal/-shm created) and checked with ``PRAGMA quick_check``
    (every page, not just the schema), before any connection that could write. Without locks
    a read can meet a page that another process's checkpoint is writing: a failed check is
    repeated (``tries`` in all, 0.2 s apart) before the file is called damaged.
    """
    uri = f"file:{quote(str(path.absolute()))}?mode=ro&immutable=1"
    for attempt in range(tries):
        try:
            with file_errors(path):
                con = sqlite3.connect(uri, uri=True)
                try:
                    verdict = [row[0] for row in con.execute("PRAGMA quick_check")]
                finally:
                    con.close()
                if verdict != ["ok"]:
                    raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict[0]}")
            return
        except StoreError:
            if attempt == tries - 1:
                raise
            time.sleep(0.2)
