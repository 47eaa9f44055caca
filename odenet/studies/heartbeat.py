"""The leases a study process holds (``HeldLeases``) and the heartbeat that renews them.

``Heartbeat``: a daemon thread that renews every held lease every ``interval`` seconds
(``grace.heartbeat_interval``: 10 s, shorter for a short grace period) in one store
transaction and tells ``HeldLeases`` which were no longer there (taken over by another process
after this one was silent for longer than the grace period, or reset); the runner stops training
those at their next event. The training loop never waits for it: it shares nothing with the
loop but the store, whose writes are short transactions. A renewal that fails (the database
locked for longer than its busy timeout, a full disk) is tried again at the next beat; the
study's own writes report such a store.

``HeldLeases`` also knows when each lease was last confirmed (a renewal, or a write made under
it): within half its grace period of that no other process can have taken it, so the runner's
checks before a checkpoint cost no store transaction then; after a pause they do.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from dataclasses import dataclass

from odenet.errors import StoreError
from odenet.studies.store import Lease, Store

log = logging.getLogger("odenet.studies")


@dataclass
class _Held:
    token: str
    grace: float
    confirmed: float  # time.monotonic() at which the lease was last known to be held
    lost: bool = False  # the heartbeat found it taken


class HeldLeases:
    """The leases of the runs this process trains. Thread-safe: the heartbeat reports, the
    runner asks."""

    def __init__(self) -> None:
        self._runs: dict[str, _Held] = {}
        self._lock = threading.Lock()

    def add(self, run_ids: list[str], lease: Lease) -> None:
        """Runs just claimed under ``lease`` (confirmed now)."""
        now = time.monotonic()
        with self._lock:
            self._runs.update((i, _Held(lease.token, lease.grace, now)) for i in run_ids)

    def forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def token(self, run_id: str) -> str | None:
        """The run's lease token; None for a run not held under a lease."""
        with self._lock:
            held = self._runs.get(run_id)
            return None if held is None else held.token

    def tokens(self) -> dict[str, str]:
        """run id -> token of every held lease (what the heartbeat renews)."""
        with self._lock:
            return {i: h.token for i, h in self._runs.items()}

    def renewed(self, tokens: dict[str, str], lost: dict[str, str], started: float) -> None:
        """A renewal of ``tokens`` begun at ``started`` (monotonic) found ``lost`` taken."""
        with self._lock:
            for run_id, token in tokens.items():
                held = self._runs.get(run_id)
                if held is None or held.token != token:  # ended meanwhile (or claimed anew)
                    continue
                if run_id in lost:
                    held.lost = True
                else:
                    held.confirmed = max(held.confirmed, started)

    def confirm(self, run_id: str, started: float) -> None:
        """A write under the run's lease, begun at ``started`` (monotonic), succeeded."""
        with self._lock:
            if (held := self._runs.get(run_id)) is not None:
                held.confirmed = max(held.confirmed, started)

    def lost(self, run_id: str) -> bool:
        """Whether the heartbeat found the run's lease taken."""
        with self._lock:
            held = self._runs.get(run_id)
            return held is not None and held.lost

    def unsure(self, run_id: str) -> bool:
        """Whether the lease was last confirmed half its grace period ago or earlier (this
        process may have been paused since): a check must ask the store."""
        with self._lock:
            held = self._runs.get(run_id)
            return held is not None and time.monotonic() - held.confirmed >= held.grace / 2


class Heartbeat:
    """``with Heartbeat(store, leases, interval):`` renews ``leases`` while the block runs."""

    def __init__(self, store: Store, leases: HeldLeases, interval: float) -> None:
        self.store, self.leases, self.interval = store, leases, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="odenet-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5.0)

    def beat(self) -> None:
        """Renew every held lease once; report what was found."""
        tokens = self.leases.tokens()
        if not tokens:
            return
        started = time.monotonic()
        try:
            lost = self.store.renew(tokens)
        except (StoreError, sqlite3.Error) as err:
            log.debug("heartbeat: renewing %d lease(s) failed: %s", len(tokens), err)
            return
        self.leases.renewed(tokens, lost, started)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
