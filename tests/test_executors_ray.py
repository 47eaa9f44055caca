"""The Ray executor on a local 2-CPU Ray cluster (started once for this module).

Equality with the sequential executor is bitwise, not approximate: a Ray worker runs the same
``train`` on the same machine (same torch build, same kernels) with one intra-op thread (Ray
sets OMP_NUM_THREADS to the task's --cpus-per-run 1; the sequential reference is pinned to one
thread too), and the per-epoch metrics reach the store as the same float64 values, so every
floating-point operation is the same one in the same order.
"""

import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest

from odenet.nets import ModelConfig
from odenet.studies import Store, StudyObserver, StudySpec, run_study
from odenet.studies.executors.ray import RayConfig
from odenet.training import TrainConfig

DATA = "synthetic:train=256,test=128,size=8"
ARGS = ["study", "--dataset", DATA, "--depths", "8", "--width", "4", "--device", "cpu"]
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance for the whole module: 2 CPUs, no dashboard, a small object store.
    Its gcs address is the --ray-address of a driver in a subprocess."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2, include_dashboard=False, object_store_memory=200 * 2**20, log_to_driver=False
    )
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def _epochs(out) -> dict:
    return {
        (m["run_id"], m["epoch"]): tuple(m[k] for k in METRICS) for m in Store.open(out).epochs()
    }


@pytest.mark.usefixtures("cluster")
def test_ray_study_equals_sequential_and_reports(tmp_path, run_cli, one_thread):
    """2 schemes x 2 lrs x 2 epochs (lr 1000 diverges: a result): same statuses, bitwise the
    same per-epoch metrics; provenance names ray, the node and the device; report works."""
    grid = ["--orders", "1,2", "--lrs", "0.1,1000", "--epochs", "2", "--quiet"]
    ray_out, seq_out = tmp_path / "ray", tmp_path / "seq"
    assert run_cli([*ARGS, *grid, "--executor", "ray", "--out", str(ray_out)])[0] == 0
    assert run_cli([*ARGS, *grid, "--executor", "sequential", "--out", str(seq_out)])[0] == 0

    runs = {r.id: r for r in Store.open(ray_out).runs()}
    reference = {r.id: r for r in Store.open(seq_out).runs()}
    assert {i: r.status for i, r in runs.items()} == {i: r.status for i, r in reference.items()}
    assert sorted(r.status for r in runs.values()) == ["diverged", "diverged", "done", "done"]
    assert _epochs(ray_out) == _epochs(seq_out)
    steps = Store.open(ray_out).steps()  # the step log shipped from the workers
    assert steps and steps == Store.open(seq_out).steps()
    for run in runs.values():
        execution = run.provenance["execution"]
        assert run.executor == execution["executor"] == "ray"
        assert execution["node"] and execution["device"] == "cpu"
        assert run.diverged_epoch == reference[run.id].diverged_epoch
        assert (run.run_dir / "checkpoint.pt").is_file() and (run.run_dir / "result.json").is_file()
    code, out, err = run_cli(["report", str(ray_out)])
    assert code == 0 and (ray_out / "report.md").is_file(), err


class _KillWorker(StudyObserver):
    """SIGKILLs (or sends ``signum`` to) the worker of ``run_id`` once its epoch 1 is
    recorded; records epoch starts."""

    def __init__(self, run_id: str, caplog, signum: int = signal.SIGKILL) -> None:
        self.run_id, self.caplog, self.signum = run_id, caplog, signum
        self.starts: list[tuple[str, int]] = []
        self.epoch1: dict | None = None  # the epoch-1 metrics the driver recorded

    def on_epoch_start(self, run, epoch, steps) -> None:
        self.starts.append((run.id, epoch))

    def on_epoch_end(self, run, metrics) -> None:
        if run.id == self.run_id and metrics["epoch"] == 1 and self.epoch1 is None:
            self.epoch1 = metrics
            os.kill(self._worker_pid(), self.signum)

    def _worker_pid(self) -> int:
        """The pid the run's task reported in its first item (the driver logs it)."""
        for record in self.caplog.records:
            found = re.search(r"ray: (\S+) on \S+ \(pid (\d+),", record.getMessage())
            if found and found.group(1) == self.run_id:
                return int(found.group(2))
        raise AssertionError("the driver logged no worker for the run")


