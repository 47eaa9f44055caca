"""The study's progress (counts, ETA from measured steps) and how it is shown: a live display
with ETA on a pseudo-terminal, plain lines with a periodic summary and no control codes in a
pipe."""

import dataclasses
import io
import os
import shlex
import shutil
import subprocess
import sys

import pytest
from rich.console import Console

from odenet.nets import ModelConfig
from odenet.studies import Store, StudySpec
from odenet.studies.live import LineLog
from odenet.studies.progress import StudyProgress, clock_time
from odenet.studies.runner import Observers
from odenet.training import TrainConfig

# two sizes of run: 1 and 3 epochs
SPEC = StudySpec(
    base=TrainConfig(dataset="synthetic", model=ModelConfig(width=4)),
    orders=(1,),
    depths=(8,),
    lrs=(0.1,),
    seeds=(0, 1),
    sweep={"epochs": (1, 3)},
)


class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


@pytest.fixture
def runs(tmp_path):
    return Store.create(tmp_path, SPEC, {}).runs()  # epochs 1 (s0, s1), then 3 (s0, s1)


def _epoch(progress, run, epoch, steps, clock, seconds):
    progress.on_epoch_start(run, epoch, steps)
    clock.now += seconds
    progress.on_step(run, epoch, steps, 0.5)
    progress.on_epoch_end(run, {"epoch": epoch})


def test_eta_is_the_steps_left_at_the_measured_rate(runs):
    """Runs weigh their steps: after one 1-epoch run of 10 steps in 20 s (2 s a step), the
    left runs hold 10 + 30 + 30 steps: 140 s."""
    clock = Clock()
    progress = StudyProgress(clock)
    progress.on_study_start(runs)
    assert progress.eta() is None  # nothing measured yet
    assert progress.summary().endswith("ETA -:--:--")
    first = runs[0]
    assert first.config.epochs == 1
    progress.on_run_start(first)
    _epoch(progress, first, 1, 10, clock, 20.0)
    progress.on_run_end(dataclasses.replace(first, status="done"))
    assert progress.eta() == pytest.approx(140.0)
    # half of a 3-epoch run's first epoch in 5 s more: 15 steps in 25 s; 65 left
    long = runs[2]
    progress.on_run_start(long)
    progress.on_epoch_start(long, 1, 10)
    clock.now += 5.0
    progress.on_step(long, 1, 5, 0.7)
    assert progress.eta() == pytest.approx(65 / (15 / 25))
    assert progress.fraction() == pytest.approx((1 + 5 / 30) / 4)
    assert progress.summary() == (
        "1/4 runs (1 done, 0 diverged, 0 failed), 1 running, elapsed 0:00:25, "
        f"ETA {clock_time(65 / (15 / 25))}"
    )


def test_a_resume_counts_finished_runs_as_done_and_its_own_steps_only(runs):
    """A run finished before counts as done; a run resumed at epoch 2 of 3 has done 10 of its
    30 steps before: this session's rate counts only the steps it takes."""
    clock = Clock()
    runs = [
        dataclasses.replace(runs[0], status="done", epochs_done=1),
        dataclasses.replace(runs[1], status="diverged", epochs_done=0),
        dataclasses.replace(runs[2], status="pending", epochs_done=1),
        runs[3],
    ]
    progress = StudyProgress(clock)
    progress.on_study_start(runs)
    assert progress.counts == {"done": 1, "diverged": 1, "failed": 0}
    resumed = runs[2]
    progress.on_run_start(resumed)
    _epoch(progress, resumed, 2, 10, clock, 10.0)  # 10 steps in 10 s
    # left: 10 of the resumed run, 30 of the last one (same batch and subset: 10 an epoch)
    assert progress.eta() == pytest.approx(40.0)
    progress.on_run_end(dataclasses.replace(resumed, status="failed"))
    assert progress.counts == {"done": 1, "diverged": 1, "failed": 1}
    assert progress.eta() == pytest.approx(30.0)


def test_line_log_says_a_summary_every_period_and_at_the_end(runs):
    clock = Clock()
    progress = StudyProgress(clock)
    buf = io.StringIO()
    log = Observers(progress, LineLog(Console(file=buf, force_terminal=False), progress, 30.0))
    log.on_study_start(runs)
    run = runs[0]
    log.on_run_start(run)
    log.on_epoch_start(run, 1, 10)
    clock.now += 20.0
    log.on_step(run, 1, 5, 0.5)  # 20 s: no summary yet
    clock.now += 20.0
    log.on_step(run, 1, 10, 0.5)  # 40 s: 10 steps, 70 left at 0.25 steps/s
    log.on_step(run, 1, 10, 0.5)  # said already
    log.on_epoch_end(run, {"epoch": 1})
    log.on_run_end(dataclasses.replace(run, status="done", epochs_done=1))
    log.on_study_end()
    lines = buf.getvalue().splitlines()
    assert lines == [
        "study: 4 runs, 0 already finished",
        f"[1/4] {run.id}: started",
        "progress: 0/4 runs (0 done, 0 diverged, 0 failed), 1 running, elapsed 0:00:40, "
        "ETA 0:04:40",
        f"[1/4] {run.id}: done after 1 epoch",
        "progress: 1/4 runs (1 done, 0 diverged, 0 failed), 0 running, elapsed 0:00:40, "
        "ETA 0:04:40",
    ]


def _study_command(out) -> list[str]:
    return [
        sys.executable, "-m", "odenet", "study", "--dataset", "synthetic:train=256,test=32,size=8",
        "--depths", "8", "--orders", "1,2", "--lrs", "0.1", "--epochs", "2", "--width", "4",
        "--batch-size", "32", "--out", str(out),
    ]  # fmt: skip


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) for a pty")
def test_on_a_pseudo_terminal_the_display_shows_eta(tmp_path):
    log = tmp_path / "log"
    command = shlex.join(_study_command(tmp_path / "study"))
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm-256color"}
    done = subprocess.run(
        ["script", "-qec", command, str(log)], env=env, capture_output=True, timeout=300
    )
    assert done.returncode == 0, log.read_text(errors="replace")
    text = log.read_text(errors="replace")
    assert "\x1b[" in text  # a live display: cursor movements and colours
    assert "ETA" in text and "2/2 runs (2 done, 0 diverged, 0 failed)" in text


def test_piped_output_has_plain_lines_without_escape_codes(tmp_path):
    done = subprocess.run(
        _study_command(tmp_path / "study"), capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout + done.stderr
    lines = done.stderr.splitlines()
    assert lines[0] == "study: 2 runs, 0 already finished"
    assert lines[-1].startswith("progress: 2/2 runs (2 done, 0 diverged, 0 failed), 0 running")
    assert "ETA" in lines[-1]
