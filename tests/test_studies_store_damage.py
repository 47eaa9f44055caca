"""The store knows a dead owner despite PID reuse, and a damaged database is one line that
rewrites nothing (issue 11, items 4 and 6)."""

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from odenet.errors import ConfigError, DiskFull, StoreError
from odenet.nets import ModelConfig
from odenet.studies import run_study
from odenet.studies.runner import StudyObserver
from odenet.studies.spec import StudySpec
from odenet.studies.store import Store, owner_alive, process_identity
from odenet.studies.store.database import Database
from odenet.training import TrainConfig

ROOT = Path(__file__).resolve().parents[1]
SPEC = StudySpec(
    base=TrainConfig(
        epochs=1,
        dataset="synthetic:train=64,test=32,size=8",
        device="cpu",
        model=ModelConfig(width=4),
    ),
    orders=(1, 2),
    depths=(8,),
    lrs=(0.1, 0.2),
    seeds=(0,),
    executor="sequential",
)


def _store(path, spec=SPEC):
    return Store.create(path, spec, {"odenet_version": "test"})


def _own_all(store, pid, owner):
    """Every run 'running', claimed by (pid, owner): a killed process's leftovers."""
    with store.connect() as con:
        con.execute(
            "UPDATE runs SET status = 'running', pid = ?, owner = ?, host = ?",
            (pid, owner, os.uname().nodename),
        )


def _files(path):
    """Every file's bytes and every directory (None) under ``path``."""
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(Path(path).rglob("*"))}


# ---- owner identity ------------------------------------------------------------------------
def test_identity_is_boot_id_and_start_time():
    me = process_identity(os.getpid())
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    stat = Path(f"/proc/{os.getpid()}/stat").read_text().split()
    assert me == f"{boot}:{stat[21]}"  # field 22 (comm has no spaces here)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert process_identity(child.pid) not in (None, me)
        assert owner_alive(child.pid, process_identity(child.pid))
        assert not owner_alive(child.pid, me)  # same pid, another process
    finally:
        child.kill()
        child.wait()
    assert not owner_alive(child.pid, process_identity(child.pid))  # dead


def test_a_faked_owner_with_my_pid_but_another_start_is_reclaimed(tmp_path):
    store = _store(tmp_path)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    _own_all(store, os.getpid(), f"{boot}:1")  # started at tick 1: not this process
    assert store.running_elsewhere() == {}  # not waited on
    assert sorted(store.reclaim_dead()) == sorted(r.id for r in store.runs())
    assert store.counts()["pending"] == 4
    _own_all(store, os.getpid(), "another-boot-id:" + process_identity(os.getpid()).split(":")[1])
    assert len(store.reclaim_dead()) == 4  # same start tick, other boot: reclaimed too
    _own_all(store, os.getpid(), process_identity(os.getpid()))
    assert store.reclaim_dead() == []  # really this process: kept


def test_a_live_other_owner_is_waited_on_not_reclaimed(tmp_path):
    store = _store(tmp_path)
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        _own_all(store, holder.pid, process_identity(holder.pid))
        assert store.reclaim_dead() == [] and len(store.running_elsewhere()) == 4
    finally:
        holder.kill()
        holder.wait()
    assert len(store.reclaim_dead()) == 4


def test_sigkilled_study_restarted_with_the_same_pid_finishes_every_run(tmp_path):
    """A study killed mid-run leaves its runs 'running' under its pid; the restart got the
    same pid (faked: this process plays the restart, the record names another start time).
    Before owner identity the restart neither reclaimed nor waited: runs stayed 'running'."""
    store = _store(tmp_path)
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    _own_all(store, os.getpid(), f"{boot}:1")
    data = run_study(SPEC, tmp_path, observer=StudyObserver())
    assert [r.status for r in data.records] == ["done"] * 4
    assert all(r.epochs_done == 1 for r in data.records)


def test_old_store_without_owner_column_opens_and_is_migrated(tmp_path):
    store = _store(tmp_path)
    with store.connect() as con:  # the schema before owner identity
        con.execute("ALTER TABLE runs DROP COLUMN owner")
    old = Store.open(tmp_path)
    assert len(old.runs()) == 4 and old.counts()["pending"] == 4  # readable as it is
    store = _store(tmp_path)  # a new odenet joining the study adds the column
    with store.connect() as con:
        con.execute("UPDATE runs SET status = 'running', pid = ?, host = ?",
                    (os.getpid(), os.uname().nodename))  # fmt: skip
        assert con.execute("SELECT COUNT(*) FROM runs WHERE owner IS NULL").fetchone()[0] == 4
    # claimed by an old odenet under this very pid: not this process (it records an owner)
    assert len(store.reclaim_dead()) == 4


# ---- damaged databases -----------------------------------------------------------------------
def _damaged(tmp_path, how):
    d = tmp_path / "study"
    if how == "directory":
        (d / "study.sqlite").mkdir(parents=True)
        return d
    _store(d)
    db = d / "study.sqlite"
    if how == "garbage":
        db.write_bytes(os.urandom(8192))
    elif how == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    return d


