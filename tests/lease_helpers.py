"""Shared by the lease tests: a small study store and rows written as other processes (another
host, another PID namespace, a dead one) would have written them."""

import subprocess
import sys

from odenet.studies.spec import StudySpec
from odenet.studies.store import Store, process_identity
from odenet.studies.store.leases import wall_clock
from odenet.training import TrainConfig

SPEC = StudySpec(base=TrainConfig(epochs=2, dataset="synthetic"), orders=(1, 2), depths=(8,),
                 lrs=(0.1, 0.4))  # fmt: skip
OTHER_NS = "4026532999"  # a PID namespace this process is not in
STUDY = ["study", "--dataset", "synthetic:train=64,test=32,size=8", "--depths", "8",
         "--width", "4", "--orders", "1", "--lrs", "0.1", "--epochs", "1", "--device", "cpu",
         "-q"]  # a one-run study on the command line (add --out)  # fmt: skip


def make_store(path, spec=SPEC) -> Store:
    return Store.create(path, spec, {})


def set_columns(store, run_id, **columns) -> None:
    sets = ", ".join(f"{k} = ?" for k in columns)
    with store.connect() as con:
        con.execute(f"UPDATE runs SET {sets} WHERE id = ?", (*columns.values(), run_id))


def dead_process() -> tuple[int, str]:
    """The pid and identity of a process that has exited (and was reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    identity = process_identity(child.pid)
    child.kill()
    child.wait()
    return child.pid, identity


def take(store, run_id, token="thief", host="elsewhere", pid=4242) -> None:
    """Another process (on another host) claims ``run_id`` now."""
    set_columns(store, run_id, status="running", lease=token, host=host, pid=pid, owner="b:1",
                pidns=OTHER_NS, heartbeat=wall_clock(), grace=60.0)  # fmt: skip
