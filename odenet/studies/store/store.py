"""``Store``: the handle on one study directory, its layout and its database.

One class: it opens the transactions and keeps the public methods; the SQL lives in one
module per concern (``runs``: runs and results, ``claims``: who trains what, ``metrics``:
epochs and steps, ``analyses``: the analyses cache, ``schema``: tables and migrations), the
connections in ``database``, the paths in ``layout``.

Runs are claimed atomically by any number of processes sharing one directory, in any number
of containers, each claim under a lease (``leases``); a run left 'running' by a process that
is gone (provably dead here, or silent for longer than its grace period) goes back to pending
and resumes from its checkpoint. Every write is one short transaction.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Callable, Hashable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from odenet.errors import ConfigError, StoreError
from odenet.studies.records import RunRecord
from odenet.studies.spec import StudySpec
from odenet.studies.store import analyses as analyses_sql
from odenet.studies.store import claims as claims_sql
from odenet.studies.store import metrics as metrics_sql
from odenet.studies.store import runs as runs_sql
from odenet.studies.store.database import Database, check_intact
from odenet.studies.store.layout import DB_NAME, StudyLayout
from odenet.studies.store.leases import Holder, Lease
from odenet.studies.store.rows import now, record_from_row
from odenet.studies.store.schema import add_missing_columns, create_tables, read_meta
from odenet.tables import FlatTable
from odenet.training.config import TrainConfig


class Store:
    """Handle on one study directory. Cheap; opens a short-lived connection per operation."""

    def __init__(self, study_dir: str | Path) -> None:
        self.layout = StudyLayout(Path(study_dir))
        self.db = Database(self.layout.database)

    @property
    def dir(self) -> Path:
        return self.layout.root

    @property
    def path(self) -> Path:
        """The database file (study.sqlite)."""
        return self.layout.database

    @property
    def read_only(self) -> bool:
        """Whether this process only reads the study (it cannot write the directory)."""
        return self.db.read_only

    def run_dir(self, run_id: str) -> Path:
        return self.layout.run_dir(run_id)

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection committed on success, for extra tables (``Database.connect``)."""
        with self.db.connect() as con:
            yield con

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
        with store.db.read() as con:
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
            store.layout.runs.mkdir(parents=True, exist_ok=True)
        except OSError as err:  # e.g. a read-only or virtual file system that os.access allows
            raise ConfigError(
                f"cannot create the study directory {str(store.dir)!r} ({err.strerror}); "
                "choose another --out"
            ) from None
        with store.db.write() as con:  # one transaction: readers see no study or a whole one
            create_tables(con)
            meta = {"spec": json.dumps(spec.to_dict()), "created": now(), **versions}
            con.executemany(
                "INSERT OR IGNORE INTO meta VALUES (?, ?)", [(k, str(v)) for k, v in meta.items()]
            )
            stored = read_meta(con, "spec")
            if stored != meta["spec"]:  # another creator's (or an older version's) spec
                _refuse_changed(store.dir, StudySpec.from_dict(json.loads(stored)), spec)
            runs_sql.insert_runs(con, spec.runs)
        return store

    def spec(self) -> StudySpec:
        with self.db.read() as con:
            return StudySpec.from_dict(json.loads(read_meta(con, "spec")))

    def meta(self) -> dict[str, str]:
        with self.db.read() as con:
            return dict(con.execute("SELECT key, value FROM meta").fetchall())

    def check_spec(self, spec: StudySpec) -> None:
        """ConfigError saying what differs when ``spec`` is not this study's spec."""
        _refuse_changed(self.dir, self.spec(), spec)

    # ---- runs ---------------------------------------------------------------------------
    def runs(self) -> list[RunRecord]:
        """Every run in grid order, each knowing its axes (``RunRecord.axes``)."""
        with self.db.read() as con:
            rows = runs_sql.select_runs(con)
            swept = _swept(con)
        return [self._record(r, swept) for r in rows]

    def run(self, run_id: str) -> RunRecord:
        with self.db.read() as con:
            row = runs_sql.select_run(con, run_id)
            swept = _swept(con)
        if row is None:
            raise ConfigError(f"no run {run_id!r} in study {str(self.dir)!r}")
        return self._record(row, swept)

    def counts(self) -> dict[str, int]:
        """status -> number of runs (every status present, zeros included)."""
        with self.db.read() as con:
            return runs_sql.count_statuses(con)

    def retry_failed(self) -> int:
        """Failed runs -> pending (their error is kept until they run again)."""
        with self.db.write() as con:
            return runs_sql.retry_failed(con)

    def finish(self, run_id: str, result: dict, lease: str | None = None) -> None:
        """Store a TrainResult.to_dict(): status, final metrics, provenance, all epochs.

        lease: the token of the claim the run is trained under (the runner's writes): the
        write happens only while the run is still under it, and renews it; LeaseLost otherwise
        (nothing written). The same for ``fail``, ``record_epoch`` and ``record_steps``.
        """
        with self._writing(run_id, lease) as con:
            runs_sql.finish(con, run_id, result)

    def fail(self, run_id: str, message: str, lease: str | None = None) -> None:
        with self._writing(run_id, lease) as con:
            runs_sql.fail(con, run_id, message)

    def reset(self, run_ids: list[str]) -> list[str]:
        """Make runs pending again so that the study retrains them from the start.

        For a run whose checkpoint was lost or damaged. Every id must exist (ConfigError
        otherwise). Then, in one write transaction (no claim, renewal or finish in between):
        refused with ConfigError, nothing changed, when a live process holds one of the runs
        (``leases``: on any host or container); otherwise each run's directory
        (checkpoint.pt, result.json) is deleted, its status goes back to pending, its lease,
        results and rows in every per-run table (epochs, cached analyses, ...) are cleared. A
        holder whose lease had expired finds the run gone at its next write and stops.
        """
        records = [self.run(i) for i in dict.fromkeys(run_ids)]
        with self.db.write() as con:
            add_missing_columns(con)  # an old store: reset clears its lease columns too
            claims_sql.refuse_held(con, [r.id for r in records])
            for r in records:
                shutil.rmtree(self.run_dir(r.id), ignore_errors=True)
            runs_sql.reset_runs(con, [r.id for r in records])
        return [r.id for r in records]

    # ---- claims and leases (odenet.studies.store.leases) --------------------------------
    def claim(
        self,
        n: int,
        executor: str,
        key: Callable[[TrainConfig], Hashable | None] | None = None,
        lease: Lease | None = None,
    ) -> list[str]:
        """Atomically mark up to ``n`` pending runs (grid order) running for this process,
        under ``lease`` (default: a new one with the default grace period).

        Without ``key`` the first ``n`` pending runs; with it (e.g. a fusion group's), the first
        pending run and the following pending runs whose key equals its key, or that run alone
        when its key is None.
        """
        with self.db.write() as con:
            return claims_sql.claim(con, n, executor, key, lease or Lease.new())

    def renew(self, leases: dict[str, str]) -> dict[str, str]:
        """Renew the heartbeat of each (run id -> lease token); returns the ones no longer
        held (taken over, reset, or ended)."""
        with self.db.write() as con:
            return claims_sql.renew(con, leases)

    def hold(self, run_id: str, lease: str) -> None:
        """Renew one run's lease now; LeaseLost (saying who has the run) when not held."""
        with self._writing(run_id, lease):
            pass

    def reclaim_dead(self) -> list[str]:
        """Runs left 'running' by a holder that is gone -> pending. Returns their ids.

        Gone: its lease expired (no heartbeat within its grace period), or it is provably dead
        here (same host, boot and PID namespace; the pid is gone or now another process's).
        """
        with self.db.write() as con:
            return claims_sql.reclaim_dead(con)

    def release_mine(self) -> list[str]:
        """Runs still claimed by this very process -> pending (an earlier study in the same
        process that stopped on an error, e.g. a notebook's). Call only while this process
        runs nothing of the study. Returns their ids."""
        with self.db.write() as con:
            return claims_sql.release_mine(con)

    def release(self, run_id: str, lease: str | None = None) -> None:
        """Give a claimed run back (an interrupted process): running -> pending. With
        ``lease``, only while the run is under it."""
        with self.db.write() as con:
            claims_sql.release(con, run_id, lease)

    def running_elsewhere(self) -> dict[str, Holder]:
        """run id -> holder, for the runs 'running' under another live process (on any host
        or in any container; this process excluded)."""
        with self.db.read() as con:
            return claims_sql.running_elsewhere(con)

    def holders(self) -> dict[str, Holder]:
        """run id -> holder, for every 'running' run (alive or not: ``Holder.alive``)."""
        with self.db.read() as con:
            return claims_sql.holders(con)

    # ---- training curves ----------------------------------------------------------------
    def epochs(self, run_id: str | None = None) -> list[dict]:
        """Per-epoch metrics (dicts with run_id, epoch and the EpochMetrics fields)."""
        with self.db.read() as con:
            return metrics_sql.select_epochs(con, run_id)

    def steps(self, run_id: str | None = None) -> list[dict]:
        """Logged training steps: dicts {run_id, step, loss, lr} by run id, then step. A study
        made before steps were logged has none."""
        with self.db.read() as con:
            return metrics_sql.select_steps(con, run_id)

    def record_epoch(self, run_id: str, metrics: dict, lease: str | None = None) -> None:
        """Insert (or replace, after a resume) one epoch's metrics and the run's progress."""
        with self._writing(run_id, lease) as con:
            metrics_sql.insert_epoch(con, run_id, metrics)

    def record_steps(
        self, run_id: str, rows: Iterable, *, restart: bool = False, lease: str | None = None
    ) -> None:
        """Insert (or replace, after a resume) logged steps: StepLog objects or dicts with
        step, loss and lr. ``restart``: these are the first rows of a new attempt at the run,
        so rows from its step on (an earlier attempt's, past its checkpoint) are dropped."""
        rows = list(rows)
        if rows:
            with self._writing(run_id, lease) as con:
                metrics_sql.insert_steps(con, run_id, rows, restart)

    # ---- the analyses cache -------------------------------------------------------------
    def record_analysis(
        self, run_id: str, kind: str, settings: dict, result: dict, table: FlatTable | None = None
    ) -> None:
        """Store (or replace) ``result`` of analysis ``kind`` of a run under ``settings``.

        settings: every setting that determines the result (JSON-able); the row's key is a
        hash of it, so a result is only ever found again under exactly the same settings.
        table: the result's flat form, if the analysis gives one: what the studies show of it
        (the report's run columns) without reading the result.
        """
        with self.db.write() as con:
            analyses_sql.insert_analysis(con, run_id, kind, settings, result, table)

    def analysis(self, run_id: str, kind: str, settings: dict) -> dict | None:
        """The stored result of ``kind`` for this run under exactly ``settings``, or None."""
        with self.db.read() as con:
            return analyses_sql.select_analysis(con, run_id, kind, settings)

    def analyses(self, kind: str | None = None) -> list[dict]:
        """Every stored result of ``kind`` (None: of every kind): dicts with run_id, kind,
        settings, result, table (its FlatTable, or None) and created (oldest first); [] when
        nothing was analysed."""
        with self.db.read() as con:
            return analyses_sql.select_analyses(con, kind)

    @contextmanager
    def _writing(self, run_id: str, lease: str | None) -> Iterator[sqlite3.Connection]:
        """A write transaction for a run's rows: with ``lease``, held (renewed) first."""
        with self.db.write() as con:
            if lease is not None:
                claims_sql.hold(con, run_id, lease)
            yield con

    def _record(self, row: sqlite3.Row, swept: tuple[str, ...]) -> RunRecord:
        return record_from_row(row, self.run_dir(row["id"]), swept)


def _swept(con: sqlite3.Connection) -> tuple[str, ...]:
    """The study's swept settings, read from its stored spec without building its grid."""
    return StudySpec.swept_in(json.loads(read_meta(con, "spec")))


def _refuse_changed(study_dir: Path, stored: StudySpec, spec: StudySpec) -> None:
    diff = stored.differences(spec)
    if diff:
        raise ConfigError(
            f"{str(study_dir)!r} holds a study with a different config ({'; '.join(diff)}); "
            "re-run with the original options to resume, or choose a new --out"
        )
