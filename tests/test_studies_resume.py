"""Killing a study with SIGKILL mid-run and re-running the same command completes the grid:
no finished run repeated or lost, the interrupted run resumed, no epoch row duplicated."""

import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter

from odenet.cli import main
from odenet.studies import Store
from odenet.training import train_fused
from odenet.training.checkpoint import load_checkpoint

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


def _kill_when(args, out, ready, what, timeout=180.0):
    """Run ``odenet <args> --out <out>`` in a subprocess, poll its store until ``ready(runs)``,
    SIGKILL it there and return the runs as they stood."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "odenet", *args, "--out", str(out)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        runs = _until_ready(proc, out, ready, what, timeout)
        os.kill(proc.pid, signal.SIGKILL)
        return runs
    finally:
        proc.kill()
        proc.wait()


def _until_ready(proc, out, ready, what="the expected state", timeout=180.0):
    """Poll the study in ``out`` until ``ready(runs)`` while ``proc`` runs; the runs then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        if Store.exists(out) and ready(runs := Store.open(out).runs()):
            return runs
        time.sleep(0.05)
    raise AssertionError(f"the study never reached {what}")


def _mid_run(runs) -> bool:
    """One run finished and another running past epoch 1."""
    return any(r.status in ("done", "diverged") for r in runs) and any(
        r.status == "running" and r.epochs_done >= 1 for r in runs
    )


def _mid_fused_group(runs) -> bool:
    """Every run of the (one) fused group past epoch 1, none finished."""
    return all(r.status == "running" and 1 <= r.epochs_done < 3 for r in runs)


def test_sigkill_then_rerun_completes_the_grid(tmp_path, capsys):
    out = tmp_path / "study"
    before = _kill_when(ARGS, out, _mid_run, "the middle of a run")
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


def test_sigkill_mid_fused_group_then_rerun_completes_it(tmp_path, capsys, one_thread):
    """The fused executor (the CUDA default) killed mid-group: the same command resumes every
    member from its checkpoint, and the results equal those of an uninterrupted study."""
    args = [*ARGS, "--lrs", "0.1,0.2,0.4", "--executor", "fused"]
    out, reference = tmp_path / "study", tmp_path / "reference"
    _kill_when(args, out, _mid_fused_group, "the middle of the fused group's epochs")
    # Epochs the killed process finished; a resume keeps them, a restart would re-time them.
    kept = {(m["run_id"], m["epoch"]): m["seconds"] for m in Store.open(out).epochs()}
    # Members resume together when their checkpoints are at the same epoch (a kill between
    # two members' end-of-epoch saves splits the group).
    at_kill = {r.id: load_checkpoint(r.run_dir)["epoch"] for r in Store.open(out).runs()}
    group_size = Counter(at_kill.values())
    snapshot = tmp_path / "at-kill"  # the run dirs as the kill left them
    for r in Store.open(out).runs():
        shutil.copytree(r.run_dir, snapshot / r.id)
    assert kept and all(epoch < 3 for _, epoch in kept)
    for directory in (out, reference):
        try:
            main([*args, "--out", str(directory)])
        except SystemExit as err:
            assert err.code in (0, None)
    capsys.readouterr()

    store = Store.open(out)
    runs = store.runs()
    assert [r.status for r in runs] == ["done"] * 3 and all(r.epochs_done == 3 for r in runs)
    for r in runs:
        members = group_size[at_kill[r.id]]
        assert r.provenance["execution"] == {"executor": "fused", "members": members}
    with store.connect() as con:
        assert {a for (a,) in con.execute("SELECT attempts FROM runs")} == {2}
    rows = [(m["run_id"], m["epoch"]) for m in store.epochs()]
    assert len(rows) == len(set(rows)) == 9
    assert {
        row: m["seconds"] for m in store.epochs() if (row := (m["run_id"], m["epoch"])) in kept
    } == kept
    # Exactly reproducible on the same kernels: the epochs before the kill and the members
    # that resumed as the whole group are bitwise those of the uninterrupted study (one fused
    # group of 3). Members of a split group trained their later epochs in a group of another
    # size, whose convolutions round differently: float32 makes those epochs reproducible only
    # as the same computation, so they are compared with a replay of that group from the run
    # dirs as the kill left them. (Fused runs of other sizes differ from the reference by up to
    # several percent in test loss after 32 steps at these lrs, measured: no tolerance derived
    # from float32 rounding holds across a trajectory that amplifies it.)
    expected = {(m["run_id"], m["epoch"]): m for m in Store.open(reference).epochs()}
    runs_by_id = {r.id: r for r in runs}
    for epoch in {e for e in at_kill.values() if group_size[e] < 3}:
        ids = [r.id for r in runs if at_kill[r.id] == epoch]
        replay = train_fused([runs_by_id[i].config for i in ids],
                             out_dirs=[snapshot / i for i in ids])  # fmt: skip
        for i, result in zip(ids, replay):
            for h in result.history[epoch:]:
                expected[(i, h.epoch)] = h.to_dict()
    for m in store.epochs():
        ref = expected[(m["run_id"], m["epoch"])]
        for key in ("train_loss", "train_acc", "test_loss", "test_acc", "lr"):
            assert m[key] == ref[key], key


def test_an_unreadable_checkpoint_of_an_unfinished_run_restarts_it(tmp_path, run_cli, caplog,
                                                                    one_thread):  # fmt: skip
    """Issue 19, item 11: a truncated checkpoint (a copy cut short, a full disk) of a run that
    did not finish is treated like a missing one: the run trains from its first epoch, with
    one warning line, and ends equal to its first training."""
    args = [*ARGS, "--out", str(tmp_path)]
    assert run_cli(args)[0] == 0
    store = Store.open(tmp_path)
    run = store.runs()[0]
    first = _metrics(store, run.id)
    (run.run_dir / "result.json").unlink()
    checkpoint = run.run_dir / "checkpoint.pt"
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])
    with store.connect() as con:  # interrupted, given back
        con.execute("UPDATE runs SET status = 'pending' WHERE id = ?", (run.id,))
    with caplog.at_level(logging.WARNING, logger="odenet.training"):
        code, _, err = run_cli(args)
    assert code == 0, err
    (line,) = [r.getMessage() for r in caplog.records if r.name == "odenet.training"]
    assert line.startswith(f"checkpoint {checkpoint} cannot be read (damaged or truncated: ")
    assert line.endswith("); training the run from its first epoch") and "\n" not in line
    assert Store.open(tmp_path).run(run.id).status == "done"
    assert _metrics(Store.open(tmp_path), run.id) == first


def _metrics(store, run_id) -> list[tuple]:
    """The run's per-epoch metrics without the timings."""
    keys = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr")
    return [tuple(m[k] for k in keys) for m in store.epochs(run_id)]
