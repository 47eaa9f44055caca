"""Watching a study run: a live display on a terminal, plain lines otherwise.

``make_observer(quiet, console)`` picks: nothing (quiet); on a terminal a ``LiveView`` (runs
ended / total with the counts of done, diverged and failed, elapsed time, ETA, and a row per
run in flight: its epoch, step / steps and last loss); otherwise (a pipe, a log file, CI,
Slurm) a ``LineLog``: a line per run start and end, and every ``summary_s`` seconds one line
with the counts and the ETA, without control codes. Both read a ``StudyProgress``
(odenet.studies.progress), which the returned observer updates first.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.console import Console, Group
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from odenet.studies.progress import StudyProgress, clock_time
from odenet.studies.robustness import POINT
from odenet.studies.runner import Observers, StudyObserver
from odenet.studies.store import Holder, RunRecord
from odenet.studies.store.leases import wall_clock

SUMMARY_S = 60.0  # seconds between the line log's summary lines


def make_observer(quiet: bool, console: Console | None = None) -> StudyObserver:
    """No output when quiet; a live view on a terminal; plain lines otherwise."""
    console = console or Console(stderr=True)
    if quiet:
        return StudyObserver()
    progress = StudyProgress()
    view = LiveView(console, progress) if console.is_terminal else LineLog(console, progress)
    return Observers(progress, view)


def _holders(running: Mapping[str, Holder]) -> str:
    """'RUN (pid P on host H (pid namespace N), last heartbeat S s ago), ...'."""
    t = wall_clock()
    return ", ".join(f"{i} ({h.describe(t)})" for i, h in running.items())


def _describe(run: RunRecord) -> str:
    """'ID: done after 2 epochs test_acc 60.00%' (a failed run: its error)."""
    acc = "" if run.test_acc is None else f" test_acc {run.test_acc / POINT:.2f}%"
    extra = f" ({run.error})" if run.status == "failed" and run.error else ""
    epochs = f"{run.epochs_done} epoch{'' if run.epochs_done == 1 else 's'}"
    return f"{run.id}: {run.status} after {epochs}{acc}{extra}"


class LineLog(StudyObserver):
    """One line when the study starts, per run start and end, when waiting for others, a
    summary (counts, elapsed, ETA) every ``summary_s`` seconds and one when the study ends.

    A fused executor starts several runs at once: each start line counts the runs started so
    far, each end line the runs ended so far. Reads ``progress`` (updated before this).
    """

    def __init__(
        self, console: Console, progress: StudyProgress, summary_s: float = SUMMARY_S
    ) -> None:
        self.console, self.progress, self.summary_s = console, progress, summary_s
        self.started = 0
        self._waiting = False
        self._said = 0.0  # elapsed seconds at the last summary

    def _say(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False, soft_wrap=True)

    def on_study_start(self, runs: list[RunRecord]) -> None:
        self.started = self.progress.ended
        self._say(f"study: {len(runs)} runs, {self.progress.ended} already finished")

    def on_run_start(self, run: RunRecord) -> None:
        self._waiting = False
        self.started += 1
        self._say(f"[{self.started}/{self.progress.total}] {run.id}: started")

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        self._maybe_summary()

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        self._maybe_summary()

    def on_run_end(self, run: RunRecord) -> None:
        self._say(f"[{self.progress.ended}/{self.progress.total}] {_describe(run)}")
        self._maybe_summary()

    def on_wait(self, running: Mapping[str, Holder]) -> None:
        if not self._waiting:
            self._say(f"waiting for runs held by other processes: {_holders(running)}")
        self._waiting = True

    def on_study_end(self) -> None:
        self._say(f"progress: {self.progress.summary()}")

    def _maybe_summary(self) -> None:
        elapsed = self.progress.elapsed()
        if elapsed - self._said >= self.summary_s:
            self._said = elapsed
            self._say(f"progress: {self.progress.summary()}")


class LiveView(StudyObserver):
    """A rich Live display, redrawn a few times a second from ``progress``: a header line
    (runs ended / total, done, diverged, failed, elapsed, ETA), a bar (runs ended plus each
    running run's fraction) and a row per run in flight (several with a fused group or Ray).
    Each run's end is printed above it as a line."""

    def __init__(self, console: Console, progress: StudyProgress) -> None:
        self.progress = progress
        self.waiting = 0  # runs held by other processes, while waiting for them
        self.live = Live(
            console=console, get_renderable=self.render, refresh_per_second=4, transient=False
        )

    def on_study_start(self, runs: list[RunRecord]) -> None:
        self.live.start()

    def on_run_start(self, run: RunRecord) -> None:
        self.waiting = 0

    def on_run_end(self, run: RunRecord) -> None:
        self.live.console.print(_describe(run), markup=False, highlight=False)

    def on_wait(self, running: Mapping[str, Holder]) -> None:
        if not self.waiting:  # who holds them, once per wait
            text = f"waiting for runs held by other processes: {_holders(running)}"
            self.live.console.print(text, markup=False, highlight=False)
        self.waiting = len(running)

    def on_study_end(self) -> None:
        self.live.stop()

    def render(self) -> Group:
        """The display as it stands."""
        p = self.progress
        with p.lock:
            counts = ", ".join(f"{n} {s}" for s, n in p.counts.items())
            header = Text.assemble(
                ("study ", "bold"),
                f"{p.ended}/{p.total} runs ({counts})  elapsed {clock_time(p.elapsed())}  ",
                ("ETA ", "bold"),
                clock_time(p.eta()),
            )
            if self.waiting:
                header.append(f"  waiting for {self.waiting} run(s) elsewhere")
            done = p.fraction()
            bar = Table.grid(padding=(0, 1))  # a bar alone would not end its line
            bar.add_row(ProgressBar(total=1.0, completed=done, width=50), f"{done:4.0%}")
            rows = Table.grid(padding=(0, 2))
            for run in p.in_flight():
                steps = f"step {run.step}" + (f"/{run.steps}" if run.steps else "")
                loss = "" if run.loss is None else f"loss {run.loss:.4f}"
                rows.add_row(run.id, f"epoch {run.epoch}/{run.epochs}", steps, loss)
        return Group(header, bar, rows)
