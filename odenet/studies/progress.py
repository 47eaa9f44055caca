"""How far a study is and when it will end: the counts and the ETA that the live view and the
line log show (odenet.studies.live).

``StudyProgress`` is an observer that only keeps count; the views read it. Work is measured
in optimizer steps, so runs of different sizes (epochs, training subsets, batch sizes) weigh
what they cost: a run's size is its epochs times its steps per epoch, known once it starts an
epoch, and until then taken from a run seen with the same batch size and training subset
(else the mean of the runs seen). The ETA is the steps left over the rate measured in this
session (steps taken since the study started, over the seconds since): it rests on finished
work only, and is unknown (None) before the first step. Runs finished before a resume count as
done and weigh nothing in the rate.

The executors report from the runner's thread while a live display redraws from its own:
every hook and every reading holds ``lock``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from odenet.studies.records import RunRecord
from odenet.studies.runner import StudyObserver

ENDED = ("done", "diverged", "failed")  # the counts shown, in this order


@dataclass
class RunProgress:
    """One run this session may train: where it is (epochs completed, step in the epoch)."""

    id: str
    epochs: int  # planned
    key: tuple  # runs with the same key take the same steps per epoch
    before: int  # epochs completed when the study started (not this session's work)
    completed: int  # epochs completed
    step: int = 0  # steps taken in the current epoch
    steps: int = 0  # steps per epoch (0: not known yet)
    loss: float | None = None  # at the latest host read
    running: bool = False
    ended: bool = False

    @property
    def epoch(self) -> int:
        """The epoch being trained (1-based)."""
        return min(self.completed + 1, self.epochs)

    def fraction(self) -> float:
        """Epochs done, with the current one's fraction, over the planned epochs."""
        part = self.step / self.steps if self.steps else 0.0
        return min((self.completed + part) / max(self.epochs, 1), 1.0)


class StudyProgress(StudyObserver):
    """Counts by status, the runs in flight and the ETA of one study session."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock, self.lock = clock, threading.RLock()
        self.start = clock()
        self.total = 0
        self.counts = dict.fromkeys(ENDED, 0)
        self.runs: dict[str, RunProgress] = {}  # every run not ended at the start

    # ---- the observer's hooks --------------------------------------------------------------
    def on_study_start(self, runs: list[RunRecord]) -> None:
        with self.lock:
            self.start, self.total = self.clock(), len(runs)
            for r in runs:
                if r.status in ENDED:
                    self.counts[r.status] += 1
                else:
                    key = (r.config.batch_size, r.config.limit_train)
                    c = r.epochs_done
                    self.runs[r.id] = RunProgress(r.id, r.config.epochs, key, c, c)

    def on_run_start(self, run: RunRecord) -> None:
        with self.lock:
            self._run(run).running = True

    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None:
        with self.lock:
            p = self._run(run)
            p.completed, p.step, p.steps = epoch - 1, 0, steps

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        with self.lock:
            p = self._run(run)
            p.completed, p.step, p.loss = epoch - 1, step, loss

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        with self.lock:
            p = self._run(run)
            p.completed, p.step = metrics["epoch"], 0

    def on_run_end(self, run: RunRecord) -> None:
        with self.lock:
            p = self._run(run)
            p.running, p.ended = False, True
            if run.status in self.counts:
                self.counts[run.status] += 1

    def on_run_taken(self, run: RunRecord) -> None:
        with self.lock:  # another process trains it now: not in flight here, not ended
            self._run(run).running = False

    # ---- readings ------------------------------------------------------------------------
    @property
    def ended(self) -> int:
        """Runs done, diverged or failed (before this session too)."""
        return sum(self.counts.values())

    def in_flight(self) -> list[RunProgress]:
        with self.lock:
            return [p for p in self.runs.values() if p.running]

    def elapsed(self) -> float:
        return self.clock() - self.start

    def fraction(self) -> float:
        """Runs ended plus each running run's fraction, over every run (0..1)."""
        with self.lock:
            running = sum(p.fraction() for p in self.runs.values() if p.running)
            return (self.ended + running) / self.total if self.total else 1.0

    def eta(self) -> float | None:
        """Seconds left at the rate measured so far; None before any step was measured, or
        while the size of a run left is unknown."""
        with self.lock:
            known: dict[tuple, int] = {p.key: p.steps for p in self.runs.values() if p.steps}
            fallback = sum(known.values()) / len(known) if known else 0
            taken = left = 0.0
            for p in self.runs.values():
                steps = p.steps or known.get(p.key, fallback)
                taken += (p.completed - p.before) * steps + p.step
                if not p.ended:
                    left += max(p.epochs * steps - p.completed * steps - p.step, 0)
            if taken <= 0 or (left and not fallback):
                return None
            return left / (taken / max(self.elapsed(), 1e-9))

    def summary(self) -> str:
        """'12/36 runs (10 done, 1 diverged, 1 failed), 2 running, elapsed 0:03:12, ETA
        0:10:05' (ETA -:--:-- while unknown)."""
        with self.lock:
            counts = ", ".join(f"{n} {s}" for s, n in self.counts.items())
            running = len(self.in_flight())
            return (
                f"{self.ended}/{self.total} runs ({counts}), {running} running, "
                f"elapsed {clock_time(self.elapsed())}, ETA {clock_time(self.eta())}"
            )

    def _run(self, run: RunRecord) -> RunProgress:
        """The run's progress; a run that was not pending when the study started (taken over
        from a process that died meanwhile) is added when it first shows up."""
        p = self.runs.get(run.id)
        if p is None:
            key, c = (run.config.batch_size, run.config.limit_train), run.epochs_done
            p = self.runs[run.id] = RunProgress(run.id, run.config.epochs, key, c, c)
        return p


def clock_time(seconds: float | None) -> str:
    """Seconds as h:mm:ss ('-:--:--' for None)."""
    if seconds is None:
        return "-:--:--"
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"
