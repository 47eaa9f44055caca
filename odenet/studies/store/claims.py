"""Who trains which run: the SQL of claims, releases and the reclaiming of dead owners' runs.

Runs are claimed atomically (``UPDATE ... WHERE status = 'pending'``) with the claimer's pid,
host and identity (boot id and process start time, ``owners.process_identity``), so any
number of processes can share one directory; a run left 'running' by a dead process on this
host goes back to pending and resumes from its checkpoint, also when the dead owner's pid now
belongs to another process (a container restarted as PID 1, a reboot).

Each function runs its statements on a connection the caller holds inside one write
transaction (``Database.write``), or a read (``running_elsewhere``).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable, Hashable

from odenet.studies.store.owners import claimer_alive, process_identity
from odenet.studies.store.rows import now
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import TrainConfig

_TO_PENDING = "UPDATE runs SET status = 'pending', pid = NULL, owner = NULL WHERE id = ?"


def claim(
    con: sqlite3.Connection,
    n: int,
    executor: str,
    key: Callable[[TrainConfig], Hashable | None] | None,
) -> list[str]:
    """Mark up to ``n`` pending runs (grid order) running for this process; their ids."""
    host, pid = socket.gethostname(), os.getpid()
    owner = process_identity(pid)
    sql = "SELECT id, config FROM runs WHERE status = 'pending' ORDER BY idx"
    if key is None:
        ids = [r["id"] for r in con.execute(sql + " LIMIT ?", (max(n, 0),))]
    else:
        ids = _first_of_key(con.execute(sql), n, key)
    claimed = []
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


def reclaim_dead(con: sqlite3.Connection) -> list[str]:
    """Runs left 'running' by a dead process on this host -> pending; their ids."""
    rows = con.execute(
        "SELECT id, pid, owner FROM runs WHERE status = 'running' AND host = ?",
        (socket.gethostname(),),
    ).fetchall()
    dead = [r["id"] for r in rows if not claimer_alive(r)]
    con.executemany(_TO_PENDING, [(i,) for i in dead])
    return dead


def release_mine(con: sqlite3.Connection) -> list[str]:
    """Runs still claimed by this very process -> pending; their ids."""
    host, pid, owner = socket.gethostname(), os.getpid(), process_identity(os.getpid())
    ids = [r["id"] for r in con.execute(
        "SELECT id FROM runs WHERE status = 'running' AND host = ? AND pid = ?"
        " AND owner IS ?", (host, pid, owner),
    )]  # fmt: skip
    con.executemany(_TO_PENDING, [(i,) for i in ids])
    return ids


def release(con: sqlite3.Connection, run_id: str) -> None:
    """A claimed run -> pending (a run that is not running is left as it is)."""
    con.execute(_TO_PENDING + " AND status = 'running'", (run_id,))


def running_elsewhere(con: sqlite3.Connection) -> list[str]:
    """Runs 'running' under another live process on this host (this one excluded)."""
    host, me = socket.gethostname(), (os.getpid(), process_identity(os.getpid()))
    rows = con.execute(
        "SELECT id, pid, owner FROM runs WHERE status = 'running' AND host = ?", (host,)
    ).fetchall()
    return [r["id"] for r in rows if (r["pid"], r["owner"]) != me and claimer_alive(r)]


def live_owners(con: sqlite3.Connection) -> dict[str, sqlite3.Row]:
    """run id -> its row, for every run 'running' under a process that may still live: on
    another host (which this one cannot see), or a live one on this host."""
    host = socket.gethostname()
    rows = con.execute("SELECT * FROM runs WHERE status = 'running'").fetchall()
    return {r["id"]: r for r in rows if r["host"] != host or claimer_alive(r)}


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
