"""Leases (issue 22): a run's holder is judged by its pid only where that pid means the same
process (same host, boot and PID namespace), by its heartbeat everywhere else; writes under a
lease that was taken fail and stop the run; reset refuses a live holder anywhere."""

import logging
import os
import sqlite3
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest

import odenet.training
from odenet.errors import ConfigError, LeaseLost
from odenet.studies.executors import SequentialExecutor
from odenet.studies.executors.events import EpochEnded, RunReleased, StepTaken
from odenet.studies.heartbeat import Heartbeat
from odenet.studies.runner import Recorder, StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import Holder, Lease, Owner, Store, process_identity
from odenet.studies.store.leases import check_grace, heartbeat_interval, wall_clock
from odenet.training import EpochMetrics, TrainConfig, TrainResult

SPEC = StudySpec(base=TrainConfig(epochs=2, dataset="synthetic"), orders=(1, 2), depths=(8,),
                 lrs=(0.1, 0.4))  # fmt: skip
OTHER_NS = "4026532999"  # a PID namespace this process is not in


def _store(path):
    return Store.create(path, SPEC, {})


def _set(store, run_id, **columns):
    sets = ", ".join(f"{k} = ?" for k in columns)
    with store.connect() as con:
        con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*columns.values(), run_id))


def _dead_process() -> tuple[int, str]:
    """The pid and identity of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    return child.pid, identity


def _take(store, run_id, token="thief", host="elsewhere", pid=4242):
    """Another process (on another host) claims ``run_id`` now."""
    _set(store, run_id, status="running", lease=token, host=host, pid=pid, owner="b:1",
         pidns=OTHER_NS, heartbeat=wall_clock(), grace=60.0)  # fmt: skip


# ---- who holds a run -----------------------------------------------------------------------
def test_a_claim_records_its_holder_and_lease(tmp_path):
    store = _store(tmp_path)
    lease = Lease.new(30.0)
    before = wall_clock()
    (rid,) = store.claim(1, "sequential", lease=lease)
    holder = store.holders()[rid]
    me = Owner.me()
    ns = os.readlink("/proc/self/ns/pid").split("[")[1].rstrip("]")
    assert (holder.host, holder.pid, holder.identity, holder.pidns, holder.grace) == (
        me.host, os.getpid(), process_identity(os.getpid()), ns, 30.0,
    )  # fmt: skip
    assert before <= holder.heartbeat <= wall_clock()
    with store.connect() as con:
        assert con.execute("SELECT lease FROM runs WHERE id = ?", (rid,)).fetchone()[0] == (
            lease.token
        )
    assert holder.alive(me, wall_clock()) and store.running_elsewhere() == {}
    assert store.reclaim_dead() == []


def test_a_dead_holder_here_is_reclaimed_at_once_despite_a_fresh_heartbeat(tmp_path):
    """The fast path: same host, boot and namespace, pid gone -> no waiting for the grace."""
    store = _store(tmp_path)
    a, b = store.claim(2, "sequential")
    pid, identity = _dead_process()
    _set(store, a, pid=pid, owner=identity)  # heartbeat just written: fresh
    assert store.reclaim_dead() == [a]  # b is this live process's
    assert store.run(a).status == "pending" and store.run(b).status == "running"
    assert store.holders().keys() == {b}


def test_a_pid_in_another_namespace_is_judged_by_its_heartbeat_only(tmp_path):
    """A container's PID 1 (or any pid of another namespace) is not this namespace's pid 1:
    dead or alive here says nothing; the heartbeat and the holder's grace decide."""
    store = _store(tmp_path)
    a, b = store.claim(2, "sequential")
    pid, identity = _dead_process()
    _set(store, a, pid=pid, owner=identity, pidns=OTHER_NS, grace=5.0)
    _set(store, b, pid=1, owner="x:1", pidns=OTHER_NS, grace=5.0)  # pid 1 lives here
    assert store.reclaim_dead() == [] and store.running_elsewhere().keys() == {a, b}
    _set(store, a, heartbeat=wall_clock() - 4.0)  # within its grace: still its
    assert store.reclaim_dead() == []
    _set(store, a, heartbeat=wall_clock() - 6.0)
    _set(store, b, heartbeat=wall_clock() - 6.0)
    assert sorted(store.reclaim_dead()) == sorted([a, b])


