"""The runner: claims pending runs from the store and hands them to an executor.

The executor interface is small on purpose: ``Executor.run(runs, store, observer)`` executes
runs the runner has already claimed and records each one's outcome in the store. Each claim
takes at most ``capacity`` pending runs in grid order; an executor with a ``key`` (TrainConfig
-> hashable) gets only runs whose key equals that of the first pending run, so a claim never
straddles two of its groups. ``SequentialExecutor`` (one run after another in this process,
capacity 1, no key) and the fused executor (``fused_executor.py``: runs that differ only in lr
and seed as one grouped network) replace each other without touching the grid or the store.
"""

from __future__ import annotations

import dataclasses
import time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from pathlib import Path

from odenet.errors import StoreError
from odenet.studies.store import RunRecord, Store
from odenet.training.config import TrainConfig


class StudyObserver:
    """Progress notifications (no-op defaults; the live view subclasses this)."""

    def on_study_start(self, total: int, finished: int) -> None: ...
    def on_run_start(self, run: RunRecord) -> None: ...
    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None: ...
    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None: ...
    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None: ...
    def on_run_end(self, run: RunRecord) -> None: ...  # the run as stored after it ended
    def on_wait(self, running: list[str]) -> None: ...  # waiting for other processes' runs
    def on_study_end(self) -> None: ...


class Executor(ABC):
    """Executes claimed runs and records each outcome (finish or fail) in the store.

    A failure of one run (an exception) must be recorded as failed and must not stop the
    others; KeyboardInterrupt gives the unfinished runs back (``store.release``) and propagates.
    """

    name: str  # recorded with every run it executes
    capacity: int  # how many runs it takes at once
    # Runs claimed together share their key (a run whose key is None is claimed alone);
    # no key function: any runs, in grid order.
    key: Callable[[TrainConfig], Hashable | None] | None = None

    @abstractmethod
    def run(self, runs: list[RunRecord], store: Store, observer: StudyObserver) -> None:
        """Execute ``runs`` (claimed by this process: status 'running')."""


class SequentialExecutor(Executor):
    """One run after another in this process, through ``odenet.training.train``."""

    name = "sequential"
    capacity = 1
    key = None

    def __init__(self, dataset=None, cuda_graphs: bool | None = None) -> None:
        """dataset: an already loaded ArrayDataset to use for runs naming it (else loaded once);
        cuda_graphs: overrides the runs' ``TrainConfig.cuda_graphs`` when not None (how a step
        runs, not what it computes: a resumed run accepts either)."""
        self.cuda_graphs = cuda_graphs
        self._datasets: dict[tuple, object] = {}  # loaded once per (name, data_dir)
        self._given = dataset

    def run(self, runs: list[RunRecord], store: Store, observer: StudyObserver) -> None:
        for run in runs:
            self.run_one(run, store, observer)

    def run_one(
        self,
        run: RunRecord,
        store: Store,
        observer: StudyObserver,
        reason: str | None = None,
        *,
        started: bool = False,
    ) -> None:
        """Train one run and record it; ``reason`` says why it was not fused (provenance).

        started: the observer was already told that the run started (a fused group's members).
        A result that already says what trained it (a stored one) keeps its ``execution``.
        """
        from odenet.training import train
        from odenet.training.checkpoint import save_result

        if not started:
            observer.on_run_start(run)
        try:
            result = train(
                self.config_for(run),
                out_dir=run.run_dir,
                dataset=self.dataset_for(run),
                callbacks=_callbacks(run, store, observer),
            ).to_dict()
            execution = {"executor": "sequential", "members": 1}
            execution |= {"reason": reason} if reason else {}
            result["provenance"].setdefault("execution", execution)
            save_result(run.run_dir, result)
            store.finish(run.id, result)
        except (KeyboardInterrupt, SystemExit):
            store.release(run.id)
            raise
        except StoreError:  # the database itself failed (disk full...): nothing to record it in;
            raise  # the run stays claimed by this (soon dead) process and is reclaimed on resume
        except Exception as err:  # noqa: BLE001 - a failing run is recorded, the study goes on
            store.fail(run.id, _message(err))
        observer.on_run_end(store.run(run.id))

    def config_for(self, run: RunRecord) -> TrainConfig:
        """The run's stored config with this executor's execution settings applied."""
        if self.cuda_graphs is None:
            return run.config
        return dataclasses.replace(run.config, cuda_graphs=self.cuda_graphs)

    def dataset_for(self, run: RunRecord):
        """The run's dataset: the one given at construction, or loaded once per name/dir."""
        from odenet.data import load_dataset

        if self._given is not None and self._given.name == run.config.dataset:
            return self._given
        key = (run.config.dataset, run.config.data_dir)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(
                run.config.dataset, run.config.data_dir, progress=False
            )
        return self._datasets[key]


def run_pending(
    store: Store,
    executor: Executor,
    observer: StudyObserver | None = None,
    *,
    retry_failed: bool = True,
    wait: bool = True,
    poll_s: float = 1.0,
) -> None:
    """Execute every pending run of ``store`` with ``executor`` until none is left.

    Runs left 'running' by dead processes on this host go back to pending first (and resume
    from their checkpoints); with ``retry_failed`` failed runs are retried. With ``wait``,
    returns only when runs held by other live processes on this host have ended too.
    """
    observer = observer or StudyObserver()
    if retry_failed:
        store.retry_failed()
    store.release_mine()  # left claimed by an earlier call in this process that failed
    store.reclaim_dead()
    counts = store.counts()
    observer.on_study_start(sum(counts.values()), counts["done"] + counts["diverged"])
    try:
        while True:
            claimed = store.claim(executor.capacity, executor.name, executor.key)
            if claimed:
                executor.run([store.run(i) for i in claimed], store, observer)
                continue
            busy = store.running_elsewhere() if wait else []
            if not busy:
                if not store.reclaim_dead():
                    break
                continue
            observer.on_wait(busy)
            time.sleep(poll_s)
            store.reclaim_dead()  # a process that died while we waited
    finally:
        observer.on_study_end()


def _callbacks(run: RunRecord, store: Store, observer: StudyObserver):
    """TrainCallbacks: epoch metrics and logged steps -> the store; events -> the observer."""
    from odenet.training import TrainCallbacks

    class _Callbacks(TrainCallbacks):
        restart = True  # the first rows of this attempt replace an earlier attempt's tail

        def on_log(self, rows) -> None:
            store.record_steps(run.id, rows, restart=self.restart)
            self.restart = self.restart and not rows

        def on_epoch_start(self, epoch: int, steps: int) -> None:
            observer.on_epoch_start(run, epoch, steps)

        def on_step(self, epoch: int, step: int, loss: float) -> None:
            observer.on_step(run, epoch, step, loss)

        def on_epoch_end(self, metrics) -> None:
            m = metrics.to_dict()
            store.record_epoch(run.id, m)
            observer.on_epoch_end(run, m)

    return _Callbacks()


def _message(err: Exception) -> str:
    """One line: the exception type, its message and where it was raised."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {err}{where}".replace("\n", " ")
