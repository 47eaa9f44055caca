"""A run taken from a training process (issue 22, issue 19 item 2): the recorder drops it with
one line and the executor stops training it (sequential, a fused group, a Ray task); the
heartbeat thread finds taken runs; the study's lease and file-system options."""

import io
import logging
import time
from types import SimpleNamespace

import pytest
from lease_helpers import STUDY, make_store, set_columns, take
from rich.console import Console

import odenet.training
from odenet.errors import LeaseLost
from odenet.studies.executors import SequentialExecutor
from odenet.studies.executors.events import CheckpointDue, EpochEnded, RunReleased, StepTaken
from odenet.studies.heartbeat import Heartbeat
from odenet.studies.live import LiveView
from odenet.studies.progress import StudyProgress
from odenet.studies.runner import Observers, Recorder, StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import Lease, Store
from odenet.training import EpochMetrics, TrainConfig, TrainResult


# ---- the recorder and the heartbeat -------------------------------------------------------
def _fake_train(taken: dict):
    """Two epochs of two steps; before epoch 2 of the run named in ``taken``, another process
    takes it (``taken["run"]``)."""

    def train(config, *, out_dir, dataset, callbacks, execution):
        history = []
        for epoch in (1, 2):
            if out_dir.name == taken.get("run") and epoch == 2:
                take(taken["store"], out_dir.name)
            callbacks.on_epoch_start(epoch, 2)
            callbacks.on_step(epoch, 2, 0.5)
            m = EpochMetrics(epoch, 1.0 / epoch, 0.5, 1.0, 0.4, config.lr, 0.1, 1e3)
            history.append(m)
            callbacks.on_epoch_end(m)
        return TrainResult.from_history(history, diverged=None, partial_seconds=0.0, params=1,
                                        extra_params=0, device="cpu", provenance={})  # fmt: skip

    return train


class Taken(StudyObserver):
    def __init__(self):
        self.taken, self.ended = [], []

    def on_run_taken(self, run):
        self.taken.append(run.id)

    def on_run_end(self, run):
        self.ended.append(run.id)


def test_a_run_taken_mid_training_stops_there_and_the_study_goes_on(tmp_path, monkeypatch, caplog):
    store = make_store(tmp_path)
    victim = store.runs()[1].id
    monkeypatch.setattr(odenet.training, "train", _fake_train({"run": victim, "store": store}))
    observer = Taken()
    with caplog.at_level(logging.WARNING, logger="odenet.studies"):
        run_pending(store, SequentialExecutor(dataset=SimpleNamespace(name="synthetic")),
                    observer, wait=False)  # fmt: skip
    assert observer.taken == [victim] and victim not in observer.ended
    assert store.counts() == {"pending": 0, "running": 1, "done": 3, "diverged": 0, "failed": 0}
    assert [m["epoch"] for m in store.epochs(victim)] == [1]  # epoch 2 not recorded here
    assert store.holders()[victim].host == "elsewhere"  # left to the process that took it
    (line,) = [r.getMessage() for r in caplog.records if victim in r.getMessage()]
    assert line == (
        f"run '{victim}' was taken from this process (held by pid 4242 on host elsewhere (pid "
        "namespace 4026532999), last heartbeat 0 s ago); stopped training it here without "
        "writing its results"
    )


def test_the_heartbeat_renews_leases_and_reports_taken_runs(tmp_path):
    store = make_store(tmp_path)
    recorder = Recorder(store, StudyObserver())
    lease = Lease.new()
    a, b = recorder.track(store.claim(2, "sequential", lease=lease), lease)
    set_columns(store, a.id, heartbeat=0.0)
    set_columns(store, b.id, heartbeat=0.0)
    with Heartbeat(store, recorder.leases, interval=0.05):
        _wait(lambda: min(h.heartbeat for h in store.holders().values()) > 0)
        take(store, a.id)
        _wait(lambda: recorder.leases.lost(a.id))
        with pytest.raises(LeaseLost, match="held by pid 4242"):
            recorder.record(StepTaken(a.id, 1, 1, 0.5))  # a cheap event: the heartbeat's word
    assert a.id in recorder.taken and a.id not in recorder.active
    with pytest.raises(LeaseLost):  # anything later about it: the executor is stopping it
        recorder.record(EpochEnded(a.id, {"epoch": 1}))
    recorder.record(RunReleased(a.id))  # given back by a stopping group: nothing to do
    recorder.record(StepTaken(b.id, 1, 1, 0.5))
    assert list(recorder.active) == [b.id] and recorder.leases.tokens() == {b.id: lease.token}


