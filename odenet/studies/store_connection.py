"""Connections to a study's database: the base every part of ``Store`` builds on.

One short-lived connection per operation (WAL, 60 s busy timeout). A damaged, full or
read-only database raises StoreError (odenet.studies.db_file), one line naming the file and
the fix. A study directory (or database file) this process cannot write is opened read-only,
without WAL set-up or a -shm file, so it can still be reported.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from odenet.studies.db_file import connect_read_only, file_errors, quietly
from odenet.studies.records import RunRecord, record_from_row
from odenet.studies.store_schema import DB_NAME


class StoreConnection:
    """A study directory and its database; the connections every Store operation uses."""

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir)
        self.path = self.dir / DB_NAME
        # A directory (or database file) this process cannot write: read it without writing
        # anything (no WAL set-up, no -shm file), so that `report` still works.
        self.read_only = (self.dir.is_dir() and not os.access(self.dir, os.W_OK)) or (
            self.path.is_file() and not os.access(self.path, os.W_OK)
        )

    def run_dir(self, run_id: str) -> Path:
        return self.dir / "runs" / run_id

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection (WAL, busy timeout) for extra tables; commits on success.

        A damaged, full or read-only database raises StoreError; SQL errors (e.g. "no such
        table") stay sqlite3 errors for the caller.
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
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """Autocommit connection: explicit ``BEGIN IMMEDIATE`` blocks commit on exit."""
        with file_errors(self.path):
            con = self._connect(autocommit=True)
            try:
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

    def _record(self, r: sqlite3.Row, swept: tuple[str, ...]) -> RunRecord:
        return record_from_row(r, self.run_dir(r["id"]), swept)