@pytest.mark.parametrize("how", ["garbage", "truncated", "directory"])
def test_damaged_database_is_one_line_and_left_as_it_is(tmp_path, run_cli, how):
    d = _damaged(tmp_path, how)
    before = _files(d)
    with pytest.raises(StoreError) as err:
        Store.open(d)
    assert "no study" not in str(err.value) and "study.sqlite" in str(err.value)
    argv = ["--dataset", SPEC.base.dataset, "--depths", "8", "--width", "4", "--orders", "1",
            "--lrs", "0.1", "--epochs", "1", "--out", str(d), "-q"]  # fmt: skip
    for cmd in (["report", str(d)], ["study", *argv]):
        code, out, errtext = run_cli(cmd)
        assert code == 2 and len(errtext.strip().splitlines()) == 1, errtext
        assert errtext.startswith("error: ") and "no study" not in errtext
        assert _files(d) == before  # nothing written (no -wal, -shm, runs/), nothing rewritten


def test_random_bytes_study_sqlite_then_study_exits_2_without_traceback(tmp_path):
    d = _damaged(tmp_path, "garbage")
    before = _files(d)
    done = subprocess.run(
        [sys.executable, "-m", "odenet", "study", "--dataset",
         "synthetic:train=256,test=128,size=8", "--depths", "8", "--width", "4", "--orders",
         "1,2", "--lrs", "0.1", "--epochs", "1", "--out", str(d)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and "not an SQLite database" in done.stderr
    assert _files(d) == before


def test_empty_database_file_is_no_study_yet(tmp_path):
    (tmp_path / "study.sqlite").touch()
    assert not Store.exists(tmp_path)
    with pytest.raises(ConfigError, match="empty study.sqlite"):
        Store.open(tmp_path)


def test_disk_full_is_one_line_exit_1_and_resumes(tmp_path, monkeypatch, run_cli):
    """SQLite's own SQLITE_FULL (max_page_count reached) while the study records epochs: a full
    disk, not bad input (issue 19, item 14)."""
    _store(tmp_path)
    connect = Database._connect

    def full(self, autocommit):
        con = connect(self, autocommit)
        pages = con.execute("PRAGMA page_count").fetchone()[0]
        con.execute(f"PRAGMA max_page_count = {pages}")  # no page more: the disk is full
        return con

    monkeypatch.setattr(Database, "_connect", full)
    with pytest.raises(DiskFull, match=r"^no space left on device \(.*study.sqlite\); free some"):
        run_study(SPEC, tmp_path, observer=StudyObserver())
    argv = ["study", "--dataset", SPEC.base.dataset, "--depths", "8", "--width", "4", "--orders",
            "1,2", "--lrs", "0.1,0.2", "--epochs", "1", "--executor", "sequential",
            "--device", "cpu", "--out", str(tmp_path), "-q"]  # fmt: skip
    code, _, err = run_cli(argv)
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert err.startswith("error: no space left on device (") and "study.sqlite" in err
    monkeypatch.setattr(Database, "_connect", connect)  # space freed: the same command resumes
    code, _, err = run_cli(argv)
    assert code == 0, err
    assert Store.open(tmp_path).counts()["done"] == 4


def test_read_only_study_directory_is_still_reported(tmp_path):
    """A read-only bind mount (root + a mount namespace): `report` reads it, writes nothing."""
    if shutil.which("unshare") is None or os.geteuid() != 0:
        pytest.skip("needs root and unshare for a read-only mount")
    d = tmp_path / "study"
    store = _store(d)
    with store.connect() as con:
        con.execute("UPDATE runs SET status = 'diverged'")
    before = _files(d)
    script = (
        f"mount --bind {d} {d} && mount -o remount,bind,ro {d} && "
        f"{sys.executable} -m odenet report {d} --json"
    )
    done = subprocess.run(
        ["unshare", "-m", "sh", "-c", script], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    if "mount" in done.stderr and done.returncode != 0:
        pytest.skip(f"no read-only mount here: {done.stderr.strip()}")
    assert done.returncode == 0, done.stderr
    assert '"diverged": 2' in done.stdout and "read-only" in done.stderr
    assert _files(d) == before


def test_read_only_database_refuses_writes_with_one_line(tmp_path):
    store = _store(tmp_path)
    ro = Store(tmp_path)
    ro.db.read_only = True  # as if this process could not write the directory (root can)
    assert ro.read_only and len(ro.runs()) == 4  # reads
    with pytest.raises(StoreError, match="read-only"):
        ro.claim(1, "sequential")
    assert store.counts()["pending"] == 4


def test_sql_errors_stay_sqlite_errors(tmp_path):
    store = _store(tmp_path)
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        with store.connect() as con:
            con.execute("SELECT * FROM sharpness")
