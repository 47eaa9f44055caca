"""The runner and executor with a stand-in for odenet.training.train: failures are recorded
and the study goes on, Ctrl-C gives the run back, the live view and line log follow along."""

import dataclasses
import io
import re
from types import SimpleNamespace

import pytest
from rich.console import Console

import odenet.training
from odenet.studies.executors import SequentialExecutor
from odenet.studies.live import LineLog, LiveView, make_observer
from odenet.studies.progress import StudyProgress
from odenet.studies.runner import Observers, StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import Holder, Store
from odenet.studies.store.leases import wall_clock
from odenet.training import EpochMetrics, TrainConfig, TrainResult

SPEC = StudySpec(
    base=TrainConfig(epochs=2, dataset="synthetic"),
    orders=(1, 2),
    depths=(8,),
    lrs=(0.1, 0.4),
)


def fake_train(config, *, out_dir, dataset, callbacks, execution):
    """Two epochs of three steps; heun at lr 0.4 raises; euler at 0.4 diverges in epoch 2."""
    assert dataset.name == config.dataset and out_dir.name.startswith("d8-")
    if (config.model.solver, config.lr) == ("heun", 0.4):
        raise RuntimeError("boom")
    history = []
    for epoch in (1, 2):
        callbacks.on_epoch_start(epoch, 3)
        for step in (1, 2, 3):
            callbacks.on_step(epoch, step, 1.0 / step)
        if (config.model.solver, config.lr, epoch) == ("euler", 0.4, 2):
            break
        m = EpochMetrics(epoch, 1.0 / epoch, 0.5, 1.0, 0.4 + 0.1 * epoch, config.lr, 0.1, 1e3)
        history.append(m)
        callbacks.on_epoch_end(m)
    status = "done" if len(history) == 2 else "diverged"
    last = history[-1]
    return TrainResult(
        status=status,
        epochs_done=len(history),
        diverged_epoch=None if status == "done" else 2,
        diverged_step=None if status == "done" else 3,
        history=history,
        test_acc=last.test_acc,
        best_test_acc=last.test_acc,
        train_loss=last.train_loss,
        params=100,
        extra_params=0,
        seconds=0.2,
        device="cpu",
        provenance={"seed": config.seed, "execution": execution},
    )


class Recorder(StudyObserver):
    def __init__(self):
        self.events = []

    def on_study_start(self, runs):
        finished = sum(r.status in ("done", "diverged") for r in runs)
        self.events.append(("start", len(runs), finished))

    def on_run_end(self, run):
        self.events.append((run.id, run.status))


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setattr(odenet.training, "train", fake_train)
    return Store.create(tmp_path, SPEC, {})


def _executor():
    return SequentialExecutor(dataset=SimpleNamespace(name="synthetic"))


def test_failures_are_recorded_and_the_study_goes_on(store):
    rec = Recorder()
    run_pending(store, _executor(), rec)
    assert rec.events == [
        ("start", 4, 0),
        ("d8-euler-lr0.1-s0", "done"),
        ("d8-euler-lr0.4-s0", "diverged"),
        ("d8-heun-lr0.1-s0", "done"),
        ("d8-heun-lr0.4-s0", "failed"),
    ]
    failed = store.run("d8-heun-lr0.4-s0")
    assert failed.error.startswith("RuntimeError: boom (at test_studies_runner.py:")
    div = store.run("d8-euler-lr0.4-s0")
    assert (div.diverged_epoch, div.epochs_done, div.test_acc) == (2, 1, pytest.approx(0.5))
    assert [m["epoch"] for m in store.epochs("d8-euler-lr0.1-s0")] == [1, 2]
    # a re-run retries the failed run only
    rec = Recorder()
    run_pending(store, _executor(), rec)
    assert rec.events == [("start", 4, 3), ("d8-heun-lr0.4-s0", "failed")]
    run_pending(store, _executor(), rec, retry_failed=False)
    assert store.counts() == {"pending": 0, "running": 0, "done": 2, "diverged": 1, "failed": 1}


