"""Watching a study run: a rich live view on a terminal, one line per run otherwise.

``make_observer(quiet, console)`` picks: nothing (quiet), a LineLog (not a TTY: logs, CI,
subprocesses) or a LiveView (overall progress with ETA, a row per running run with its epochs
and last loss, the current epoch's steps).
"""

from __future__ import annotations

from collections.abc import Mapping

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

from odenet.studies.robustness import POINT
from odenet.studies.runner import StudyObserver
from odenet.studies.store import Holder, RunRecord
from odenet.studies.store.leases import wall_clock


def make_observer(quiet: bool, console: Console | None = None) -> StudyObserver:
    """No output when quiet; a live view on a terminal; plain lines otherwise."""
    console = console or Console(stderr=True)
    if quiet:
        return StudyObserver()
    return LiveView(console) if console.is_terminal else LineLog(console)


def _holders(running: Mapping[str, Holder]) -> str:
    """'RUN (pid P on host H (pid namespace N), last heartbeat S s ago), ...'."""
    t = wall_clock()
    return ", ".join(f"{i} ({h.describe(t)})" for i, h in running.items())


def _describe(run: RunRecord) -> str:
    acc = "" if run.test_acc is None else f" test_acc {run.test_acc / POINT:.2f}%"
    extra = f" ({run.error})" if run.status == "failed" and run.error else ""
    epochs = f"{run.epochs_done} epoch{'' if run.epochs_done == 1 else 's'}"
    return f"{run.id}: {run.status} after {epochs}{acc}{extra}"


class LineLog(StudyObserver):
    """One line when the study starts, per run start/end and when waiting for others.

    A fused executor starts several runs at once: each start line counts the runs started so
    far, each end line the runs ended so far.
    """

    def __init__(self, console: Console) -> None:
        self.console, self.total, self.started, self.ended = console, 0, 0, 0
        self._waiting = False

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def on_study_start(self, total: int, finished: int) -> None:
        self.total, self.started, self.ended = total, finished, finished
        self._say(f"study: {total} runs, {finished} already finished")

    def on_run_start(self, run: RunRecord) -> None:
        self._waiting = False
        self.started += 1
        self._say(f"[{self.started}/{self.total}] {run.id}: started")

    def on_run_end(self, run: RunRecord) -> None:
        self.ended += 1
        self._say(f"[{self.ended}/{self.total}] {_describe(run)}")

    def on_wait(self, running: Mapping[str, Holder]) -> None:
        if not self._waiting:
            self._say(f"waiting for runs held by other processes: {_holders(running)}")
        self._waiting = True


class LiveView(StudyObserver):
    """rich.progress: overall runs (fractional, with ETA), one row per running run (its epochs
    and last loss or test accuracy), and the current epoch's steps.

    Several runs may be running at once (a fused group): each has its own row, and the overall
    bar counts the finished runs plus every running run's fraction done.
    """

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
        self.overall = self.step_task = None
        self.rows: dict[str, int] = {}  # running run id -> its progress task
        self.done: dict[str, float] = {}  # running run id -> fraction of its epochs done
        self.steps = 1  # of the current epoch
        self.waiting = False  # the holders of the runs waited for were printed

    def on_study_start(self, total: int, finished: int) -> None:
        self.ended = finished
        self.progress.start()
        self.overall = self.progress.add_task(
            "study", total=total, completed=finished, info=f"{finished} finished before"
        )

    def on_run_start(self, run: RunRecord) -> None:
        self.waiting = False
        if self.step_task is not None:  # keep the step bar below every run's row
            self.progress.remove_task(self.step_task)
        self.rows[run.id] = self.progress.add_task(
            run.id, total=run.config.epochs, completed=run.epochs_done, info=""
        )
        self.done[run.id] = run.epochs_done / max(run.config.epochs, 1)
        self.step_task = self.progress.add_task("  epoch", total=None, info="")

    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None:
        self.progress.update(
            self.step_task, description=f"  epoch {epoch}", total=steps, completed=0
        )
        self.steps = max(steps, 1)
        self._fraction(run, epoch - 1)

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        self.progress.update(self.step_task, completed=step)
        self.progress.update(self.rows[run.id], info=f"loss {loss:.3f}")
        self._fraction(run, epoch - 1 + step / self.steps)

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        acc = metrics.get("test_acc")
        info = "" if acc is None else f"test_acc {acc / POINT:.2f}%"
        self.progress.update(self.rows[run.id], completed=metrics["epoch"], info=info)
        self._fraction(run, metrics["epoch"])

    def on_run_end(self, run: RunRecord) -> None:
        self.ended += 1
        self.progress.remove_task(self.rows.pop(run.id))
        self.done.pop(run.id)
        self._fraction(None, 0)
        self.progress.console.print(_describe(run), markup=False, highlight=False)

    def on_run_taken(self, run: RunRecord) -> None:
        self.progress.remove_task(self.rows.pop(run.id))
        self.done.pop(run.id)
        self._fraction(None, 0)

    def on_wait(self, running: Mapping[str, Holder]) -> None:
        self.progress.update(self.overall, info=f"waiting for {len(running)} run(s) elsewhere")
        if not self.waiting:
            self.progress.console.print(
                f"waiting for runs held by other processes: {_holders(running)}",
                markup=False, highlight=False,
            )  # fmt: skip
        self.waiting = True

    def on_study_end(self) -> None:
        self.progress.stop()

    def _fraction(self, run: RunRecord | None, epochs: float) -> None:
        """Record ``run``'s progress (epochs done, fractional) and update the overall bar."""
        if run is not None:
            self.done[run.id] = min(epochs / max(run.config.epochs, 1), 1.0)
        self.progress.update(self.overall, completed=self.ended + sum(self.done.values()))