def _spec(lrs) -> StudySpec:
    """Epochs of 32 steps: the run is still training when the driver sees its epoch 1."""
    return StudySpec(
        base=TrainConfig(
            epochs=3,
            dataset="synthetic:train=1024,test=128,size=8",
            batch_size=32,
            device="cpu",
            model=ModelConfig(width=4),
        ),
        orders=(1,),
        depths=(8,),
        lrs=lrs,
        executor="ray",
    )


@pytest.mark.parametrize(
    "signum", [signal.SIGKILL, pytest.param(signal.SIGTERM, marks=pytest.mark.slow)]
)
@pytest.mark.usefixtures("cluster")
def test_killed_worker_resumes_from_its_checkpoint(tmp_path, caplog, one_thread, signum):
    """SIGKILL (or SIGTERM: a cluster stopping its processes) of the worker mid-run: the task
    is resubmitted with the run's checkpoint, the finished epoch is not trained again (started
    once, its row kept as recorded) and the run ends equal to one that was never killed."""
    caplog.set_level(logging.INFO, logger="odenet.studies")
    run_id = "d8-euler-lr0.1-s0"
    killer = _KillWorker(run_id, caplog, signum)
    run_study(_spec((0.1,)), tmp_path / "ray", observer=killer)
    run_study(replace(_spec((0.1,)), executor="sequential"), tmp_path / "seq")

    (run,) = Store.open(tmp_path / "ray").runs()
    assert run.status == "done" and run.epochs_done == 3
    assert any("resubmitting from the last checkpoint" in r.getMessage() for r in caplog.records)
    assert killer.starts.count((run_id, 1)) == 1  # epoch 1 ran once, before the kill
    assert killer.starts.count((run_id, 3)) == 1
    stored = {m["epoch"]: m for m in Store.open(tmp_path / "ray").epochs(run_id)}
    assert stored[1]["seconds"] == killer.epoch1["seconds"]  # not re-trained nor re-timed
    assert _epochs(tmp_path / "ray") == _epochs(tmp_path / "seq")
    assert Store.open(tmp_path / "ray").steps() == Store.open(tmp_path / "seq").steps()


@pytest.mark.usefixtures("cluster")
def test_worker_lost_beyond_the_retries_fails_the_run_and_the_study_goes_on(tmp_path, caplog):
    """max_retries 0: a killed worker fails its run with the reason; the other run finishes."""
    caplog.set_level(logging.INFO, logger="odenet.studies")
    killer = _KillWorker("d8-euler-lr0.1-s0", caplog)
    run_study(_spec((0.1, 0.2)), tmp_path / "s", observer=killer, ray=RayConfig(max_retries=0))
    runs = {r.id: r for r in Store.open(tmp_path / "s").runs()}
    killed = runs["d8-euler-lr0.1-s0"]
    assert killed.status == "failed" and killed.epochs_done >= 1
    assert killed.error.startswith("the Ray task failed 1 times: ")
    assert runs["d8-euler-lr0.2-s0"].status == "done"


@pytest.mark.slow  # a driver process of its own (~20 s on 2 idle cores)
def test_killed_driver_then_the_same_command_resumes(tmp_path, cluster, run_cli):
    """The driver (a process joined to this cluster with --ray-address) SIGKILLed mid-study;
    the same command again (here in this process): finished runs are not trained again, the
    others resume from their checkpoints."""
    from test_studies_resume import _kill_when

    out = tmp_path / "s"
    args = [*ARGS, "--orders", "1", "--lrs", "0.1,0.2,0.4", "--epochs", "3", "--quiet"]
    args += ["--dataset", "synthetic:train=512,test=32,size=8", "--batch-size", "32"]
    args += ["--executor", "ray", "--ray-address", cluster]

    def some_progress(runs) -> bool:
        return any(r.epochs_done >= 1 for r in runs) and any(r.status == "running" for r in runs)

    before = _kill_when(args, out, some_progress, "a run past its first epoch")
    kept = {(m["run_id"], m["epoch"]): m["seconds"] for m in Store.open(out).epochs()}
    finished = {r.id: r.finished for r in before if r.status == "done"}
    assert run_cli([*args, "--out", str(out)])[0] == 0
    store = Store.open(out)
    runs = {r.id: r for r in store.runs()}
    assert all(r.status == "done" and r.epochs_done == 3 for r in runs.values())
    assert all(runs[i].finished == stamp for i, stamp in finished.items())
    after = {(m["run_id"], m["epoch"]): m["seconds"] for m in store.epochs()}
    assert kept and all(after[k] == v for k, v in kept.items())  # resumed, not re-trained


