"""The runner: THE claim loop. Claims pending runs, hands them to an executor, records events.

``run_pending(store, executor, observer)`` is the only code that claims runs from the store,
for every executor (``odenet.studies.executors``): whenever the executor is free it claims
up to ``executor.capacity`` pending runs (grid order; with ``executor.key``, only runs of the
first one's key) and submits them; while the executor is busy it polls it. Executors report
what happens to their runs as events (``odenet.studies.executors.events``); one ``Recorder``
applies each event to the store (the runner's process is its only writer), to the run's
directory (files a Ray worker wrote elsewhere) and to the observer (``StudyObserver``: the
live view or line log, the TensorBoard writer; ``Observers`` for several). Each claim is a
lease (``odenet.studies.store.leases``) that a heartbeat thread (``odenet.studies.heartbeat``)
renews; a run taken from this process (its lease lapsed, another process took it over or reset
it) is dropped and its executor stops training it (LeaseLost from ``emit``). When the study
stops (Ctrl-C, SIGTERM, an error) the executor is cancelled and every run it was given that did
not end goes back to pending (``RunReleased``), to resume from its checkpoint.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from odenet.errors import DiskFull, LeaseLost, StoreError
from odenet.files import atomic_write_bytes
from odenet.studies.executors.base import Executor
from odenet.studies.executors.events import (
    CheckpointDue,
    EpochEnded,
    EpochStarted,
    FileWritten,
    RunEvent,
    RunFailed,
    RunFinished,
    RunReleased,
    RunStarted,
    StepsLogged,
    StepTaken,
)
from odenet.studies.grace import DEFAULT_GRACE, heartbeat_interval
from odenet.studies.heartbeat import Heartbeat, HeldLeases
from odenet.studies.records import RunRecord
from odenet.studies.store import Holder, Lease, Store
from odenet.training.results import StepLog

log = logging.getLogger("odenet.studies")


class StudyObserver:
    """Progress notifications (no-op defaults; the live view, the line log and the TensorBoard
    writer subclass this; ``Observers`` sends each to several)."""

    def on_study_start(self, runs: list[RunRecord]) -> None: ...  # every run, as stored
    def on_run_start(self, run: RunRecord) -> None: ...
    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None: ...
    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None: ...
    def on_log(self, run: RunRecord, rows: tuple[StepLog, ...]) -> None: ...  # logged steps
    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None: ...
    def on_run_end(self, run: RunRecord) -> None: ...  # the run as stored after it ended
    def on_run_taken(self, run: RunRecord) -> None: ...  # another process took it: stopped
    # waiting for runs held by other live processes: run id -> who holds it
    def on_wait(self, running: Mapping[str, Holder]) -> None: ...
    def on_study_end(self) -> None: ...


class Observers(StudyObserver):
    """Several observers as one: each notification goes to every one, in the order given."""

    def __init__(self, *observers: StudyObserver) -> None:
        self.observers = observers

    def on_study_start(self, runs: list[RunRecord]) -> None:
        for o in self.observers:
            o.on_study_start(runs)

    def on_run_start(self, run: RunRecord) -> None:
        for o in self.observers:
            o.on_run_start(run)

    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None:
        for o in self.observers:
            o.on_epoch_start(run, epoch, steps)

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        for o in self.observers:
            o.on_step(run, epoch, step, loss)

    def on_log(self, run: RunRecord, rows: tuple[StepLog, ...]) -> None:
        for o in self.observers:
            o.on_log(run, rows)

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        for o in self.observers:
            o.on_epoch_end(run, metrics)

    def on_run_end(self, run: RunRecord) -> None:
        for o in self.observers:
            o.on_run_end(run)

    def on_run_taken(self, run: RunRecord) -> None:
        for o in self.observers:
            o.on_run_taken(run)

    def on_wait(self, running: Mapping[str, Holder]) -> None:
        for o in self.observers:
            o.on_wait(running)

    def on_study_end(self) -> None:
        for o in self.observers:
            o.on_study_end()


class Recorder:
    """Applies executors' events to the store, the run directories and the observer.

    Knows the runs handed out and not ended yet (``active``) and the leases they are held
    under (``leases``); ``ended`` counts the others. Every write of a run's rows happens only
    while the run is still under its lease (and renews it), and so does every file the
    recorder writes; before the trainer writes a checkpoint (``CheckpointDue``) the lease is
    confirmed (asking the store when it was not confirmed for half its grace period). A run
    found taken (so, or by the heartbeat) is dropped with one warning line, and the event's
    ``emit`` raises LeaseLost so that the executor stops training it: nothing more of it is
    written here.
    """

    def __init__(self, store: Store, observer: StudyObserver) -> None:
        self.store, self.observer = store, observer
        self.active: dict[str, RunRecord] = {}  # id -> the run as claimed
        self.leases = HeldLeases()  # what the heartbeat renews
        self.taken: set[str] = set()  # runs dropped because another process took them
        self.ended = 0

    def track(self, run_ids: list[str], lease: Lease | None = None) -> list[RunRecord]:
        """The claimed runs' records, remembered until their last event; ``lease``: the one
        they were claimed under (None: writes are not checked against a lease)."""
        runs = [self.store.run(i) for i in run_ids]
        self.active.update((r.id, r) for r in runs)
        if lease is not None:
            self.leases.add(run_ids, lease)
        return runs

    def record(self, event: RunEvent) -> None:
        """Apply one event (the executors' ``emit``); LeaseLost for a run taken from us."""
        run = self.active.get(event.run_id)
        if run is None:
            if event.run_id in self.taken:
                if isinstance(event, RunReleased):
                    return
                raise LeaseLost(event.run_id, "dropped earlier")
            raise ValueError(f"{event!r}: not a run this study handed out, or one already ended")
        lease = self.leases.token(run.id)
        try:
            if lease is not None and self.leases.lost(run.id):
                self.store.hold(run.id, lease)  # raises LeaseLost saying who has it now
            started = time.monotonic()
            self._apply(run, event, lease)
            if lease is not None and isinstance(event, _WRITES):
                self.leases.confirm(run.id, started)
        except LeaseLost as err:
            self._drop(run, err)
            if not isinstance(event, RunReleased):  # given back anyway: nothing to stop
                raise

    def release_active(self) -> None:
        """Every run not ended yet goes back to pending (the study stops)."""
        for run_id in list(self.active):
            self.record(RunReleased(run_id))

    def _apply(self, run: RunRecord, event: RunEvent, lease: str | None) -> None:
        store, observer = self.store, self.observer
        if isinstance(event, RunStarted):
            observer.on_run_start(run)
        elif isinstance(event, EpochStarted):
            observer.on_epoch_start(run, event.epoch, event.steps)
        elif isinstance(event, StepTaken):
            observer.on_step(run, event.epoch, event.step, event.loss)
        elif isinstance(event, StepsLogged):
            store.record_steps(run.id, event.rows, restart=event.restart, lease=lease)
            observer.on_log(run, event.rows)
        elif isinstance(event, EpochEnded):
            store.record_epoch(run.id, event.metrics, lease=lease)
            observer.on_epoch_end(run, event.metrics)
        elif isinstance(event, CheckpointDue | FileWritten):
            if lease is not None and self.leases.unsure(run.id):  # paused? ask the store
                started = time.monotonic()
                store.hold(run.id, lease)
                self.leases.confirm(run.id, started)
            if isinstance(event, FileWritten):
                atomic_write_bytes(run.run_dir / event.name, event.data)
        elif isinstance(event, RunFinished | RunFailed | RunReleased):
            self._end(run, event, lease)
        else:
            raise ValueError(f"unknown event {event!r}")

    def _end(
        self, run: RunRecord, event: RunFinished | RunFailed | RunReleased, lease: str | None
    ) -> None:
        if isinstance(event, RunReleased):
            self._forget(run)
            self.store.release(run.id, lease)  # a run taken meanwhile is left to its holder
            return
        if isinstance(event, RunFinished):
            self.store.finish(run.id, event.result, lease=lease)
        else:
            self.store.fail(run.id, event.error, lease=lease)
        self._forget(run)
        self.observer.on_run_end(self.store.run(run.id))

    def _drop(self, run: RunRecord, err: LeaseLost) -> None:
        """A run taken from this process: forget it, say so, write nothing more of it."""
        self._forget(run)
        self.taken.add(run.id)
        log.warning("%s; stopped training it here without writing its results", err)
        self.observer.on_run_taken(run)

    def _forget(self, run: RunRecord) -> None:
        del self.active[run.id]
        self.leases.forget(run.id)
        self.ended += 1


_WRITES = (StepsLogged, EpochEnded)  # events written under the lease: each confirms it


def run_pending(
    store: Store,
    executor: Executor,
    observer: StudyObserver | None = None,
    *,
    retry_failed: bool = True,
    wait: bool = True,
    poll_s: float = 1.0,
    lease_grace: float = DEFAULT_GRACE,
) -> None:
    """Execute every pending run of ``store`` with ``executor`` until none is left.

    Runs left 'running' by processes that are gone go back to pending first (and resume from
    their checkpoints); with ``retry_failed`` failed runs are retried. Every claim is a new
    lease with ``lease_grace`` seconds of grace, renewed by a heartbeat thread while the runs
    train. With ``wait``, returns only when runs held by other live processes (any host or
    container) have ended too, taking over those whose holder goes silent.
    """
    observer = observer or StudyObserver()
    if retry_failed:
        store.retry_failed()
    store.release_mine()  # left claimed by an earlier call in this process that failed
    store.reclaim_dead()
    observer.on_study_start(store.runs())
    recorder = Recorder(store, observer)
    beat = Heartbeat(store, recorder.leases, heartbeat_interval(lease_grace))
    drained = None  # recorder.ended when a claim found nothing: no claim until a run ends
    try:
        with beat:
            while True:
                if executor.free() and drained != recorder.ended:
                    lease = Lease.new(lease_grace)
                    claimed = store.claim(executor.capacity, executor.name, executor.key, lease)
                    if claimed:
                        executor.submit(recorder.track(claimed, lease), recorder.record)
                        continue
                    drained = recorder.ended
                if executor.busy():
                    executor.poll(recorder.record, timeout=0.5)
                    continue
                busy = store.running_elsewhere() if wait else {}
                if not busy:
                    if not store.reclaim_dead():
                        break
                    drained = None
                    continue
                observer.on_wait(busy)
                time.sleep(poll_s)
                store.reclaim_dead()  # a holder that died (or went silent) while we waited
                drained = None
    except BaseException as err:  # Ctrl-C, SIGTERM, SystemExit, a full disk, a bug: runs go back
        executor.cancel()
        try:  # nothing to record it in (the store failed, the disk is full): they stay
            if not isinstance(err, StoreError):  # claimed by this (soon dead) process and
                recorder.release_active()  # are reclaimed on resume
        except (StoreError, DiskFull):
            pass  # the error that stopped the study is the one to report
        raise
    finally:
        observer.on_study_end()
