"""The study store: one SQLite database (WAL) per study directory, checkpoints beside it.

Layout::

    <study>/study.sqlite        meta (spec, versions), runs (spec, status, final metrics,
                                provenance), epochs (per-epoch metrics), steps (training
                                loss and lr every log_every optimizer steps)
    <study>/runs/<run_id>/      checkpoint.pt, result.json (written by odenet.training.train)

The ``analyses`` table caches measurements of trained models (odenet.analysis: sharpness,
``analyze``): one row per (run, kind, settings), keyed by a hash of every setting.

Statuses: pending -> running -> done | diverged | failed. Runs are claimed atomically by
any number of processes sharing one directory; a run left 'running' by a dead process on
this host goes back to pending and resumes from its checkpoint. Every write is one short
transaction.

``Store`` is assembled from one module per concern: store_schema (tables, migrations of old
stores), store_connection (connections, read-only opening), store_claims (claims and dead
owners), store_metrics (epochs and steps), store_analyses (the analyses cache); this module
holds creation, run records, results and ``reset``.

A database that cannot be used (not a database, truncated, a directory in its place, a full
disk, read-only when writing) raises StoreError, one line naming the file and the fix; the
file is never rewritten while refusing. A study directory that cannot be written is opened
read-only, so it can still be reported.
"""

from __future__ import annotations

import json
import shutil
import socket
import sqlite3
from pathlib import Path

from odenet.errors import ConfigError, StoreError
from odenet.studies.db_file import check_intact
from odenet.studies.records import RunRecord, now
from odenet.studies.spec import StudySpec
from odenet.studies.store_analyses import StoreAnalyses
from odenet.studies.store_claims import StoreClaims, claimer_alive
from odenet.studies.store_metrics import StoreMetrics
from odenet.studies.store_schema import (
    DB_NAME,
    FINISHED,
    RESULT_COLUMNS,
    STATUSES,
    create_tables,
    insert_epochs,
    read_meta,
)

__all__ = ["DB_NAME", "FINISHED", "STATUSES", "RunRecord", "Store"]


class Store(StoreClaims, StoreMetrics, StoreAnalyses):
    """Handle on one study directory. Cheap; opens a short-lived connection per operation."""

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
                return read_meta(con, "spec") is not None
            except ConfigError:  # a database without the spec: not (yet) an odenet study
                return False
            except sqlite3.OperationalError as err:
                if "no such table" in str(err):
                    return False
                raise

    @classmethod
    def create(cls, study_dir: str | Path, spec: StudySpec, versions: dict) -> Store:
        """Create (or join) the study at ``study_dir`` holding the runs of ``spec``.

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
            create_tables(con)
            meta = {"spec": json.dumps(spec.to_dict()), "created": now(), **versions}
            con.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()]
            )
            stored = read_meta(con, "spec")
            if stored != meta["spec"]:  # another creator's (or an older version's) spec
                _refuse_changed(store.dir, StudySpec.from_dict(json.loads(stored)), spec)
            con.executemany(
                "INSERT OR IGNORE INTO runs (id, idx, depth, solver, lr, seed, config)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (r.id, r.index, r.depth, r.solver, r.lr, r.seed, json.dumps(r.config_dict()))
                    for r in spec.runs
                ],
            )
        return store

    def spec(self) -> StudySpec:
        with self._tx() as con:
            return StudySpec.from_dict(json.loads(read_meta(con, "spec")))

    def meta(self) -> dict[str, str]:
        with self._tx() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    def check_spec(self, spec: StudySpec) -> None:
        """ConfigError saying what differs when ``spec`` is not this study's spec."""
        _refuse_changed(self.dir, self.spec(), spec)

    # ---- reading ------------------------------------------------------------------------
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

    def counts(self) -> dict[str, int]:
        """status -> number of runs (every status present, zeros included)."""
        with self._tx() as con:
            rows = con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
        return {s: 0 for s in STATUSES} | {s: n for s, n in rows}

    # ---- state changes ------------------------------------------------------------------
    def retry_failed(self) -> int:
        """Failed runs -> pending (their error is kept until they run again)."""
        with self._tx() as con:
            return con.execute(
                "UPDATE runs SET status = 'pending' WHERE status = 'failed'"
            ).rowcount

    def finish(self, run_id: str, result: dict) -> None:
        """Store a TrainResult.to_dict(): status, final metrics, provenance, all epochs."""
        status = result["status"]
        if status not in FINISHED:
            raise ValueError(f"unexpected result status {status!r}")
        values = [result.get(k) for k in RESULT_COLUMNS]
        provenance = result.get("provenance") or {}
        # what actually trained the run (a fused executor may fall back to one-by-one)
        executed = (provenance.get("execution") or {}).get("executor")
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
            insert_epochs(con, run_id, result.get("history") or [])
            sets = ", ".join(f"{k} = ?" for k in RESULT_COLUMNS)
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
            if owner is not None and (owner["host"] != host or claimer_alive(owner)):
                raise ConfigError(
                    f"run {r.id!r} is being trained by process {owner['pid']} on "
                    f"{owner['host']}; wait for it to finish (or stop it) before resetting it"
                )
        for r in records:
            shutil.rmtree(self.run_dir(r.id), ignore_errors=True)
        cleared = ", ".join(f"{k} = NULL" for k in (*RESULT_COLUMNS[1:], "error", "finished"))
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


def _refuse_changed(study_dir: Path, stored: StudySpec, spec: StudySpec) -> None:
    diff = stored.differences(spec)
    if diff:
        raise ConfigError(
            f"{str(study_dir)!r} holds a study with a different config ({'; '.join(diff)}); "
            "re-run with the original options to resume, or choose a new --out"
        )