@pytest.mark.parametrize("where", ["host", "boot"])
def test_another_host_or_boot_is_judged_by_its_heartbeat(tmp_path, where):
    store = _store(tmp_path)
    (a,) = store.claim(1, "sequential")
    pid, identity = _dead_process()
    if where == "host":
        _set(store, a, host="elsewhere", pid=pid, owner=identity)
    else:  # same host and namespace, an earlier boot: its pid means nothing now either
        _set(store, a, pid=pid, owner="another-boot:" + identity.split(":")[1])
    assert store.reclaim_dead() == [] and list(store.running_elsewhere()) == [a]
    _set(store, a, heartbeat=wall_clock() - 61.0)  # default grace: 60 s
    assert store.reclaim_dead() == [a]


def test_claims_from_before_leases(tmp_path):
    """No heartbeat: on this host the pid decides as it did; from another host the claim
    counts as expired (no process of this version holds it; it was never reclaimed before)."""
    store = _store(tmp_path)
    a, b, c = store.claim(3, "sequential")
    pid, _ = _dead_process()
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        no_lease = {"pidns": None, "lease": None, "heartbeat": None, "grace": None}
        _set(store, a, pid=pid, owner=None, **no_lease)
        _set(store, b, pid=holder.pid, owner=process_identity(holder.pid), **no_lease)
        _set(store, c, host="elsewhere", pid=holder.pid, owner=None, **no_lease)
        assert "no heartbeat" in store.running_elsewhere()[b].describe(wall_clock())
        assert sorted(store.reclaim_dead()) == sorted([a, c])
        assert store.holders().keys() == {b}
    finally:
        holder.kill()
        holder.wait()
    assert store.reclaim_dead() == [b]


def test_the_grace_period_is_checked_and_sets_the_interval():
    assert check_grace(60) == 60.0 and heartbeat_interval(60.0) == 10.0
    assert heartbeat_interval(4.0) == 1.0
    for bad in (0, 0.5, float("nan"), float("inf"), True, "60"):
        with pytest.raises(ConfigError, match="--lease-grace must be a finite number"):
            check_grace(bad)


# ---- writes under a lease ------------------------------------------------------------------
def test_writes_under_a_lease_that_was_taken_fail_and_write_nothing(tmp_path):
    store = _store(tmp_path)
    lease = Lease.new()
    (rid,) = store.claim(1, "sequential", lease=lease)
    _set(store, rid, heartbeat=0.0)
    assert store.renew({rid: lease.token}) == {}
    assert store.holders()[rid].heartbeat > wall_clock() - 5  # renewed
    store.record_epoch(rid, {"epoch": 1, "test_acc": 0.1}, lease=lease.token)
    _take(store, rid)
    assert store.renew({rid: lease.token}) == {rid: lease.token}
    with pytest.raises(LeaseLost, match=f"run '{rid}' was taken from this process \\(held by "
                       "pid 4242 on host elsewhere \\(pid namespace 4026532999\\)"):  # fmt: skip
        store.record_epoch(rid, {"epoch": 2, "test_acc": 0.2}, lease=lease.token)
    with pytest.raises(LeaseLost):
        store.finish(rid, {"status": "done", "history": []}, lease=lease.token)
    with pytest.raises(LeaseLost):
        store.record_steps(rid, [{"step": 1, "loss": 1.0, "lr": 0.1}], lease=lease.token)
    store.release(rid, lease=lease.token)  # not ours any more: left to its holder
    assert [m["epoch"] for m in store.epochs(rid)] == [1] and store.steps(rid) == []
    assert store.run(rid).status == "running" and store.holders()[rid].host == "elsewhere"
    _set(store, rid, status="pending", lease=None)
    with pytest.raises(LeaseLost, match="it is pending now"):
        store.hold(rid, lease.token)


def _fake_train(taken: dict):
    """Two epochs of two steps; before epoch 2 of the run named in ``taken``, another process
    takes it (``taken["run"]``)."""

    def train(config, *, out_dir, dataset, callbacks, execution):
        history = []
        for epoch in (1, 2):
            if out_dir.name == taken.get("run") and epoch == 2:
                _take(taken["store"], out_dir.name)
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
    store = _store(tmp_path)
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
    store = _store(tmp_path)
    recorder = Recorder(store, StudyObserver())
    lease = Lease.new()
    a, b = recorder.track(store.claim(2, "sequential", lease=lease), lease.token)
    _set(store, a.id, heartbeat=0.0)
    _set(store, b.id, heartbeat=0.0)
    with Heartbeat(store, recorder.held, recorder.mark_lost, interval=0.05) as beat:
        _wait(lambda: min(h.heartbeat for h in store.holders().values()) > 0)
        _take(store, a.id)
        _wait(lambda: a.id in beat.held() and a.id in recorder._lost)
        with pytest.raises(LeaseLost, match="held by pid 4242"):
            recorder.record(StepTaken(a.id, 1, 1, 0.5))  # a cheap event: the heartbeat's word
    assert a.id in recorder.taken and a.id not in recorder.active
    with pytest.raises(LeaseLost):  # anything later about it: the executor is stopping it
        recorder.record(EpochEnded(a.id, {"epoch": 1}))
    recorder.record(RunReleased(a.id))  # given back by a stopping group: nothing to do
    recorder.record(StepTaken(b.id, 1, 1, 0.5))
    assert list(recorder.active) == [b.id]