def test_before_a_checkpoint_the_store_is_asked_only_after_half_the_grace(tmp_path, monkeypatch):
    """Within half its grace period of its last confirmation no process can have taken a lease
    (that needs a heartbeat older than the grace): the check before a checkpoint costs no store
    transaction then. Later (this process may have been paused) it asks the store."""
    store = make_store(tmp_path)
    recorder = Recorder(store, StudyObserver())
    lease = Lease.new(grace=1.0)
    (run,) = recorder.track(store.claim(1, "sequential", lease=lease), lease)
    asked = []
    hold = store.hold
    monkeypatch.setattr(store, "hold", lambda *a: asked.append(a) or hold(*a))
    recorder.record(CheckpointDue(run.id, 1))
    assert asked == []
    time.sleep(0.5)
    recorder.record(CheckpointDue(run.id, 2))
    assert asked == [(run.id, lease.token)]
    recorder.record(CheckpointDue(run.id, 3))  # just confirmed
    assert len(asked) == 1
    time.sleep(0.5)
    take(store, run.id)  # (only possible after a pause: here, by hand)
    with pytest.raises(LeaseLost, match="held by pid 4242"):
        recorder.record(CheckpointDue(run.id, 4))
    assert recorder.active == {}


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# ---- executors stop what was taken ---------------------------------------------------------
def _result(history) -> TrainResult:
    return TrainResult.from_history(history, diverged=None, partial_seconds=0.0, params=1,
                                    extra_params=0, device="cpu", provenance={})  # fmt: skip


def test_a_fused_group_with_a_taken_member_stops_and_gives_the_others_back(tmp_path, monkeypatch):
    import odenet.training.fused
    from odenet.studies.executors import FusedExecutor

    spec = StudySpec(base=TrainConfig(epochs=2, dataset="synthetic"), orders=(1,), depths=(8,),
                     lrs=(0.1, 0.2, 0.4))  # fmt: skip
    store = Store.create(tmp_path, spec, {})
    a, victim, c = (r.id for r in store.runs())
    groups = []

    def fused(configs, *, out_dirs, dataset, callbacks, execution):
        groups.append([d.name for d in out_dirs])
        histories = [[] for _ in configs]
        for epoch in (1, 2):
            if epoch == 2 and len(groups) == 1:
                take(store, victim)
            for config, cb, history in zip(configs, callbacks, histories):
                history.append(EpochMetrics(epoch, 1.0, 0.5, 1.0, 0.4, config.lr, 0.1, 1e3))
                cb.on_epoch_end(history[-1])  # the victim's epoch 2 raises LeaseLost
        return [_result(h) for h in histories]

    monkeypatch.setattr(odenet.training.fused, "train_fused", fused)
    executor = FusedExecutor(8, dataset=SimpleNamespace(name="synthetic"))
    run_pending(store, executor, Taken(), wait=False)
    assert groups == [[a, victim, c], [a, c]]  # stopped at the victim; the others claimed again
    runs = {r.id: r for r in store.runs()}
    assert runs[a].status == runs[c].status == "done" and runs[victim].status == "running"
    assert store.holders()[victim].host == "elsewhere"
    assert [m["epoch"] for m in store.epochs(victim)] == [1]


