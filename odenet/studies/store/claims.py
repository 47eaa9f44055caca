"""Who trains which run: the SQL of claims, leases, releases and the reclaiming of runs whose
holder is gone.

Runs are claimed atomically (``UPDATE ... WHERE status = 'pending'``) under a lease
(``leases``): the claimer's identity (``owners.Owner``), the claim's token, a heartbeat and the
grace period. So any number of processes, in any number of containers, can share one
directory: a run left 'running' by a dead process goes back to pending (at once when its pid
can be checked here, after its grace period otherwise) and resumes from its checkpoint. A
write of a run's rows under a lease (``hold``) renews it, or raises LeaseLost when the lease
is no longer there (reclaimed, reset, taken by another process).

Each function runs its statements on a connection the caller holds inside one write
transaction (``Database.write``), or a read (``running_elsewhere``, ``holders``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Hashable

from odenet.errors import ConfigError, LeaseLost
from odenet.studies.store.leases import Holder, Lease, wall_clock
from odenet.studies.store.owners import Owner
from odenet.studies.store.rows import now
from odenet.studies.store.schema import NO_LEASE
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import TrainConfig

_TO_PENDING = f"UPDATE runs SET status = 'pending', {NO_LEASE} WHERE id = ?"


def claim(
    con: sqlite3.Connection,
    n: int,
    executor: str,
    key: Callable[[TrainConfig], Hashable | None] | None,
    lease: Lease,
) -> list[str]:
    """Mark up to ``n`` pending runs (grid order) running for this process under ``lease``;
    their ids."""
    me = Owner.me()
    sql = "SELECT id, config FROM runs WHERE status = 'pending' ORDER BY idx"
    if key is None:
        ids = [r["id"] for r in con.execute(sql + " LIMIT ?", (max(n, 0),))]
    else:
        ids = _first_of_key(con.execute(sql), n, key)
    claimed = []
    for run_id in ids:
        cur = con.execute(
            "UPDATE runs SET status = 'running', pid = ?, host = ?, owner = ?, pidns = ?,"
            " lease = ?, heartbeat = ?, grace = ?, executor = ?, attempts = attempts + 1,"
            " started = COALESCE(started, ?) WHERE id = ? AND status = 'pending'",
            (me.pid, me.host, me.identity, me.pidns, lease.token, wall_clock(), lease.grace,
             executor, now(), run_id),
        )  # fmt: skip
        if cur.rowcount:
            claimed.append(run_id)
    return claimed


def holders(con: sqlite3.Connection) -> dict[str, Holder]:
    """run id -> its holder, for every 'running' run."""
    rows = con.execute("SELECT * FROM runs WHERE status = 'running' ORDER BY idx").fetchall()
    return {r["id"]: Holder.of(r) for r in rows}


def live_holders(con: sqlite3.Connection) -> dict[str, Holder]:
    """run id -> its holder, for every 'running' run whose holder may still train it."""
    me, t = Owner.me(), wall_clock()
    return {i: h for i, h in holders(con).items() if h.alive(me, t)}


def refuse_held(con: sqlite3.Connection, run_ids: list[str]) -> None:
    """ConfigError naming the holder when a live process holds one of ``run_ids``."""
    live = live_holders(con)
    held = [i for i in run_ids if i in live]
    if held:
        raise ConfigError(
            f"run {held[0]!r} is being trained by {live[held[0]].describe(wall_clock())}; wait "
            "for it to finish (or stop that process) before resetting it"
        )


def reclaim_dead(con: sqlite3.Connection) -> list[str]:
    """Runs 'running' under a holder that is gone (dead, or its lease expired) -> pending;
    their ids."""
    me, t = Owner.me(), wall_clock()
    dead = [i for i, h in holders(con).items() if not h.alive(me, t)]
    con.executemany(_TO_PENDING, [(i,) for i in dead])
    return dead


def running_elsewhere(con: sqlite3.Connection) -> dict[str, Holder]:
    """run id -> holder, for the runs 'running' under another live process (any host or
    container: a fresh heartbeat counts)."""
    me = Owner.me()
    return {i: h for i, h in live_holders(con).items() if not h.is_process(me)}


def release_mine(con: sqlite3.Connection) -> list[str]:
    """Runs still claimed by this very process -> pending; their ids."""
    me = Owner.me()
    ids = [i for i, h in holders(con).items() if h.is_process(me)]
    con.executemany(_TO_PENDING, [(i,) for i in ids])
    return ids


def release(con: sqlite3.Connection, run_id: str, lease: str | None) -> None:
    """A claimed run -> pending; with ``lease``, only while the run is still under it (a run
    that is not running, or was taken by another process, is left as it is)."""
    sql = _TO_PENDING + " AND status = 'running'"
    con.execute(*((sql, (run_id,)) if lease is None else (sql + " AND lease = ?", (run_id, lease))))


def hold(con: sqlite3.Connection, run_id: str, lease: str) -> None:
    """Renew the run's lease before a write of its rows; LeaseLost when it is not held."""
    if renew(con, {run_id: lease}):
        row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        raise LeaseLost(run_id, _now_there(row))


def renew(con: sqlite3.Connection, leases: dict[str, str]) -> dict[str, str]:
    """Renew the heartbeat of every (run id -> lease token); the ones no longer held."""
    t, lost = wall_clock(), {}
    for run_id, token in leases.items():
        cur = con.execute(
            "UPDATE runs SET heartbeat = ? WHERE id = ? AND lease = ? AND status = 'running'",
            (t, run_id, token),
        )
        if not cur.rowcount:
            lost[run_id] = token
    return lost


def _now_there(row: sqlite3.Row | None) -> str:
    """What became of a run whose lease was lost, for LeaseLost's message."""
    if row is None:
        return "it is no longer in the study"
    if row["status"] != "running":
        return f"it is {row['status']} now"
    return f"held by {Holder.of(row).describe(wall_clock())}"


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
