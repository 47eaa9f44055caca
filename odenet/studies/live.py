"""Watching a study run: a rich live view on a terminal, one line per run otherwise.

``make_observer(quiet, console)`` picks: nothing (quiet), a LineLog (not a TTY: logs, CI,
subprocesses) or a LiveView (overall progress with ETA, the current run's epochs, the current
epoch's steps with the last loss).
"""

from __future__ import annotations

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from odenet.studies.records import RunRecord
from odenet.studies.robustness import POINT
from odenet.studies.runner import StudyObserver


def make_observer(quiet: bool, console: Console | None = None) -> StudyObserver:
    """No output when quiet; a live view on a terminal; plain lines otherwise."""
    console = console or Console(stderr=True)
    if quiet:
        return StudyObserver()
    return LiveView(console) if console.is_terminal else LineLog(console)


def _describe(run: RunRecord) -> str:
    acc = "" if run.test_acc is None else f" test_acc {run.test_acc / POINT:.2f}%"
    extra = f" ({run.error})" if run.status == "failed" and run.error else ""
    epochs = f"{run.epochs_done} epoch{'' if run.epochs_done == 1 else 's'}"
    return f"{run.id}: {run.status} after {epochs}{acc}{extra}"


class LineLog(StudyObserver):
    """One line when the study starts, per run start/end and when waiting for others."""

    def __init__(self, console: Console) -> None:
        self.console, self.total, self.ended, self._waiting = console, 0, 0, False

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def on_study_start(self, total: int, finished: int) -> None:
        self.total, self.ended = total, finished
        self._say(f"study: {total} runs, {finished} already finished")

    def on_run_start(self, run: RunRecord) -> None:
        self._waiting = False
        self._say(f"[{self.ended + 1}/{self.total}] {run.id}: started")

    def on_run_end(self, run: RunRecord) -> None:
        self.ended += 1
        self._say(f"[{self.ended}/{self.total}] {_describe(run)}")

    def on_wait(self, running: list[str]) -> None:
        if not self._waiting:
            self._say(
                f"waiting for runs held by other processes: {', '.join(running)}",
                markup=False,
                highlight=False,
            )
        self._waiting = True


class LiveView(StudyObserver):
    """rich.progress: overall runs (fractional, with ETA), current run's epochs, epoch steps."""

    def __init__(self, console: Console) -> None:
        self.progress = Progress(
            TextColumn("{task.description}", justify="left"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[info]}"),
            console=console,
            speed_estimate_period=900.0,
        )
        self.ended = 0
        self.epochs = self.steps = 1  # of the current run / epoch
        self.overall = self.run_task = self.step_task = None

    def on_study_start(self, total: int, finished: int) -> None:
        self.ended = finished
        self.progress.start()
        self.overall = self.progress.add_task(
            "study", total=total, completed=finished, info=f"{finished} finished before"
        )

    def on_run_start(self, run: RunRecord) -> None:
        self.epochs = run.config.epochs
        for task in (self.run_task, self.step_task):
            if task is not None:
                self.progress.remove_task(task)
        self.run_task = self.progress.add_task(
            run.id, total=self.epochs, completed=run.epochs_done, info=""
        )
        self.step_task = self.progress.add_task("  epoch", total=None, info="")

    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None:
        self.progress.update(
            self.step_task, description=f"  epoch {epoch}", total=steps, completed=0
        )
        self.steps = max(steps, 1)
        self._fraction(epoch - 1)

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        self.progress.update(self.step_task, completed=step, info=f"loss {loss:.3f}")
        self._fraction(epoch - 1 + step / self.steps)

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        acc = metrics.get("test_acc")
        info = "" if acc is None else f"test_acc {acc / POINT:.2f}%"
        self.progress.update(self.run_task, completed=metrics["epoch"], info=info)
        self._fraction(metrics["epoch"])

    def on_run_end(self, run: RunRecord) -> None:
        self.ended += 1
        self.progress.update(self.overall, completed=self.ended)
        self.progress.console.print(_describe(run), markup=False, highlight=False)

    def on_wait(self, running: list[str]) -> None:
        self.progress.update(self.overall, info=f"waiting for {len(running)} run(s) elsewhere")

    def on_study_end(self) -> None:
        self.progress.stop()

    def _fraction(self, epochs: float) -> None:
        frac = min(epochs / max(self.epochs, 1), 1.0)
        self.progress.update(self.overall, completed=self.ended + frac)
