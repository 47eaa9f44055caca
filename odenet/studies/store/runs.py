"""The SQL of the ``runs`` table: a study's runs, their status and final results.

Statuses: pending -> running -> done | diverged | failed (claims: ``claims``). Each function
runs on a connection the caller holds (``Database.read`` or, to change rows, inside one
``Database.write`` transaction).
"""

from __future__ import annotations

import json
import sqlite3

from odenet.studies.store.rows import now
from odenet.studies.store.schema import (
    FINISHED,
    NO_LEASE,
    RESULT_COLUMNS,
    STATUSES,
    insert_epochs,
)


def insert_runs(con: sqlite3.Connection, runs: list) -> None:
    """RunSpecs as pending runs; a run already there is left as it is."""
    con.executemany(
        "INSERT OR IGNORE INTO runs (id, idx, depth, solver, lr, seed, config)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        [
            (r.id, r.index, r.depth, r.solver, r.lr, r.seed, json.dumps(r.config_dict()))
            for r in runs
        ],
    )


def select_runs(con: sqlite3.Connection) -> list[sqlite3.Row]:
    """Every run's row in grid order."""
    return con.execute("SELECT * FROM runs ORDER BY idx").fetchall()


def select_run(con: sqlite3.Connection, run_id: str) -> sqlite3.Row | None:
    return con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


def count_statuses(con: sqlite3.Connection) -> dict[str, int]:
    """status -> number of runs (every status present, zeros included)."""
    rows = con.execute("SELECT status, COUNT(*) FROM runs GROUP BY status").fetchall()
    return {s: 0 for s in STATUSES} | {s: n for s, n in rows}


def retry_failed(con: sqlite3.Connection) -> int:
    """Failed runs -> pending (their error is kept until they run again); how many."""
    return con.execute("UPDATE runs SET status = 'pending' WHERE status = 'failed'").rowcount


def finish(con: sqlite3.Connection, run_id: str, result: dict) -> None:
    """A TrainResult.to_dict(): status, final metrics, provenance, every epoch."""
    status = result["status"]
    if status not in FINISHED:
        raise ValueError(f"unexpected result status {status!r}")
    values = [result.get(k) for k in RESULT_COLUMNS]
    provenance = result.get("provenance") or {}
    # what actually trained the run (a fused executor may fall back to one-by-one)
    executed = (provenance.get("execution") or {}).get("executor")
    con.execute("DELETE FROM epochs WHERE run_id = ?", (run_id,))
    insert_epochs(con, run_id, result.get("history") or [])
    sets = ", ".join(f"{k} = ?" for k in RESULT_COLUMNS)
    con.execute(
        f"UPDATE runs SET status = ?, error = NULL, finished = ?, provenance = ?, {sets},"
        " executor = COALESCE(?, executor) WHERE id = ?",
        (status, now(), json.dumps(provenance), *values, executed, run_id),
    )


def fail(con: sqlite3.Connection, run_id: str, message: str) -> None:
    con.execute(
        "UPDATE runs SET status = 'failed', error = ?, finished = ? WHERE id = ?",
        (message, now(), run_id),
    )


def reset_runs(con: sqlite3.Connection, run_ids: list[str]) -> None:
    """Runs -> pending with their results cleared and their rows in every per-run table
    (epochs, steps, cached analyses, ...: any table with a run_id column) deleted."""
    tables = [
        row[0]
        for row in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        if row[0] != "runs"
        and any(c[1] == "run_id" for c in con.execute(f"PRAGMA table_info({row[0]})"))
    ]
    cleared = ", ".join(f"{k} = NULL" for k in (*RESULT_COLUMNS[1:], "error", "finished"))
    for run_id in run_ids:
        for table in tables:
            con.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
        con.execute(
            f"UPDATE runs SET status = 'pending', {NO_LEASE}, epochs_done = 0, {cleared},"
            " provenance = NULL, started = NULL WHERE id = ?",
            (run_id,),
        )