def _wait(predicate, timeout=10.0):
    end = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.02)


# ---- reset ---------------------------------------------------------------------------------
def test_reset_refuses_a_run_held_anywhere_and_takes_an_expired_one(tmp_path, run_cli):
    store = _store(tmp_path)
    (rid,) = store.claim(1, "sequential")
    run_dir = store.run_dir(rid)
    run_dir.mkdir(parents=True)
    (run_dir / "checkpoint.pt").write_bytes(b"epoch 1")
    _set(store, rid, pid=1, pidns=OTHER_NS)  # a container's PID 1, heartbeat fresh
    db = store.path.read_bytes()
    code, out, err = run_cli(["reset", str(tmp_path), rid])
    assert code == 2 and out == ""
    assert err == (
        f"error: run '{rid}' is being trained by pid 1 on host {Owner.me().host} (pid namespace "
        f"{OTHER_NS}), last heartbeat 0 s ago; wait for it to finish (or stop that process) "
        "before resetting it\n"
    )
    assert (run_dir / "checkpoint.pt").read_bytes() == b"epoch 1" and store.path.read_bytes() == db
    _set(store, rid, heartbeat=wall_clock() - 61.0)  # silent for longer than its grace
    assert store.reset([rid]) == [rid]
    assert not run_dir.exists() and store.run(rid).status == "pending"
    assert store.holders() == {} and Holder.of(_row(store, rid)) == Holder(
        Owner.me().host, None, None, None, None, None
    )


def _row(store, run_id):
    with store.connect() as con:
        con.row_factory = sqlite3.Row
        return con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


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
                _take(store, victim)
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
    store = _store(tmp_path)
    recorder = Recorder(store, Taken())
    lease = Lease.new()
    a, b = recorder.track(store.claim(2, "ray", lease=lease), lease.token)
    task = Task({a.id: a, b.id: b}, tries=1, ref="task-ref")
    executor._tasks.add(task)
    _take(store, a.id)
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
STUDY = ["study", "--dataset", "synthetic:train=64,test=32,size=8", "--depths", "8",
         "--width", "4", "--orders", "1", "--lrs", "0.1", "--epochs", "1", "--device", "cpu",
         "-q"]  # fmt: skip


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


def test_report_says_who_holds_a_running_run(tmp_path, run_cli):
    store = _store(tmp_path)
    a, b = store.claim(2, "sequential")
    _take(store, a)
    _set(store, b, pidns=OTHER_NS, heartbeat=wall_clock() - 120.0)
    code, _, err = run_cli(["report", str(tmp_path)])
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("running: ")]
    assert lines == [
        f"running: {a}, held by pid 4242 on host elsewhere (pid namespace {OTHER_NS}), last "
        "heartbeat 0 s ago",
        f"running: {b}, held by pid {os.getpid()} on host {Owner.me().host} (pid namespace "
        f"{OTHER_NS}), last heartbeat 2 min ago; gone: the next `odenet study` on the "
        "directory resumes the run",
    ]
    report = (tmp_path / "report.md").read_text()
    assert f"- {a} is running: pid 4242 on host elsewhere" in report


def test_a_store_from_before_leases_opens_reports_and_resumes(tmp_path, run_cli):
    """The schema and a claim as an odenet before leases left them (a run 'running' under a
    dead pid of this host, no lease columns): report reads it as it is, the study migrates
    the schema, reclaims the run at once and finishes the grid."""
    args = [*STUDY[:8], "1,2", *STUDY[9:], "--out", str(tmp_path)]
    assert run_cli(args)[0] == 0
    store = Store.open(tmp_path)
    first = store.runs()[0].id
    pid, identity = _dead_process()
    with store.connect() as con:
        for column in ("pidns", "lease", "heartbeat", "grace"):
            con.execute(f"ALTER TABLE runs DROP COLUMN {column}")
        con.execute("UPDATE runs SET status = 'running', pid = ?, owner = ? WHERE id = ?",
                    (pid, identity, first))  # fmt: skip
    code, _, err = run_cli(["report", str(tmp_path)])
    assert code == 0 and f"running: {first}, held by pid {pid} on host " in err
    assert "(no heartbeat: claimed by an odenet without leases); gone: " in err
    code, _, err = run_cli(args)
    assert code == 0, err
    assert Store.open(tmp_path).counts()["done"] == 2
