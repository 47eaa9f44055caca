"""Who trains which run: atomic claims, releases and the reclaiming of dead owners' runs.

Runs are claimed atomically (``UPDATE ... WHERE status = 'pending'``) with the claimer's pid,
host and identity (boot id and process start time, ``records.process_identity``), so any
number of processes can share one directory; a run left 'running' by a dead process on this
host goes back to pending and resumes from its checkpoint, also when the dead owner's pid now
belongs to another process (a container restarted as PID 1, a reboot).
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
from collections.abc import Callable, Hashable

from odenet.studies.records import now, owner_alive, process_identity
from odenet.studies.store_connection import StoreConnection
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import TrainConfig


class StoreClaims(StoreConnection):
    """The claim / release methods of ``Store``."""

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
        return claimer_alive(row)

    def release(self, run_id: str) -> None:
        """Give a claimed run back (an interrupted process): running -> pending."""
        with self._tx() as con:
            con.execute(
                "UPDATE runs SET status = 'pending', pid = NULL, owner = NULL WHERE id = ? "
                "AND status = 'running'",
                (run_id,),
            )


def claimer_alive(row: sqlite3.Row) -> bool:
    """Whether the process that claimed this 'running' row still runs (a store from before
    owner identity has no owner column: the pid alone decides)."""
    return owner_alive(row["pid"], row["owner"] if "owner" in row.keys() else None)


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
