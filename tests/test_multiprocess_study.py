"""Several GPUs of one machine without Ray: several `odenet study` processes on one study
directory (one per GPU, ``CUDA_VISIBLE_DEVICES=i``). Here two processes on CPU: the grid is
finished, every run is claimed exactly once, and each run's epochs are recorded once."""

import os
import subprocess
import sys

from odenet.studies import Store

ARGS = [
    "study", "--dataset", "synthetic:train=256,test=64,size=8", "--depths", "8", "--width", "4",
    "--orders", "1,2", "--lrs", "0.1,0.2,0.4", "--epochs", "2", "--device", "cpu",
    "--executor", "sequential", "--quiet",
]  # fmt: skip


def test_two_processes_on_one_study_train_every_run_once(tmp_path):
    out = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "odenet", *ARGS, "--out", str(out)]
    procs = [subprocess.Popen(command, env=env, stderr=subprocess.PIPE) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err.decode()

    store = Store.open(out)
    runs = store.runs()
    assert len(runs) == 6 and all(r.status == "done" and r.epochs_done == 2 for r in runs)
    with store.connect() as con:
        claims = con.execute("SELECT id, attempts, pid FROM runs").fetchall()
    assert all(attempts == 1 for _, attempts, _ in claims)  # no run claimed (trained) twice
    assert {pid for *_, pid in claims} <= {p.pid for p in procs}
    rows = [(m["run_id"], m["epoch"]) for m in store.epochs()]
    assert sorted(rows) == sorted((r.id, e) for r in runs for e in (1, 2))
