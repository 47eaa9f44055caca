"""A study's run as stored (RunRecord), and the process facts the store's leases rest on:
whether a pid is alive and who it is (``process_identity``), so that a dead owner's runs are
reclaimed even when its pid was given to another process."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from odenet.studies.identity import Axes
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import TrainConfig


@dataclass(frozen=True)
class RunRecord:
    """One run as stored (read-only snapshot)."""

    id: str  # d{depth}-{scheme}-lr{lr}[-{swept fields}]-s{seed} (odenet.studies.grid)
    depth: int
    solver: str
    lr: float
    seed: int
    status: str  # pending | running | done | diverged | failed
    test_acc: float | None  # last completed epoch's test accuracy (None before the first)
    epochs_done: int
    run_dir: Path  # checkpoint.pt and result.json
    config: TrainConfig
    best_test_acc: float | None = None
    train_loss: float | None = None
    diverged_epoch: int | None = None
    params: int | None = None
    extra_params: int | None = None
    seconds: float | None = None
    device: str | None = None
    executor: str | None = None
    error: str | None = None  # the exception of a failed run
    started: str | None = None  # ISO-8601 UTC
    finished: str | None = None
    provenance: dict = field(default_factory=dict)
    swept: tuple[str, ...] = ()  # the study's swept fields (StudySpec.swept), set by the store

    @property
    def axes(self) -> Axes:
        """The run's identity: its value on every axis of the study (odenet.studies.identity)."""
        return Axes.of_config(self.depth, self.solver, self.lr, self.seed, self.config, self.swept)

    def to_dict(self) -> dict:
        """JSON-able summary (config and the study's swept field names omitted)."""
        skip = ("config", "swept")
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}
        out["run_dir"] = str(self.run_dir)
        return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def pid_alive(pid: int | None) -> bool:
    """Whether a process with this pid exists on this host and is not a zombie."""
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child that was not reaped yet is a zombie: dead for our purposes
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def process_identity(pid: int | None) -> str | None:
    """Who runs as ``pid`` now, in a form that survives PID reuse: ``"<boot id>:<start>"``.

    Linux: the kernel's boot id and the process's start time (clock ticks since boot, field
    22 of /proc/<pid>/stat), so a later process that got the same pid (a container's PID 1
    after a restart, a reboot, an unrelated program) has another identity. Elsewhere: the
    start time ``ps`` reports (POSIX; one-second resolution). None when neither is available
    (the pid alone then decides).
    """
    if not pid:
        return None
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        start = stat.rsplit(")", 1)[1].split()[19]  # after "pid (comm)": field 3 is index 0
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        return f"{boot}:{start}"
    except (OSError, IndexError):
        pass
    try:  # macOS, BSDs: no /proc
        out = subprocess.run(
            ["ps", "-o", "lstart=", "-p", str(pid)], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return f"ps:{out.stdout.strip()}" if out.returncode == 0 and out.stdout.strip() else None


def owner_alive(pid: int | None, owner: str | None) -> bool:
    """Whether the process that claimed a run (``pid`` and its ``process_identity`` then, on
    this host) is still running: the pid must be alive and still be the same process.

    A claim without an identity (a store written by an older odenet) falls back to the pid,
    except under this process's own pid: this process claims with an identity, so such a
    claim is a previous process's that had the same pid.
    """
    if not pid_alive(pid):
        return False
    if owner is None:
        return pid != os.getpid()
    now_there = process_identity(pid)
    return now_there is None or now_there == owner


def record_from_row(r: sqlite3.Row, run_dir: Path, swept: tuple[str, ...] = ()) -> RunRecord:
    """A RunRecord from one row of the ``runs`` table; ``swept``: the study's swept fields."""
    return RunRecord(
        id=r["id"],
        depth=r["depth"],
        solver=r["solver"],
        lr=r["lr"],
        seed=r["seed"],
        status=r["status"],
        test_acc=r["test_acc"],
        epochs_done=r["epochs_done"],
        run_dir=run_dir,
        config=config_from_dict(json.loads(r["config"])),
        best_test_acc=r["best_test_acc"],
        train_loss=r["train_loss"],
        diverged_epoch=r["diverged_epoch"],
        params=r["params"],
        extra_params=r["extra_params"],
        seconds=r["seconds"],
        device=r["device"],
        executor=r["executor"],
        error=r["error"],
        started=r["started"],
        finished=r["finished"],
        provenance=json.loads(r["provenance"] or "{}"),
        swept=swept,
    )
