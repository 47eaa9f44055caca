"""The study store: one SQLite database (WAL) per study directory, checkpoints beside it.

Layout::

    <study>/study.sqlite        meta (spec, versions), runs (spec, status, final metrics,
                                provenance), epochs (per-epoch metrics), steps (training
                                loss and lr every log_every optimizer steps)
    <study>/runs/<run_id>/      checkpoint.pt, result.json (written by odenet.training.train)

The ``analyses`` table caches measurements of trained models (odenet.analysis: sharpness,
``analyze``): one row per (run, kind, settings), keyed by a hash of every setting.

Statuses: pending -> running -> done | diverged | failed. Runs are claimed atomically
(``UPDATE ... WHERE status = 'pending'``) with the claimer's pid, host and identity (boot id
and process start time, ``records.process_identity``), so any number of processes can share
one directory; a run left 'running' by a dead process on this host goes back to pending and
resumes from its checkpoint, also when the dead owner's pid now belongs to another process
(a container restarted as PID 1, a reboot). Every write is one short transaction.

A database that cannot be used (not a database, truncated, a directory in its place, a full
disk, read-only when writing) raises StoreError, one line naming the file and the fix; the
file is never rewritten while refusing. A study directory that cannot be written is opened
read-only, so it can still be reported.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sqlite3
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from odenet.errors import ConfigError, StoreError
from odenet.studies.db_file import check_intact, connect_read_only, file_errors, quietly
from odenet.studies.records import (
    RunRecord,
    now,
    owner_alive,
    process_identity,
    record_from_row,
)
from odenet.studies.spec import StudySpec
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import TrainConfig

DB_NAME = "study.sqlite"
STATUSES = ("pending", "running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, depth INTEGER NOT NULL, solver TEXT NOT NULL,
    lr REAL NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', executor TEXT, pid INTEGER, host TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, started TEXT, finished TEXT,
    epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, best_test_acc REAL,
    train_loss REAL, diverged_epoch INTEGER, diverged_step INTEGER, params INTEGER,
    extra_params INTEGER, seconds REAL, device TEXT, provenance TEXT, owner TEXT);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, train_loss REAL,
    train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, seconds REAL, images_per_s REAL,
    PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, loss REAL, lr REAL,
    PRIMARY KEY (run_id, step));
"""
_ANALYSES = """
CREATE TABLE IF NOT EXISTS analyses (
    run_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, settings TEXT NOT NULL,
    result TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (run_id, kind, key))
"""
_EPOCH_COLUMNS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
    "images_per_s",
)
_RESULT_COLUMNS = (
    "epochs_done",
    "test_acc",
    "best_test_acc",
    "train_loss",
    "diverged_epoch",
    "diverged_step",
    "params",
    "extra_params",
    "seconds",
    "device",
)


# Columns added after a store's first version: (table, column, type), added when missing.
_ADDED_COLUMNS = (("runs", "owner", "TEXT"),)  # owner: process_identity of the claimer


