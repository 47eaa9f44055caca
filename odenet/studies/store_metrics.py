"""Training curves in the study store: per-epoch metrics (epochs) and logged steps (steps).

A study made before steps were logged has no steps table: it reads as no steps, and the
table is created on the first logged step.
"""

from __future__ import annotations

from collections.abc import Iterable

from odenet.studies.store_connection import StoreConnection
from odenet.studies.store_schema import STEPS_TABLE, has_table, insert_epochs


class StoreMetrics(StoreConnection):
    """The epochs / steps methods of ``Store``."""

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
            if not has_table(con, "steps"):
                return []
            rows = con.execute(sql + " ORDER BY run_id, step", (run_id,) if run_id else ())
            return [dict(r) for r in rows.fetchall()]

    def record_epoch(self, run_id: str, metrics: dict) -> None:
        """Insert (or replace, after a resume) one epoch's metrics and the run's progress."""
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            insert_epochs(con, run_id, [metrics])
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
            con.execute(STEPS_TABLE)  # a study created before steps were logged
            if restart:
                first = min(v[1] for v in values)
                con.execute("DELETE FROM steps WHERE run_id = ? AND step >= ?", (run_id, first))
            con.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?)", values)
