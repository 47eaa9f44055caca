"""Studies in separate PID namespaces (issue 22) and stopped by SIGTERM (issue 19, item 1),
with real processes: a "container" is ``unshare --pid --fork --mount-proc odenet study ...``
(its study is PID 1 of a new namespace; same host name, same boot, its own pids), the "host"
a plain ``odenet study`` on the same directory.

Each study ends equal to an uninterrupted one (the per-epoch metrics, bitwise: every process
trains with one thread, and a resumed run is bitwise a run that never stopped).
"""

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from threads import one_torch_thread

from odenet.cli import main

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
UNSHARE = ["unshare", "--pid", "--fork", "--mount-proc"]
# One run of 12 epochs of ~0.7 s each on one thread of a 2-core machine (~8 s: long enough
# for a second study to start beside it); two runs of 6 epochs.
ONE = ["study", "--dataset", "synthetic:train=8192,test=128,size=8", "--depths", "8",
       "--width", "4", "--orders", "1", "--lrs", "0.1", "--epochs", "12", "--device", "cpu",
       "--executor", "sequential"]  # fmt: skip
TWO = [*ONE[:10], "0.1,0.2", "--epochs", "6", *ONE[13:]]
METRICS = ("train_loss", "train_acc", "test_loss", "test_acc", "lr")


