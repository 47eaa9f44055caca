"""The heartbeat: a daemon thread that renews the leases of the runs a study process holds.

Every ``interval`` seconds (``leases.heartbeat_interval``: 10 s, shorter for a short grace
period) it asks ``held()`` for the runs held now (run id -> lease token), renews them in one
store transaction and hands the ones no longer held (taken over by another process after this
one was silent for longer than the grace period, or reset) to ``lost``; the runner stops
training those at their next event. The training loop never waits for it: it shares nothing
with the loop but the store, whose writes are short transactions. A renewal that fails (the
database locked for longer than its busy timeout, a full disk) is tried again at the next beat;
the study's own writes report such a store.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable

from odenet.errors import StoreError
from odenet.studies.store import Store

log = logging.getLogger("odenet.studies")


class Heartbeat:
    """``with Heartbeat(store, held, lost, interval):`` renews leases while the block runs."""

    def __init__(
        self,
        store: Store,
        held: Callable[[], dict[str, str]],
        lost: Callable[[dict[str, str]], None],
        interval: float,
    ) -> None:
        self.store, self.held, self.lost, self.interval = store, held, lost, interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="odenet-heartbeat", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 5.0)

    def beat(self) -> None:
        """Renew every held lease once; report the lost ones."""
        held = self.held()
        if not held:
            return
        try:
            lost = self.store.renew(held)
        except (StoreError, sqlite3.Error) as err:
            log.debug("heartbeat: renewing %d lease(s) failed: %s", len(held), err)
            return
        if lost:
            self.lost(lost)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()
