"""Leases: who may train a run, decided without trusting a pid outside its own namespace.

A claimed run holds a lease: the claimer's identity (host, pid, ``process_identity``: boot id
and start time, PID namespace; ``owners.Owner``), a token unique to the claim, and a heartbeat
that the claiming process renews (``odenet.studies.heartbeat``: every
``grace.heartbeat_interval`` seconds from a thread, and with every write of the run's rows),
and its grace period (``odenet.studies.grace``).
Another process may take the run over only when

* its holder is provably dead where the checker can see it: same host, boot and PID namespace,
  and the pid is gone or is another process now (the fast path: a SIGKILLed study on one
  machine is resumed at once), or
* its heartbeat is older than the holder's grace period (a container's study, killed or paused:
  its pid means nothing here).

Heartbeats are UTC wall-clock seconds (``time.time()``) of the writing process. Processes that
share a study directory share one machine's clock (SQLite's WAL needs one machine: containers
on it read the same clock); on a network file system opened anyway, the hosts' clocks must
agree to well within the grace period (NTP does). The grace period is the holder's own
(``odenet study --lease-grace``), recorded with its lease: every checker applies the same one.

A claim made by an odenet before leases has no heartbeat: on its own host it is judged by its
pid as it was then; from another host it counts as expired (no process of this version holds
it, and the old rule never reclaimed it, so such a run stayed 'running' forever).
"""

from __future__ import annotations

import sqlite3
import time
import uuid
from dataclasses import dataclass

from odenet.studies.grace import DEFAULT_GRACE
from odenet.studies.store.owners import Owner, owner_alive


def wall_clock() -> float:
    """The heartbeats' clock: UTC seconds since the epoch (see the module docstring)."""
    return time.time()


@dataclass(frozen=True)
class Lease:
    """One claim's lease: the token its rows carry and the grace period it asks for."""

    token: str
    grace: float = DEFAULT_GRACE

    @classmethod
    def new(cls, grace: float = DEFAULT_GRACE) -> Lease:
        return cls(uuid.uuid4().hex, grace)


@dataclass(frozen=True)
class Holder:
    """Who holds a 'running' run, as its row records it."""

    host: str | None
    pid: int | None
    identity: str | None  # process_identity of the claimer
    pidns: str | None  # its PID namespace (None: claimed before leases, or unknown)
    heartbeat: float | None  # wall_clock() of its last renewal (None: claimed before leases)
    grace: float | None  # its grace period

    @classmethod
    def of(cls, row: sqlite3.Row) -> Holder:
        """From a ``runs`` row (a store from before owners and leases lacks their columns)."""
        have = row.keys()
        return cls(*(row[k] if k in have else None for k in _COLUMNS))

    def alive(self, me: Owner, now: float) -> bool:
        """Whether the holder may still be training the run (see the module docstring)."""
        if self.heartbeat is not None and now - self.heartbeat > (self.grace or DEFAULT_GRACE):
            return False
        if me.sees(self.host, self.pidns, self.identity):
            return owner_alive(self.pid, self.identity)
        if self.heartbeat is None:  # claimed by an odenet without leases
            return self.host == me.host and owner_alive(self.pid, self.identity)
        return True

    def is_process(self, me: Owner) -> bool:
        """Whether this is the process ``me``."""
        return (self.host, self.pid, self.identity, self.pidns) == (
            me.host, me.pid, me.identity, me.pidns,
        )  # fmt: skip

    def describe(self, now: float, me: Owner | None = None) -> str:
        """'pid P on host H (pid namespace N), last heartbeat S s ago'; with ``me`` (the
        checker), followed by '; gone ...' when the holder is not ``alive``."""
        where = f"pid {self.pid} on host {self.host}"
        if self.heartbeat is None:
            text = f"{where} (no heartbeat: claimed by an odenet without leases)"
        else:
            age = _age(now - self.heartbeat)
            text = f"{where} (pid namespace {self.pidns}), last heartbeat {age}"
        if me is None or self.alive(me, now):
            return text
        return f"{text}; gone: the next `odenet study` on the directory resumes the run"


_COLUMNS = ("host", "pid", "owner", "pidns", "heartbeat", "grace")  # Holder's fields, in order


def _age(seconds: float) -> str:
    if seconds < 0:  # a clock ahead of this one
        return "in the future (clocks disagree)"
    if seconds < 120:
        return f"{seconds:.0f} s ago"
    return f"{seconds / 60:.0f} min ago" if seconds < 7200 else f"{seconds / 3600:.1f} h ago"