def _namespaces_allowed() -> bool:
    try:
        done = subprocess.run([*UNSHARE, "true"], capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


needs_namespaces = pytest.mark.skipif(
    not _namespaces_allowed(),
    reason="`unshare --pid --fork --mount-proc` is not permitted here (needs root, or user "
    "namespaces enabled)",
)


def _start(args, out, *, container=False, grace=None) -> subprocess.Popen:
    """``odenet <args> --out <out>`` (in a new PID namespace with ``container``); its stderr
    goes to a file beside the study (``_stderr``), so that it can be read while it runs."""
    command = [sys.executable, "-m", "odenet", *args, "--out", str(out)]
    if grace is not None:
        command += ["--lease-grace", str(grace)]
    log = Path(out).with_name(f"{Path(out).name}.{len(list(Path(out).parent.glob('*.err')))}.err")
    with open(log, "w") as err:
        proc = subprocess.Popen([*UNSHARE, *command] if container else command, env=ENV,
                                text=True, stdout=subprocess.DEVNULL, stderr=err)  # fmt: skip
    proc.log = log
    return proc


def _stderr(proc) -> str:
    return proc.log.read_text()


def _pid1(proc: subprocess.Popen) -> int:
    """The host pid of a container's PID 1 (the study, unshare's only child)."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    _until(lambda: children.read_text().split(), proc)
    return int(children.read_text().split()[0])


def _until(predicate, *procs, timeout=240.0):
    """Poll until ``predicate()``; fails when a process ends first (with its output)."""
    end = time.monotonic() + timeout
    while not predicate():
        for p in procs:
            assert p.poll() is None, _stderr(p)
        assert time.monotonic() < end, "timed out"
        time.sleep(0.05)


def _rows(out, sql, *args):
    """Rows of a query on the study's database, [] while it does not exist yet."""
    db = Path(out) / "study.sqlite"
    if not db.is_file():
        return []
    try:
        with sqlite3.connect(db, timeout=60) as con:
            return con.execute(sql, args).fetchall()
    except sqlite3.Error:  # created but not yet complete
        return []


def _training(out, epochs=1) -> list[tuple]:
    """(id, pid, pidns) of the runs 'running' with at least ``epochs`` epochs done (one: a
    checkpoint exists)."""
    sql = "SELECT id, pid, pidns FROM runs WHERE status = 'running' AND epochs_done >= ?"
    return _rows(out, sql, epochs)


def _finish(proc, timeout=300) -> tuple[int, str]:
    proc.wait(timeout=timeout)
    return proc.returncode, _stderr(proc)


def _epochs(out) -> dict:
    rows = _rows(out, f"SELECT run_id, epoch, {', '.join(METRICS)} FROM epochs")
    return {(r[0], r[1]): r[2:] for r in rows}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """name -> the per-epoch metrics of an uninterrupted study ("one": ONE, "two": TWO),
    trained here (once, when first asked for) on one thread as the subprocesses train."""
    known: dict[str, dict] = {}

    def get(name: str) -> dict:
        if name not in known:
            out = tmp_path_factory.mktemp(name)
            try:
                with one_torch_thread():
                    main([*(ONE if name == "one" else TWO), "--quiet", "--out", str(out)])
            except SystemExit as done:
                assert done.code in (0, None)
            known[name] = _epochs(out)
        return known[name]

    return get


def _claims(out) -> dict[str, tuple]:
    return {r[0]: r[1:] for r in _rows(out, "SELECT id, status, attempts, pidns FROM runs")}


# ---- SIGTERM -------------------------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("container", [False, pytest.param(True, marks=needs_namespaces)])
def test_sigterm_gives_the_run_back_exit_143_and_the_same_command_finishes(
    tmp_path, reference, container
):
    """Also as PID 1 of a PID namespace, where a signal without a handler is ignored."""
    proc = _start([*TWO, "-q"], tmp_path, container=container)
    _until(lambda: _training(tmp_path), proc)
    os.kill(_pid1(proc) if container else proc.pid, signal.SIGTERM)
    start = time.monotonic()
    code, err = _finish(proc, timeout=60)
    assert time.monotonic() - start < 15  # within seconds (a step, then giving the run back)
    assert code == 143 and err == "terminated (SIGTERM); run the same command to resume\n"
    assert _rows(tmp_path, "SELECT COUNT(*) FROM runs WHERE status = 'running'") == [(0,)]
    code, err = _finish(_start([*TWO, "-q"], tmp_path))
    assert code == 0, err
    assert _epochs(tmp_path) == reference("two")


# ---- containers and hosts on one directory -------------------------------------------------
@pytest.mark.slow
@needs_namespaces
def test_a_host_study_beside_a_container_study_trains_every_run_once(tmp_path, reference):
    container = _start(TWO, tmp_path, container=True)
    _until(lambda: _training(tmp_path, epochs=0), container)
    host = _start(TWO, tmp_path)
    for proc in (host, container):
        code, err = _finish(proc)
        assert code == 0, err
    claims = _claims(tmp_path)
    assert all(status == "done" and attempts == 1 for status, attempts, _ in claims.values())
    assert len({ns for *_, ns in claims.values()}) == 2  # each trained one of the two runs
    assert _epochs(tmp_path) == reference("two")


@pytest.mark.slow
@needs_namespaces
def test_a_host_reset_of_a_container_run_is_refused(tmp_path, reference):
    container = _start(ONE, tmp_path, container=True)
    _until(lambda: _training(tmp_path), container)
    ((run_id, pid, ns),) = _training(tmp_path)
    files = sorted(p.name for p in (tmp_path / "runs" / run_id).iterdir())
    done = subprocess.run([sys.executable, "-m", "odenet", "reset", str(tmp_path), run_id],
                          env=ENV, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 2 and pid == 1
    assert done.stderr.startswith(
        f"error: run '{run_id}' is being trained by pid 1 on host {os.uname().nodename} "
        f"(pid namespace {ns}), last heartbeat "
    )
    assert len(done.stderr.splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "runs" / run_id).iterdir()) == files
    code, err = _finish(container)
    assert code == 0, err
    assert _claims(tmp_path)[run_id][:2] == ("done", 1)
    assert _epochs(tmp_path) == reference("one")


@pytest.mark.slow
@pytest.mark.parametrize("container", [False, pytest.param(True, marks=needs_namespaces)])
def test_a_killed_study_is_taken_over_by_the_one_waiting_for_it(tmp_path, reference, container):
    """A second study waits for the first one's run, saying who holds it. After a SIGKILL of
    the first: in another namespace it takes the run over once its heartbeat is older than
    the holder's grace period (3 s here); in the same namespace at once, the holder's pid
    being gone (its grace is the default 60 s). The run resumes from its checkpoint."""
    grace = 3.0 if container else None
    first = _start(ONE, tmp_path, container=container, grace=grace)
    _until(lambda: _training(tmp_path, epochs=0), first)
    second = _start(ONE, tmp_path)
    _until(lambda: "waiting for runs held by other processes" in _stderr(second), second, first)
    _until(lambda: _training(tmp_path), second, first)  # a checkpoint to resume from
    ((run_id, pid, _),) = _training(tmp_path)
    os.kill(_pid1(first) if container else first.pid, signal.SIGKILL)
    killed = time.monotonic()
    first.wait()
    _until(lambda: _claims(tmp_path)[run_id][1] == 2, second)  # claimed again
    taken = time.monotonic() - killed
    # The grace (from the last heartbeat, <= 0.75 s before the kill) and a poll (1 s), with a
    # margin for a loaded machine; in the same namespace far below the holder's 60 s.
    assert taken < (grace + 5.0 if container else 10.0), taken
    if container:  # not before the grace: its pid 1 was never looked at here
        assert taken > grace - 1.0, taken
    code, err = _finish(second)
    assert code == 0, err
    assert (
        f"waiting for runs held by other processes: {run_id} (pid {pid} on host "
        f"{os.uname().nodename} (pid namespace " in err
    )
    assert _claims(tmp_path)[run_id][:2] == ("done", 2)
    assert _epochs(tmp_path) == reference("one")


@pytest.mark.slow
@needs_namespaces
def test_a_paused_container_study_loses_its_run_and_writes_nothing_of_it(tmp_path, reference):
    """A container study stopped (SIGSTOP) for longer than its grace period: a host study
    takes the run over and finishes it. Continued, the container study notices at once,
    says so in one line and stops training that run without writing anything of it."""
    container = _start(ONE, tmp_path, container=True, grace=3.0)
    _until(lambda: _training(tmp_path), container)
    ((run_id, *_),) = _training(tmp_path)
    pid1 = _pid1(container)
    os.kill(pid1, signal.SIGSTOP)
    try:
        code, err = _finish(_start(ONE, tmp_path))
        assert code == 0, err
        assert _claims(tmp_path)[run_id][:2] == ("done", 2)
        done = {p.name: p.read_bytes() for p in (tmp_path / "runs" / run_id).iterdir()}
        epochs = _epochs(tmp_path)
    finally:
        os.kill(pid1, signal.SIGCONT)
    code, err = _finish(container)
    assert code == 0, err
    assert (
        f"run '{run_id}' was taken from this process (it is done now); stopped training it "
        "here without writing its results"
    ) in err.splitlines()
    assert {p.name: p.read_bytes() for p in (tmp_path / "runs" / run_id).iterdir()} == done
    assert _epochs(tmp_path) == epochs == reference("one")