def test_keyboard_interrupt_gives_the_run_back(store, monkeypatch):
    def interrupted(config, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(odenet.training, "train", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_pending(store, _executor(), StudyObserver())
    assert store.counts()["pending"] == 4


def test_live_view_and_line_log_follow_a_study(store):
    buf = io.StringIO()
    console = Console(file=buf, force_terminal=True, width=120)
    assert isinstance(make_observer(False, console).observers[1], LiveView)
    assert type(make_observer(True, console)) is StudyObserver
    run_pending(store, _executor(), make_observer(False, console))
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", buf.getvalue())  # no ANSI codes
    assert "d8-heun-lr0.4-s0: failed after 0 epochs (RuntimeError: boom" in text
    assert "d8-euler-lr0.1-s0: done after 2 epochs test_acc 60.00%" in text
    assert "4/4 runs (2 done, 1 diverged, 1 failed)" in text and "ETA" in text
    buf = io.StringIO()
    plain = Console(file=buf, force_terminal=False)
    assert isinstance(make_observer(False, plain).observers[1], LineLog)
    store.retry_failed()
    run_pending(store, _executor(), make_observer(False, plain))
    lines = buf.getvalue().splitlines()
    assert lines[:2] == ["study: 4 runs, 3 already finished", "[4/4] d8-heun-lr0.4-s0: started"]
    assert lines[2].startswith("[4/4] d8-heun-lr0.4-s0: failed after 0 epochs (RuntimeError")
    assert re.fullmatch(
        r"progress: 4/4 runs \(2 done, 1 diverged, 1 failed\), 0 running, "
        r"elapsed 0:00:0\d, ETA -:--:--",  # the fake runs log no step: no rate to measure
        lines[3],
    )
    assert len(lines) == 4 and "\x1b" not in buf.getvalue()


def test_waits_for_runs_held_by_a_live_process_then_takes_them_over(store):
    import subprocess
    import sys

    from odenet.studies.store import process_identity

    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(1.5)"])
    (held,) = store.claim(1, "sequential")
    with store.connect() as con:
        owner = process_identity(holder.pid)  # the holder is that process, not just its pid
        con.execute("UPDATE runs SET pid = ?, owner = ? WHERE id = ?", (holder.pid, owner, held))
    run_pending(store, _executor(), StudyObserver(), wait=False)
    assert store.run(held).status == "running"  # not waited for, not touched
    waits = []

    class Waiting(StudyObserver):
        def on_wait(self, running):
            waits.append(tuple(running))

    run_pending(store, _executor(), Waiting(), wait=True, poll_s=0.05)
    holder.wait()
    assert waits and set(waits) == {(held,)}
    assert store.run(held).status == "done"  # reclaimed once its holder died, then trained
    with store.connect() as con:
        assert con.execute("SELECT attempts FROM runs WHERE id = ?", (held,)).fetchone()[0] == 2


def test_live_view_follows_runs_trained_at_once(store):
    """A fused group: one row per running run with its epoch, step and loss; the bar counts
    the ended runs plus each running run's fraction (2 epochs each here)."""
    progress = StudyProgress()
    view = LiveView(Console(file=io.StringIO(), force_terminal=True, width=120), progress)
    observer = Observers(progress, view)
    a, b = store.runs()[:2]
    observer.on_study_start(store.runs())
    for run in (a, b):
        observer.on_run_start(run)
        observer.on_epoch_start(run, 1, 4)
    observer.on_step(a, 1, 2, 1.5)
    observer.on_step(b, 1, 2, 2.5)
    assert progress.fraction() == pytest.approx((0.25 + 0.25) / 4)
    text = _shown(view)
    assert f"{a.id}  epoch 1/2  step 2/4  loss 1.5000" in text
    assert f"{b.id}  epoch 1/2  step 2/4  loss 2.5000" in text
    metrics = {"epoch": 1, "test_acc": 0.5}
    observer.on_epoch_end(a, metrics)
    observer.on_epoch_end(b, metrics)
    observer.on_run_end(dataclasses.replace(store.run(a.id), status="done"))
    text = _shown(view)
    assert a.id not in text.split("ETA")[1] and f"{b.id}  epoch 2/2  step 0/4" in text
    assert "1/4 runs (1 done, 0 diverged, 0 failed)" in text
    assert progress.fraction() == pytest.approx((1 + 0.5) / 4)
    observer.on_study_end()


def _shown(view: LiveView) -> str:
    out = Console(file=io.StringIO(), width=120, force_terminal=False)
    out.print(view.render())
    return out.file.getvalue()


def test_line_log_counts_runs_started_at_once_and_waits_once(store):
    buf = io.StringIO()
    progress = StudyProgress()
    log = Observers(progress, LineLog(Console(file=buf, force_terminal=False), progress))
    runs = store.runs()
    runs[0] = dataclasses.replace(runs[0], status="done")
    a, b = runs[1:3]
    log.on_study_start(runs)
    log.on_run_start(a)
    log.on_run_start(b)
    held = {"x": Holder("h", 7, "boot:12", "4026532175", wall_clock() - 3.2, 60.0)}
    log.on_wait(held)
    log.on_wait(held)
    assert buf.getvalue().splitlines() == [
        "study: 4 runs, 1 already finished",
        f"[2/4] {a.id}: started",
        f"[3/4] {b.id}: started",
        "waiting for runs held by other processes: x (pid 7 on host h (pid namespace "
        "4026532175), last heartbeat 3 s ago)",
    ]
