"""Training curves in the study store: the SQL of per-epoch metrics (epochs) and of logged
steps (steps).

A study made before steps were logged has no steps table: it reads as no steps, and the
table is created on the first logged step.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable

from odenet.studies.store.schema import STEPS_TABLE, has_table, insert_epochs


def select_epochs(con: sqlite3.Connection, run_id: str | None) -> list[dict]:
    """Per-epoch metrics by run id, then epoch (of one run, or every run for None)."""
    sql = "SELECT * FROM epochs" + (" WHERE run_id = ?" if run_id else "")
    rows = con.execute(sql + " ORDER BY run_id, epoch", (run_id,) if run_id else ())
    return [dict(r) for r in rows.fetchall()]


def select_steps(con: sqlite3.Connection, run_id: str | None) -> list[dict]:
    """Logged steps {run_id, step, loss, lr} by run id, then step; [] without a steps table."""
    if not has_table(con, "steps"):
        return []
    sql = "SELECT run_id, step, loss, lr FROM steps" + (" WHERE run_id = ?" if run_id else "")
    rows = con.execute(sql + " ORDER BY run_id, step", (run_id,) if run_id else ())
    return [dict(r) for r in rows.fetchall()]


def insert_epoch(con: sqlite3.Connection, run_id: str, metrics: dict) -> None:
    """One epoch's metrics (replacing an earlier attempt's) and the run's progress."""
    insert_epochs(con, run_id, [metrics])
    con.execute(
        "UPDATE runs SET epochs_done = MAX(epochs_done, ?), test_acc = ? WHERE id = ?",
        (metrics["epoch"], metrics.get("test_acc"), run_id),
    )


def insert_steps(con: sqlite3.Connection, run_id: str, rows: Iterable, restart: bool) -> None:
    """Logged steps (StepLog objects or dicts with step, loss and lr); ``restart``: rows from
    the first of them on (an earlier attempt's, past its checkpoint) are dropped first."""
    values = [
        (run_id, int(r["step"]), r["loss"], r["lr"])
        if isinstance(r, dict)
        else (run_id, int(r.step), r.loss, r.lr)
        for r in rows
    ]
    if not values:
        return
    con.execute(STEPS_TABLE)  # a study created before steps were logged
    if restart:
        first = min(v[1] for v in values)
        con.execute("DELETE FROM steps WHERE run_id = ? AND step >= ?", (run_id, first))
    con.executemany("INSERT OR REPLACE INTO steps VALUES (?, ?, ?, ?)", values)
