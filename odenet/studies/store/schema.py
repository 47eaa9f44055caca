"""The study store's schema: table DDL, column lists, and the guarded migrations that let a
study.sqlite from an older odenet open (added columns, tables created on first use).

Tables: meta (spec, versions), runs (spec, status, final metrics, provenance, owner and
lease), epochs (per-epoch metrics), steps (training loss and lr every log_every optimizer
steps) and analyses (cached measurements of trained models, created on first use).
"""

from __future__ import annotations

import sqlite3

from odenet.errors import ConfigError

STATUSES = ("pending", "running", "done", "diverged", "failed")
FINISHED = ("done", "diverged")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, depth INTEGER NOT NULL, solver TEXT NOT NULL,
    lr REAL NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', executor TEXT, pid INTEGER, host TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, started TEXT, finished TEXT,
    epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, best_test_acc REAL,
    train_loss REAL, diverged_epoch INTEGER, diverged_step INTEGER, params INTEGER,
    extra_params INTEGER, seconds REAL, device TEXT, provenance TEXT, owner TEXT, pidns TEXT,
    lease TEXT, heartbeat REAL, grace REAL);
CREATE TABLE IF NOT EXISTS epochs (
    run_id TEXT NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, train_loss REAL,
    train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, seconds REAL, images_per_s REAL,
    PRIMARY KEY (run_id, epoch));
CREATE TABLE IF NOT EXISTS steps (
    run_id TEXT NOT NULL REFERENCES runs(id), step INTEGER NOT NULL, loss REAL, lr REAL,
    PRIMARY KEY (run_id, step));
"""
ANALYSES_TABLE = """
CREATE TABLE IF NOT EXISTS analyses (
    run_id TEXT NOT NULL, kind TEXT NOT NULL, key TEXT NOT NULL, settings TEXT NOT NULL,
    result TEXT NOT NULL, created TEXT NOT NULL, PRIMARY KEY (run_id, kind, key))
"""
# A study created before steps were logged gets this table on its first logged step.
STEPS_TABLE = next(s for s in SCHEMA.split(";") if "TABLE IF NOT EXISTS steps" in s)

EPOCH_COLUMNS = (
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "lr",
    "seconds",
    "images_per_s",
)
RESULT_COLUMNS = (
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
# owner: process_identity of the claimer; pidns, lease, heartbeat, grace: its lease
# (odenet.studies.store.leases). A claim from before leases has none of these.
ADDED_COLUMNS = (
    ("runs", "owner", "TEXT"),
    ("runs", "pidns", "TEXT"),
    ("runs", "lease", "TEXT"),
    ("runs", "heartbeat", "REAL"),
    ("runs", "grace", "REAL"),
)
# SET clause of a run that nobody holds (pending again)
NO_LEASE = "pid = NULL, owner = NULL, pidns = NULL, lease = NULL, heartbeat = NULL, grace = NULL"


def create_tables(con: sqlite3.Connection) -> None:
    """Every table of SCHEMA that is missing, then every column added since (inside the
    caller's transaction)."""
    for statement in filter(str.strip, SCHEMA.split(";")):
        con.execute(statement)
    add_missing_columns(con)


def add_missing_columns(con: sqlite3.Connection) -> None:
    """Columns added since a store was created (an old study.sqlite still opens)."""
    for table, column, kind in ADDED_COLUMNS:
        have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
        if column not in have:
            con.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")


def has_table(con: sqlite3.Connection, name: str) -> bool:
    sql = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?"
    return con.execute(sql, (name,)).fetchone() is not None


def read_meta(con: sqlite3.Connection, key: str) -> str:
    row = con.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
    if row is None:
        raise ConfigError(f"the study database has no {key!r}: it is not an odenet study")
    return row[0]


def insert_epochs(con: sqlite3.Connection, run_id: str, history: list[dict]) -> None:
    cols = ", ".join(EPOCH_COLUMNS)
    con.executemany(
        f"INSERT OR REPLACE INTO epochs (run_id, epoch, {cols}) VALUES (?, ?{', ?' * 7})",
        [(run_id, m["epoch"], *(m.get(k) for k in EPOCH_COLUMNS)) for m in history],
    )
