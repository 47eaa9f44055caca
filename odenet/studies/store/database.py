"""The study database (study.sqlite): its connections, and the file beneath them.

One short-lived connection per operation (WAL, 60 s busy timeout). sqlite3's errors about the
file (not a database, truncated, a directory in its place, read-only) become one-line
StoreErrors naming the file and the fix; the file is never rewritten while refusing. A full
disk is ``DiskFull`` (exit code 1), also when sqlite calls it a "disk I/O error" (it cannot
create the WAL index beside a database it opens).
A database (or study directory) this process cannot write is opened read-only, without WAL
set-up or a -shm file, so that a study can still be reported.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

from odenet.errors import DiskFull, StoreError


class Database:
    """Connections to one study.sqlite at ``path``."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # A directory (or database file) this process cannot write: read it without writing
        # anything (no WAL set-up, no -shm file), so that `report` still works.
        self.read_only = (path.parent.is_dir() and not os.access(path.parent, os.W_OK)) or (
            path.is_file() and not os.access(path, os.W_OK)
        )

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """An autocommit connection: each statement is its own transaction."""
        with self._session(begin=False) as con:
            yield con

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A connection inside one ``BEGIN IMMEDIATE`` transaction (the write lock taken
        first, so that a read-then-write never races another writer), committed on success
        and rolled back on any error."""
        with self._session(begin=True) as con:
            yield con

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in sqlite3's own transaction handling, committed on success (for
        tools and tests that add tables or patch rows).

        SQL errors (e.g. "no such table") stay sqlite3 errors for the caller.
        """
        with file_errors(self.path):
            con = self._connect(autocommit=False)
            try:
                yield con
                con.commit()
            except BaseException:
                quietly(con.rollback)
                raise
            finally:
                con.close()

    @contextmanager
    def _session(self, begin: bool) -> Iterator[sqlite3.Connection]:
        with file_errors(self.path):
            con = self._connect(autocommit=True)
            try:
                if begin:
                    con.execute("BEGIN IMMEDIATE")
                yield con
                if con.in_transaction:
                    con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    quietly(lambda: con.execute("ROLLBACK"))
                raise
            finally:
                con.close()

    def _connect(self, autocommit: bool) -> sqlite3.Connection:
        isolation = None if autocommit else ""
        if self.read_only:
            con = connect_read_only(self.path, isolation)
        else:
            con = sqlite3.connect(self.path, timeout=60.0, isolation_level=isolation)
        con.row_factory = sqlite3.Row
        con.execute("PRAGMA busy_timeout = 60000")
        if not self.read_only:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("PRAGMA synchronous = NORMAL")
        return con


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
    ("readonly", "is read-only"),
    ("unable to open", "cannot be opened"),
    ("disk i/o error", "cannot be read or written (disk I/O error)"),
)
_FIXES = {
    "readonly": "make the study directory writable, or copy it somewhere writable",
}


@contextmanager
def file_errors(path: Path) -> Iterator[None]:
    """sqlite3 errors about the database file -> StoreError (one line, exit 2)."""
    try:
        yield
    except sqlite3.DatabaseError as err:
        text = str(err).lower()
        if "disk is full" in text or ("disk i/o error" in text and _nearly_full(path.parent)):
            raise DiskFull(path) from None
        for key, what in _FILE_PROBLEMS:
            if key in text:
                fix = _FIXES.get(
                    key,
                    "it was left as it is; restore it from a backup, or move it away and run "
                    "the study again to start over",
                )
                raise StoreError(f"the study database {str(path)!r} {what}; {fix}") from None
        raise


def _nearly_full(folder: Path) -> bool:
    """Whether the file system holding ``folder`` has less than 1 MiB free: too little for the
    WAL index (32 KiB) and the pages of a transaction, whatever sqlite called the failure."""
    try:
        return shutil.disk_usage(folder).free < 1 << 20
    except OSError:
        return False


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
    repeated (``tries`` in all, 0.2 s apart) before the file is called damaged. Immutable
    reads ignore the WAL: a file that fails them beside a non-empty -wal (a checkpoint cut
    short, e.g. by a full disk, leaves the file behind its WAL) is checked once more as sqlite
    reads it, file and WAL together (read-only, with locks).
    """
    for attempt in range(tries):
        try:
            _quick_check(path, "?mode=ro&immutable=1")
            return
        except StoreError:
            if attempt == tries - 1:
                wal = path.with_name(path.name + "-wal")
                if wal.is_file() and wal.stat().st_size > 0:
                    _quick_check(path, "?mode=ro")
                    return
                raise
            time.sleep(0.2)


def _quick_check(path: Path, flags: str) -> None:
    """StoreError unless ``PRAGMA quick_check`` on ``path`` opened with ``flags`` says ok."""
    with file_errors(path):
        con = sqlite3.connect(f"file:{quote(str(path.absolute()))}{flags}", uri=True)
        try:
            verdict = [row[0] for row in con.execute("PRAGMA quick_check")]
        finally:
            con.close()
        if verdict != ["ok"]:
            raise sqlite3.DatabaseError(f"database disk image is malformed: {verdict[0]}")