class Store:
    """Handle on one study directory. Cheap; opens a short-lived connection per operation."""

    def __init__(self, study_dir: str | Path) -> None:
        self.dir = Path(study_dir)
        self.path = self.dir / DB_NAME
        # A directory (or database file) this process cannot write: read it without writing
        # anything (no WAL set-up, no -shm file), so that `report` still works.
        self.read_only = (self.dir.is_dir() and not os.access(self.dir, os.W_OK)) or (
            self.path.is_file() and not os.access(self.path, os.W_OK)
        )

    # ---- creation / opening -------------------------------------------------------------
    @classmethod
    def open(cls, study_dir: str | Path) -> Store:
        """An existing study; ConfigError "no study in DIR" otherwise."""
        store = cls(study_dir)
        if not cls.exists(study_dir):
            what = f"an empty {DB_NAME}" if store.path.exists() else f"no {DB_NAME}"
            raise ConfigError(f"no study in {str(study_dir)!r} ({what}); run `odenet study`")
        return store

    @classmethod
    def exists(cls, study_dir: str | Path) -> bool:
        """Whether ``study_dir`` holds a (completely created) study.

        False when there is no study.sqlite or an empty one (a creation that never got to its
        first transaction); StoreError when there is one that cannot be read (damaged, a
        directory): such a file is never taken for "no study" and never overwritten.
        """
        store = cls(study_dir)
        if not store.path.exists():
            return False
        if not store.path.is_file():
            raise StoreError(
                f"{str(store.path)!r} is not a file (a directory?), so the study cannot be read; "
                f"move it away, or choose another --out"
            )
        if store.path.stat().st_size == 0:
            return False
        check_intact(store.path)  # before any connection that could write (-wal, -shm)
        with store._tx() as con:
            try:
                return _meta(con, "spec") is not None
            except ConfigError:  # a database without the spec: not (yet) an odenet study
                return False
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return False
                raise

    @classmethod
    def create(cls, study_dir: str | Path, spec: StudySpec, runs: list, versions: dict) -> Store:
        """Create (or join) the study at ``study_dir`` holding ``runs`` (RunSpecs).

        Safe against a concurrent creator: the first spec written wins and a different one
        is refused with ConfigError. Call ``check_spec`` first to fail without writing.
        """
        store = cls(study_dir)
        try:
            (store.dir / "runs").mkdir(parents=True, exist_ok=True)
        except OSError as err:  # e.g. a read-only or virtual file system that os.access allows
            raise ConfigError(
                f"cannot create the study directory {str(store.dir)!r} ({err.strerror}); "
                "choose another --out"
            ) from None
        with store._tx() as con:  # one transaction: readers see no study or a whole one
            con.execute("BEGIN IMMEDIATE")
            for statement in filter(str.strip, _SCHEMA.split(";")):
                con.execute(statement)
            _add_missing_columns(con)
            meta = {"spec": json.dumps(spec.to_dict()), "created": now(), **versions}
            con.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()]
            )
            stored = StudySpec.from_dict(json.loads(_meta(con, "spec")))
            _refuse_changed(store.dir, stored, spec)
            con.executemany(
                "INSERT OR IGNORE INTO runs (id, idx, depth, solver, lr, seed, config)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.id, r.index, r.depth, r.solver, r.lr, r.seed, json.dumps(r.config_dict()))
                    for r in runs
                ],
            )
        return store

    def spec(self) -> StudySpec:
        with self._tx() as con:
            return StudySpec.from_dict(json.loads(_meta(con, "spec")))

    def meta(self) -> dict[str, str]:
        with self._tx() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    def check_spec(self, spec: StudySpec) -> None:
        """ConfigError saying what differs when ``spec`` is not this study's spec."""
        _refuse_changed(self.dir, self.spec(), spec)

    # ---- reading ------------------------------------------------------------------------
    def run_dir(self, run_id: str) -> Path:
        return self.dir / "runs" / run_id

    def runs(self) -> list[RunRecord]:
        """Every run in grid order."""
        with self._tx() as con:
            rows = con.execute("SELECT * FROM runs ORDER BY idx").fetchall()
        return [self._record(r) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        with self._tx() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise ConfigError(f"no run {run_id!r} in study {str(self.dir)!r}")
        return self._record(row)

    def epochs(self, run_id: str | None = None) -> list[dict]:
        """Per-epoch metrics (dicts with run_id, epoch and the EpochMetrics fields)."""
        sql = "SELECT * FROM epochs" + (" WHERE run_id = ?" if run_id else "")
        with self._tx() as con:
            rows = con.execute(sql + " ORDER BY run_id, epoch", (run_id,) if run_id else ())
            return [dict(r) for r in rows.fetchall()]

    def steps(self, run_id: str | None = None) -> list[dict]:
        """Logged training steps: dicts {run_id, step, loss, lr} by run id, then step. A study
        made before steps were logged has none."""
        sql = "SELECT run_id, step, loss, lr FROM steps" + (" WHERE run_id = ?" if run_id else "")
        with self._tx() as con:
            if not _has_table(con, "steps"):
                return []
            rows = con.execute(sql + " ORDER BY run_id, step", (run_id,) if run_id else ())
            return [dict(r) for r in rows.fetchall()]

    def counts(self) -> dict[str, int]:
        """status -> number of runs (every status present, zeros included)."""
        with self._tx() as con:
            rows = con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {s: n for s, n in rows}

    # ---- state changes ------------------------------------------------------------------
    def reclaim_dead(self) -> list[str]:
        """Runs left 'running' by a dead process on this host -> pending. Returns their ids.

        Dead: the pid is gone, or now belongs to another process than the one that claimed
        (``records.owner_alive``): a restart that got the dead owner's pid reclaims its runs.
        """
        host = socket.gethostname()
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            rows = con.execute(
                "SELECT id, pid, owner FROM runs WHERE status = 'running' AND host = ?", (host,)
            ).fetchall()
            dead = [r["id"] for r in rows if not self._alive(r)]
            con.executemany(
                "UPDATE runs SET status = 'pending', pid = NULL, owner = NULL WHERE id = ?",
                [(i,) for i in dead],
            )
        return dead

    def release_mine(self) -> list[str]:
        """Runs still claimed by this very process -> pending (an earlier study in the same
        process that stopped on an error, e.g. a notebook's). Call only while this process
        runs nothing of the study. Returns their ids."""
        host, pid, owner = socket.gethostname(), os.getpid(), process_identity(os.getpid())
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            ids = [r["id"] for r in con.execute(
                "SELECT id FROM runs WHERE status = 'running' AND host = ? AND pid = ?"
                " AND owner IS ?", (host, pid, owner),
            )]  # fmt: skip
            con.executemany(
                "UPDATE runs SET status = 'pending', pid = NULL, owner = NULL WHERE id = ?",
                [(i,) for i in ids],
            )
        return ids

    def retry_failed(self) -> int:
        """Failed runs -> pending (their error is kept until they run again)."""
        with self._tx() as con:
            return con.execute(
                "UPDATE runs SET status = 'pending' WHERE status = 'failed'"
            ).rowcount

    def claim(
        self, n: int, executor: str, key: Callable[[TrainConfig], Hashable | None] | None = None
    ) -> list[str]:
        """Atomically mark up to ``n`` pending runs (grid order) running for this process.

        Without ``key`` the first ``n`` pending runs; with it (e.g. a fusion group's), the first
        pending run and the following pending runs whose key equals its key, or that run alone
        when its key is None.
        """
        host, pid = socket.gethostname(), os.getpid()
        owner = process_identity(pid)
        claimed = []
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            sql = "SELECT id, config FROM runs WHERE status = 'pending' ORDER BY idx"
            if key is None:
                ids = [r["id"] for r in con.execute(sql + " LIMIT ?", (max(n, 0),))]
            else:
                ids = _first_of_key(con.execute(sql), n, key)
            for run_id in ids:
                cur = con.execute(
                    "UPDATE runs SET status = 'running', pid = ?, host = ?, owner = ?,"
                    " executor = ?, attempts = attempts + 1, started = COALESCE(started, ?)"
                    " WHERE id = ? AND status = 'pending'",
                    (pid, host, owner, executor, now(), run_id),
                )
                if cur.rowcount:
                    claimed.append(run_id)
        return claimed

    def running_elsewhere(self) -> list[str]:
        """Runs 'running' under another live process on this host (this one excluded)."""
        host, me = socket.gethostname(), (os.getpid(), process_identity(os.getpid()))
        with self._tx() as con:
            rows = con.execute(
                "SELECT id, pid, owner FROM runs WHERE status = 'running' AND host = ?", (host,)
            ).fetchall()
        return [r["id"] for r in rows if (r["pid"], r["owner"]) != me and self._alive(r)]

    @staticmethod
    def _alive(row: sqlite3.Row) -> bool:
        return _owner_alive(row)

    def record_epoch(self, run_id: str, metrics: dict) -> None:
        """Insert (or replace, after a resume) one epoch's metrics and the run's progress."""
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            _insert_epochs(con, run_id, [metrics])
            con.execute(
                "UPDATE runs SET epochs_done = MAX(epochs_done, ?), test_acc = ? WHERE id = ?",
                (metrics["epoch"], metrics.get("test_acc"), run_id),
            )

    def record_steps(self, run_id: str, rows: Iterable, *, restart: bool = False) -> None:
        """Insert (or replace, after a resume) logged steps: StepLog objects or dicts with
        step, loss and lr. ``restart``: these are the first rows of a new attempt at the run,
        so rows from its step on (an earlier attempt's, past its checkpoint) are dropped."""
        values = [
            (run_id, int(r["step"]), r["loss"], r["lr"])
            if isinstance(r, dict)
            else (run_id, int(r.step), r.loss, r.lr)
            for r in rows
        ]
        if not values:
            return
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(_STEPS_TABLE)  # a study created before steps were logged
            if restart:
                first = min(v[1] for v in values)
                con.execute("DELETE FROM steps WHERE run_id = ? AND step >= ?", (run_id, first))
            con.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?)", values)

    def finish(self, run_id: str, result: dict) -> None:
        """Store a TrainResult.to_dict(): status, final metrics, provenance, all epochs."""
        status = result["status"]
        if status not in FINISHED:
            raise ValueError(f"unexpected result status {status!r}")
        values = [result.get(k) for k in _RESULT_COLUMNS]
        provenance = result.get("provenance") or {}
        # what actually trained the run (a fused executor may fall back to one-by-one)
        executed = (provenance.get("execution") or {}).get("executor")
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            _insert_epochs(con, run_id, result.get("history") or [])
            sets = ", ".join(f"{k} = ?" for k in _RESULT_COLUMNS)
            con.execute(
                f"UPDATE runs SET status = ?, error = NULL, finished = ?, provenance = ?, {sets},"
                " executor = COALESCE(?, executor) WHERE id = ?",
                (status, now(), json.dumps(provenance), *values, executed, run_id),
            )

    def fail(self, run_id: str, message: str) -> None:
        with self._tx() as con:
            con.execute(
                "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE id = ?",
                (message, now(), run_id),
            )

    def release(self, run_id: str) -> None:
        """Give a claimed run back (an interrupted process): running -> pending."""
        with self._tx() as con:
            con.execute(
                "UPDATE runs SET status = 'pending', pid = NULL, owner = NULL WHERE id = ? "
                "AND status = 'running'",
                (run_id,),
            )

    # ---- analyses (odenet.analysis caches) ------------------------------------------------
    def record_analysis(self, run_id: str, kind: str, settings: dict, result: dict) -> None:
        """Store (or replace) ``result`` of analysis ``kind`` of a run under ``settings``.

        settings: every setting that determines the result (JSON-able); the row's key is a
        hash of it, so a result is only ever found again under exactly the same settings.
        """
        text = json.dumps(settings, sort_keys=True)
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(_ANALYSES)
            con.execute(
                "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, kind, _key(text), text, json.dumps(result), now()),
            )

    def analysis(self, run_id: str, kind: str, settings: dict) -> dict | None:
        """The stored result of ``kind`` for this run under exactly ``settings``, or None."""
        text = json.dumps(settings, sort_keys=True)
        rows = self._analysis_rows(
            "WHERE run_id = ? AND kind = ? AND key = ?", (run_id, kind, _key(text))
        )
        return next((r["result"] for r in rows if r["settings"] == json.loads(text)), None)

    def analyses(self, kind: str) -> list[dict]:
        """Every stored result of ``kind``: dicts with run_id, settings, result, created
        (oldest first); [] when nothing was analysed."""
        return self._analysis_rows("WHERE kind = ?", (kind,))

    def _analysis_rows(self, where: str, args: tuple) -> list[dict]:
        try:
            with self._tx() as con:
                rows = con.execute(
                    f"SELECT run_id, settings, result, created FROM analyses {where} "
                    "ORDER BY created, rowid",
                    args,
                ).fetchall()
        except sqlite3.OperationalError as err:  # no such table: nothing analysed yet
            if "no such table" not in str(err):
                raise
            return []
        return [
            {
                "run_id": r["run_id"],
                "settings": json.loads(r["settings"]),
                "result": json.loads(r["result"]),
                "created": r["created"],
            }
            for r in rows
        ]

    def reset(self, run_ids: list[str]) -> list[str]:
        """Make finished (or failed) runs pending again so that the study retrains them.

        For a run whose checkpoint was lost or damaged. Checked first: every id exists and no
        live process is training it (ConfigError otherwise, nothing changed). Then each run's
        directory (checkpoint.pt, result.json) is deleted, and in one transaction its status
        goes back to pending, its results are cleared and its rows in every per-run table
        (epochs, cached analyses, ...) are deleted. Files go first: a crash in between leaves
        a finished run without a checkpoint, which ``reset`` repairs when run again.
        """
        host = socket.gethostname()
        records = [self.run(i) for i in dict.fromkeys(run_ids)]
        with self._tx() as con:
            owners = {
                r["id"]: r for r in con.execute("SELECT * FROM runs WHERE status = 'running'")
            }
        for r in records:
            owner = owners.get(r.id)
            if owner is not None and (owner["host"] != host or _owner_alive(owner)):
                raise ConfigError(
                    f"run {r.id!r} is being trained by process {owner['pid']} on "
                    f"{owner['host']}; wait for it to finish (or stop it) before resetting it"
                )
        for r in records:
            shutil.rmtree(self.run_dir(r.id), ignore_errors=True)
        cleared = ", ".join(f"{k} = NULL" for k in (*_RESULT_COLUMNS[1:], "error", "finished"))
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            tables = [
                row[0]
                for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                if row[0] != "runs"
                and any(c[1] == "run_id" for c in con.execute(f"PRAGMA table_info({row[0]})"))
            ]
            for r in records:
                for table in tables:
                    con.execute(f"DELETE FROM {table} WHERE run_id = ?", (r.id,))
                con.execute(
                    f"UPDATE runs SET status = 'pending', pid = NULL, epochs_done = 0, {cleared},"
                    " provenance = NULL, started = NULL WHERE id = ?",
                    (r.id,),
                )
        return [r.id for r in records]

    # ---- connections --------------------------------------------------------------------
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

    def _record(self, r: sqlite3.Row) -> RunRecord:
        return record_from_row(r, self.run_dir(r["id"]))