@pytest.mark.slow  # a driver process of its own
def test_sigterm_to_the_driver_cancels_its_tasks_and_gives_the_runs_back(tmp_path, cluster,
                                                                         run_cli):  # fmt: skip
    """SIGTERM to a driver joined to a cluster (ray.init installs its own SIGTERM handler;
    odenet's stays): one line, exit 143, no run left 'running', its tasks cancelled; the
    same command then finishes the grid."""
    from test_studies_resume import _until_ready

    out = tmp_path / "s"
    args = [*ARGS, "--orders", "1", "--lrs", "0.1,0.2", "--epochs", "3", "--quiet", "--out",
            str(out), "--dataset", "synthetic:train=512,test=32,size=8", "--batch-size", "32",
            "--executor", "ray", "--ray-address", cluster]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "odenet", *args], env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    _until_ready(proc, out, lambda runs: any(r.epochs_done >= 1 for r in runs))
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    assert err.splitlines()[-1] == "terminated (SIGTERM); run the same command to resume"
    assert Store.open(out).counts()["running"] == 0
    assert run_cli(args)[0] == 0
    assert all(r.status == "done" and r.epochs_done == 3 for r in Store.open(out).runs())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--ray-address", "127.0.0.1:1"], "--ray-address 127.0.0.1:1: nothing answers there"),
        (["--ray-address", "nowhere"], "expected HOST:PORT"),
        (["--gpus-per-run", "4"], "no node of the Ray cluster has that many GPUs"),
        (["--cpus-per-run", "64"], "no node of the Ray cluster has that many CPUs"),
        (["--cpus-per-run", "-1"], "--cpus-per-run must be a non-negative number"),
    ],
)
@pytest.mark.usefixtures("cluster")
def test_bad_ray_options_one_line_exit_2_nothing_written(tmp_path, run_cli, options, message):
    out = tmp_path / "s"
    code, stdout, err = run_cli([*ARGS, "--executor", "ray", *options, "--out", str(out)])
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


@pytest.mark.usefixtures("cluster")
def test_ray_options_need_the_ray_executor(tmp_path, run_cli):
    out = tmp_path / "s"
    code, _, err = run_cli(
        [*ARGS, "--executor", "sequential", "--gpus-per-run", "1", "--out", str(out)]
    )
    assert code == 2 and "need --executor ray" in err and not out.exists()


