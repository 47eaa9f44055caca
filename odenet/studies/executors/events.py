"""What an executor reports about a run: one small frozen message per thing that happened.

Executors emit these (``Emit``) for the runs they were given; the runner's recorder
(``odenet.studies.runner.Recorder``) applies each one to the store, the run directory and the
observer, so whatever executed a run (this process, a fused group, a Ray worker on another
node) it is recorded by the same code. The messages are plain data (picklable): a Ray worker
sends them to the driver as they are.

Per run, in order: ``RunStarted``; per epoch ``EpochStarted``, ``StepTaken`` / ``StepsLogged``
at each host read, ``CheckpointDue`` (before the epoch's checkpoint is written), ``EpochEnded``
(after it is written); finally exactly one of ``RunFinished``, ``RunFailed`` or
``RunReleased``. ``FileWritten`` carries a file of the run directory written elsewhere (a Ray
worker's checkpoint), before the event it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from odenet.training.results import EpochMetrics, StepLog, TrainCallbacks


@dataclass(frozen=True)
class RunStarted:
    run_id: str


@dataclass(frozen=True)
class EpochStarted:
    run_id: str
    epoch: int  # 1-based
    steps: int  # in this epoch


@dataclass(frozen=True)
class StepTaken:
    """At a host read: the latest step taken (1-based within the epoch) and its loss."""

    run_id: str
    epoch: int
    step: int
    loss: float


@dataclass(frozen=True)
class StepsLogged:
    """The steps logged since the previous host read (never empty)."""

    run_id: str
    rows: tuple[StepLog, ...]
    restart: bool  # the first rows of this attempt: an earlier attempt's rows from here go


@dataclass(frozen=True)
class CheckpointDue:
    """The epoch's checkpoint is about to be written: the runner confirms that the run is
    still this study's (its lease held), or stops it first (``emit`` raises LeaseLost)."""

    run_id: str
    epoch: int


@dataclass(frozen=True)
class EpochEnded:
    run_id: str
    metrics: dict  # EpochMetrics.to_dict()


@dataclass(frozen=True)
class FileWritten:
    """A file of the run directory written elsewhere: its name and bytes, to write as they are."""

    run_id: str
    name: str
    data: bytes


@dataclass(frozen=True)
class RunFinished:
    run_id: str
    result: dict  # TrainResult.to_dict(), as its result.json holds it (provenance included)


@dataclass(frozen=True)
class RunFailed:
    run_id: str
    error: str  # one line


@dataclass(frozen=True)
class RunReleased:
    """Given back unfinished (the study stopped): pending again, resumed from its checkpoint."""

    run_id: str


RunEvent = (
    RunStarted
    | EpochStarted
    | StepTaken
    | StepsLogged
    | CheckpointDue
    | EpochEnded
    | FileWritten
    | RunFinished
    | RunFailed
    | RunReleased
)  # a type union: isinstance(message, RunEvent) works
ENDS = (RunFinished, RunFailed, RunReleased)  # a run's last event
Emit = Callable[[RunEvent], None]


class RunEvents(TrainCallbacks):
    """The training callbacks of one run, as events for ``emit``."""

    def __init__(self, run_id: str, emit: Emit) -> None:
        self.run_id, self.emit = run_id, emit
        self.restart = True  # no rows logged yet by this attempt

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        self.emit(EpochStarted(self.run_id, epoch, steps))

    def on_step(self, epoch: int, step: int, loss: float) -> None:
        self.emit(StepTaken(self.run_id, epoch, step, loss))

    def on_log(self, rows: list[StepLog]) -> None:
        if rows:
            self.emit(StepsLogged(self.run_id, tuple(rows), self.restart))
            self.restart = False

    def on_checkpoint(self, epoch: int) -> None:
        self.emit(CheckpointDue(self.run_id, epoch))

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        self.emit(EpochEnded(self.run_id, metrics.to_dict()))
