"""A full disk (issue 19, item 14): one line naming the file, the study stops at once (every
later run would fail too), exit 1, and the same command resumes once there is space; a study
database left behind its WAL by a full disk is read as sqlite reads it, not called damaged.

The disk fills at the writer (ENOSPC from the kernel's write, injected beneath the atomic
writer's temp file) and, where this process may mount one, on a real 2 MiB tmpfs."""

from __future__ import annotations

import errno
import io
import shutil
import sqlite3
import subprocess
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch

import odenet.files
from odenet.errors import DiskFull, StoreError
from odenet.files import atomic_write
from odenet.studies.store import Store
from odenet.studies.store import database as database_module
from odenet.studies.store.database import Database

DATA = "synthetic:train=256,test=128,size=8"
STUDY = ["study", "--dataset", DATA, "--depths", "8", "--width", "4", "--epochs", "1",
         "--device", "cpu", "--orders", "1,2", "--lrs", "0.1,0.2", "-q"]  # fmt: skip


class _FullDisk(io.FileIO):
    """A file whose writes fail as on a full disk once ``room`` bytes are written."""

    room = 0

    def write(self, data) -> int:
        if self.tell() + len(data) > self.room:
            raise OSError(errno.ENOSPC, "No space left on device")
        return super().write(data)


@pytest.fixture
def full_disk(monkeypatch):
    """Every temp file of the atomic writer whose target's name is in the returned set sits on
    a full disk."""
    names: set[str] = set()
    real = odenet.files._new_temp

    def new_temp(path: Path, stem: str):
        if path.name not in names:
            return real(path, stem)
        tmp = path.with_name(f".{stem}.{uuid.uuid4().hex[:12]}.tmp")
        return io.BufferedWriter(_FullDisk(tmp, "xb")), tmp

    monkeypatch.setattr(odenet.files, "_new_temp", new_temp)
    return names


@pytest.mark.parametrize(
    "write",
    [lambda f: torch.save({"w": torch.zeros(50_000)}, f),  # torch: "enforce fail at inline_..."
     lambda f: np.savez(f, w=np.zeros(50_000)),
     lambda f: f.write(b"x" * 50_000)],
)  # fmt: skip
def test_a_full_disk_is_disk_full_naming_the_file(tmp_path, full_disk, write):
    target = tmp_path / "checkpoint.pt"
    full_disk.add(target.name)
    with pytest.raises(DiskFull) as info:
        atomic_write(target, write)
    assert str(info.value) == (
        f"no space left on device ({target}); free some space and run the same command again "
        "(a study resumes where it stopped)"
    )
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temp file left


def test_disk_full_during_training_stops_the_study_exit_1_then_resumes(
    tmp_path, run_cli, full_disk
):
    out = tmp_path / "s"
    full_disk.add("checkpoint.pt")
    code, _, err = run_cli([*STUDY, "--out", str(out)])
    first = out / "runs" / "d8-euler-lr0.1-s0" / "checkpoint.pt"
    assert code == 1 and err == (
        f"error: no space left on device ({first}); free some space and run the same command "
        "again (a study resumes where it stopped)\n"
    )
    runs = Store.open(out).runs()
    assert {r.status for r in runs} == {"pending"}  # stopped at the first run, none failed
    full_disk.clear()  # space freed: the same command finishes the study
    code, _, err = run_cli([*STUDY, "--out", str(out)])
    assert code == 0, err
    assert Store.open(out).counts()["done"] == 4


def test_a_disk_io_error_on_a_full_disk_is_disk_full(tmp_path, monkeypatch, run_cli):
    """sqlite calls a WAL index it cannot create a "disk I/O error": on a full disk it is one."""
    out = tmp_path / "s"
    assert run_cli([*STUDY, "--orders", "1", "--lrs", "0.1", "--out", str(out)])[0] == 0
    db = (out / "study.sqlite").read_bytes()

    def io_error(self, autocommit):
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(Database, "_connect", io_error)
    free = 1 << 30
    monkeypatch.setattr(
        database_module.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(1, 1, free)
    )
    code, _, err = run_cli(["report", str(out)])
    assert code == 2 and "cannot be read or written (disk I/O error)" in err  # space: not full
    free = 4096
    code, _, err = run_cli(["report", str(out)])
    assert code == 1 and err == (
        f"error: no space left on device ({out / 'study.sqlite'}); free some space and run the "
        "same command again (a study resumes where it stopped)\n"
    )
    assert (out / "study.sqlite").read_bytes() == db


def test_a_database_behind_its_wal_is_intact(tmp_path, run_cli):
    """A checkpoint cut short (by a full disk) leaves study.sqlite shorter than its header
    says, with every page in the -wal: sqlite reads the two together, and so does the check."""
    out = tmp_path / "s"
    assert run_cli([*STUDY, "--orders", "1", "--lrs", "0.1", "--out", str(out)])[0] == 0
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    db = out / "study.sqlite"
    con = sqlite3.connect(db)
    try:
        con.execute("PRAGMA journal_mode = WAL")
        con.execute("PRAGMA wal_autocheckpoint = 0")
        con.execute("VACUUM")  # every page, written again, into the WAL
        shutil.copy(db, copy / "study.sqlite")
        shutil.copy(f"{db}-wal", copy / "study.sqlite-wal")
    finally:
        con.close()
    with open(copy / "study.sqlite", "r+b") as f:
        f.truncate(4096)  # the first page, which counts them all, then nothing
    alone = sqlite3.connect(f"file:{copy / 'study.sqlite'}?mode=ro&immutable=1", uri=True)
    with pytest.raises(sqlite3.DatabaseError, match="malformed"):
        alone.execute("PRAGMA quick_check").fetchall()
    alone.close()
    assert [r.status for r in Store.open(copy).runs()] == ["done"]
    code, _, err = run_cli(["report", str(copy)])
    assert code == 0, err


def test_a_truly_damaged_database_is_still_called_damaged(tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "study.sqlite").write_bytes(b"SQLite format 3\x00" + bytes(4080))
    (out / "study.sqlite-wal").write_bytes(b"not a wal")
    with pytest.raises(StoreError):
        Store.open(out)


def _mount_tmpfs(where: Path, size: str) -> bool:
    where.mkdir(parents=True)
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.SubprocessError):
        return False
    return done.returncode == 0


def test_on_a_real_full_tmpfs(tmp_path, run_cli):
    """The runs directory on a 96 KiB tmpfs (one checkpoint fits, the second does not): the
    kernel's ENOSPC through torch.save, not an injected one."""
    out = tmp_path / "s"
    if not _mount_tmpfs(out / "runs", "96k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        code, _, err = run_cli([*STUDY, "--out", str(out)])
        assert code == 1 and err.startswith("error: no space left on device (") and "\n" == err[-1]
        assert err.count("\n") == 1 and "checkpoint.pt); free some space" in err
        assert "failed" not in {r.status for r in Store.open(out).runs()}
    finally:
        subprocess.run(["umount", str(out / "runs")], check=True)
    code, _, err = run_cli([*STUDY, "--out", str(out)])  # the runs on the disk beneath
    assert code == 0, err