def test_without_ray_installed_one_line_exit_2_nothing_written(tmp_path, run_cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    out = tmp_path / "s"
    code, _, err = run_cli([*ARGS, "--executor", "ray", "--out", str(out)])
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert 'pip install "odenet[ray]"' in err and not out.exists()


@pytest.mark.usefixtures("cluster")
def test_ctrl_c_cancels_the_tasks_and_gives_the_runs_back(tmp_path, caplog):
    """A KeyboardInterrupt in the driver: the worker is killed (the task cancelled) and every
    claimed run is pending again, its checkpoint kept for the resume."""
    caplog.set_level(logging.INFO, logger="odenet.studies")

    class Interrupt(_KillWorker):
        def on_epoch_end(self, run, metrics) -> None:
            self.pid = self._worker_pid()
            raise KeyboardInterrupt

    observer = Interrupt("d8-euler-lr0.1-s0", caplog)
    with pytest.raises(KeyboardInterrupt):
        run_study(_spec((0.1,)), tmp_path / "s", observer=observer)
    (run,) = Store.open(tmp_path / "s").runs()
    assert run.status == "pending" and (run.run_dir / "checkpoint.pt").is_file()
    deadline = time.monotonic() + 30
    while _alive(observer.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not _alive(observer.pid)


def _alive(pid: int) -> bool:
    from odenet.studies.store import pid_alive

    return pid_alive(pid)


def test_worker_messages_recorded_record_a_fused_group_as_the_fused_executor(tmp_path):
    """The worker protocol without Ray: run_task on a fused group (the GPU configuration, here
    on CPU), its messages received by the driver's Task and recorded by the runner's recorder,
    equals the fused executor's local study bitwise (same code, same process, same kernels);
    result.json arrives as the worker wrote it, with the Ray provenance."""
    from odenet.studies.executors.events import FileWritten, RunFinished
    from odenet.studies.executors.ray.executor import Task
    from odenet.studies.executors.ray.messages import TaskRequest, WorkerSettings, WorkerStarted
    from odenet.studies.executors.ray.worker import run_task
    from odenet.studies.runner import Recorder
    from odenet.training.checkpoint import load_result

    spec = StudySpec(
        base=TrainConfig(epochs=2, dataset=DATA, device="cpu", model=ModelConfig(width=4)),
        orders=(1,),
        depths=(8,),
        lrs=(0.1, 0.2),
        executor="fused",
    )
    run_study(spec, tmp_path / "local", quiet=True)
    store = Store.create(tmp_path / "ray", spec, {})
    recorder = Recorder(store, StudyObserver())
    claimed = recorder.track(store.claim(8, "ray"))
    task = Task({r.id: r for r in claimed}, tries=1)
    request = TaskRequest(tuple(claimed), {}, WorkerSettings("fused", "cpu", 8, None))
    messages = [m for batch in run_task(request) for m in batch]
    for message in messages:
        task.receive(message, recorder.record)

    assert isinstance(messages[0], WorkerStarted) and task.worker == messages[0]
    files = [(m.run_id, m.name) for m in messages if isinstance(m, FileWritten)]
    assert sorted(files) == sorted(  # 2 members x (2 epochs' checkpoints + the result)
        [(r.id, "checkpoint.pt") for r in claimed] * 2 + [(r.id, "result.json") for r in claimed]
    )
    finished = {m.run_id: m.result for m in messages if isinstance(m, RunFinished)}
    assert task.ended == set(finished) == {r.id for r in claimed} and not recorder.active
    assert _epochs(tmp_path / "ray") == _epochs(tmp_path / "local")
    for run in store.runs():
        execution = run.provenance["execution"]
        assert run.status == "done" and run.executor == execution["executor"] == "ray"
        assert execution["worker_executor"] == "fused" and execution["members"] == 2
        assert execution["node"] == messages[0].host and execution["device"] == "cpu"
        assert (run.run_dir / "checkpoint.pt").is_file()
        assert load_result(run.run_dir) == finished[run.id]  # written on the worker, once


def test_outbox_sends_changed_files_before_each_event_and_never_the_ones_it_got(tmp_path):
    """Every run event goes out preceded by the run's files that changed since they were last
    sent (or received from the driver)."""
    from odenet.studies.executors.events import EpochEnded, FileWritten, StepsLogged
    from odenet.studies.executors.ray.worker import Outbox

    run = next(iter(Store.create(tmp_path / "s", _spec((0.1,)), {}).runs()))
    run.run_dir.mkdir()
    (run.run_dir / "checkpoint.pt").write_bytes(b"from the driver")
    sent = []
    outbox = Outbox({run.id: run}, sent.append)
    logged = StepsLogged(run.id, (), restart=True)
    outbox.emit(logged)  # the checkpoint the driver sent: not sent back
    (run.run_dir / "checkpoint.pt").unlink()
    (run.run_dir / "checkpoint.pt").write_bytes(b"epoch 1")
    ended = EpochEnded(run.id, {"epoch": 1})
    outbox.emit(ended)
    outbox.emit(logged)  # unchanged checkpoint: not sent again
    assert sent == [logged, FileWritten(run.id, "checkpoint.pt", b"epoch 1"), ended, logged]