def _owner_alive(row: sqlite3.Row) -> bool:
    """Whether the process that claimed this 'running' row still runs (a store from before
    owner identity has no owner column: the pid alone decides)."""
    return owner_alive(row["pid"], row["owner"] if "owner" in row.keys() else None)


def _add_missing_columns(con: sqlite3.Connection) -> None:
    """Columns added since a store was created (an old study.sqlite still opens)."""
    for table, column, kind in _ADDED_COLUMNS:
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


_STEPS_TABLE = next(s for s in _SCHEMA.split(";") if "TABLE IF NOT EXISTS steps" in s)


def _has_table(con: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return con.execute(sql, (name,)).fetchone() is not None


def _meta(con: sqlite3.Connection, key: str) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise ConfigError(f"the study database has no {key!r}: it is not an odenet study")
    return row[0]


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]


def _first_of_key(rows: sqlite3.Cursor, n: int, key: Callable) -> list[str]:
    """Ids of the first row and of the later rows whose config's key equals its key (<= n).

    A first key of None means "alone": only the first row, without reading the others.
    """
    ids: list[str] = []
    for row in rows:
        if len(ids) >= n:
            break
        k = key(config_from_dict(json.loads(row["config"])))
        if not ids:
            first = k
        elif k != first:
            continue
        ids.append(row["id"])
        if first is None:
            break
    rows.close()
    return ids


def _insert_epochs(con: sqlite3.Connection, run_id: str, history: list[dict]) -> None:
    cols = ", ".join(_EPOCH_COLUMNS)
    con.executemany(
        f"INSERT OR REPLACE INTO epochs (run_id, epoch, {cols}) VALUES (?, ?{', ?' * 7})",
        [(run_id, m["epoch"], *(m.get(k) for k in _EPOCH_COLUMNS)) for m in history],
    )


def _refuse_changed(study_dir: Path, stored: StudySpec, spec: StudySpec) -> None:
    diff = stored.differences(spec)
    if diff:
        raise ConfigError(
            f"{str(study_dir)!r} holds a study with a different config ({'; '.join(diff)}); "
            "re-run with the original options to resume, or choose a new --out"
        )
