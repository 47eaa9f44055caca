"""Killing a study with SIGKILL mid-run and re-running the same command completes the grid:
no finished run repeated or lost, the interrupted run resumed, no epoch row duplicated."""

import os
import signal
import subprocess
import sys
import time

from odenet.cli import main
from odenet.studies import Store

ARGS = [
    "study",
    "--dataset",
    "synthetic:train=512,test=32,size=8",  # epochs of ~0.1 s: the kill lands mid-run
    "--depths",
    "8",
    "--orders",
    "1",
    "--lrs",
    "0.1,0.2",
    "--epochs",
    "3",
    "--width",
    "4",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--quiet",
]


def _wait_for_mid_run(out, proc, timeout=180.0):
    """Poll the store until one run is finished and another is running past epoch 1."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if Store.exists(out):
            runs = Store.open(out).runs()
            if any(r.status in ("done", "diverged") for r in runs) and any(
                r.status == "running" and r.epochs_done >= 1 for r in runs
            ):
                return runs
        time.sleep(0.05)
    raise AssertionError("the study never reached the middle of a run")


def test_sigkill_then_rerun_completes_the_grid(tmp_path, capsys):
    out = tmp_path / "study"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "odenet", *ARGS, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        before = _wait_for_mid_run(out, proc)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    finished = {r.id: r.finished for r in before if r.status in ("done", "diverged")}
    (killed,) = [r for r in before if r.status == "running"]
    assert Store.open(out).run(killed.id).status == "running"  # left behind by the dead process

    try:
        main([*ARGS, "--out", str(out)])  # the same command again
    except SystemExit as err:
        assert err.code in (0, None)
    capsys.readouterr()

    store = Store.open(out)
    runs = {r.id: r for r in store.runs()}
    assert len(runs) == 2 and all(r.status in ("done", "diverged") for r in runs.values())
    for rid, stamp in finished.items():  # not re-trained
        assert runs[rid].finished == stamp
    assert runs[killed.id].epochs_done == 3 or runs[killed.id].status == "diverged"
    # claimed twice: once by the killed process, once by the re-run; the others once
    with store.connect() as con:
        attempts = dict(con.execute("SELECT id, attempts FROM runs").fetchall())
    assert attempts[killed.id] == 2
    assert all(attempts[rid] == 1 for rid in finished)
    rows = [(m["run_id"], m["epoch"]) for m in store.epochs()]
    assert len(rows) == len(set(rows)) == sum(r.epochs_done for r in runs.values())