def test_a_ray_task_whose_run_was_taken_is_cancelled_and_its_other_runs_given_back(tmp_path):
    from odenet.studies.executors.events import RunStarted
    from odenet.studies.executors.ray import RayConfig
    from odenet.studies.executors.ray.executor import RayExecutor, Task
    from odenet.studies.executors.ray.messages import WorkerSettings

    class FakeRay:  # what RayExecutor uses of ray, without a cluster
        cancelled: list = []

        def remote(self, fn):
            return SimpleNamespace(options=lambda **kw: None)

        def cancel(self, ref, force):
            self.cancelled.append((ref, force))

    ray = FakeRay()
    executor = RayExecutor(ray, RayConfig(), 0, 1, WorkerSettings("fused", "cpu", 8, None))
    store = make_store(tmp_path)
    recorder = Recorder(store, Taken())
    lease = Lease.new()
    a, b = recorder.track(store.claim(2, "ray", lease=lease), lease)
    task = Task({a.id: a, b.id: b}, tries=1, ref="task-ref")
    executor._tasks.add(task)
    take(store, a.id)
    epoch = {"epoch": 1, "test_acc": 0.5}
    batch = [RunStarted(a.id), RunStarted(b.id), EpochEnded(a.id, epoch), EpochEnded(b.id, epoch)]
    executor._inbox.put((task, batch))
    executor.poll(recorder.record, timeout=1.0)
    assert ray.cancelled == [("task-ref", True)] and not executor.busy()
    assert store.run(b.id).status == "pending" and store.epochs(b.id) == []
    assert store.holders().keys() == {a.id} and recorder.active == {}
    executor._inbox.put((task, [EpochEnded(b.id, epoch)]))  # a late item of the cancelled task
    executor.poll(recorder.record, timeout=1.0)
    assert store.epochs() == []


# ---- the command line ----------------------------------------------------------------------
@pytest.mark.parametrize("value", ["0", "0.5", "nan", "inf", "-3"])
def test_bad_lease_grace_is_one_line_exit_2_nothing_written(tmp_path, run_cli, value):
    code, _, err = run_cli([*STUDY, "--out", str(tmp_path / "D"), f"--lease-grace={value}"])
    assert code == 2 and err.startswith("error: --lease-grace must be a finite number of seconds")
    assert len(err.splitlines()) == 1 and not (tmp_path / "D").exists()


def test_a_network_file_system_is_refused_unless_allowed(tmp_path, run_cli, monkeypatch):
    from odenet.studies.store import volumes

    assert volumes.network_filesystem(tmp_path / "not" / "yet") is None  # a local disk here
    monkeypatch.setattr(volumes, "statfs_type", lambda path: 0x6969)  # NFS_SUPER_MAGIC
    assert volumes.network_filesystem(tmp_path / "D") == "nfs"
    code, _, err = run_cli([*STUDY, "--out", str(tmp_path / "D")])
    assert code == 2 and len(err.splitlines()) == 1 and not (tmp_path / "D").exists()
    assert err.startswith(f"error: --out '{tmp_path / 'D'}' is on a network file system (nfs)")
    assert "--executor ray" in err and "--allow-network-fs" in err
    code, _, err = run_cli([*STUDY, "--out", str(tmp_path / "D"), "--allow-network-fs"])
    assert code == 0, err
    assert Store.open(tmp_path / "D").counts()["done"] == 1


def test_the_displays_drop_a_taken_run_and_name_the_holders_waited_for(tmp_path):
    store = make_store(tmp_path)
    runs = store.runs()
    progress = StudyProgress()
    buf = io.StringIO()
    view = LiveView(Console(file=buf, force_terminal=True, width=200), progress)
    observers = Observers(progress, view)
    observers.on_study_start(runs)
    observers.on_run_start(runs[0])
    assert [p.id for p in progress.in_flight()] == [runs[0].id]
    observers.on_run_taken(runs[0])
    assert progress.in_flight() == [] and progress.ended == 0  # not ended here
    take(store, runs[1].id)
    observers.on_wait(store.running_elsewhere())
    observers.on_wait(store.running_elsewhere())
    observers.on_study_end()
    text = buf.getvalue()
    line = f"waiting for runs held by other processes: {runs[1].id} (pid 4242 on host elsewhere"
    assert text.count(line) == 1
