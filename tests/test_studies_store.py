"""The SQLite store: creation, refusal of a changed config, atomic claims across processes,
reclaiming runs of dead processes, epoch rows never duplicated."""

import dataclasses
import multiprocessing
import os
import subprocess
import sys

import pytest

from odenet.errors import ConfigError
from odenet.studies.spec import StudySpec
from odenet.studies.store import Store, pid_alive
from odenet.training import TrainConfig

SPEC = StudySpec(
    base=TrainConfig(dataset="synthetic", epochs=2),
    orders=(1, 2),
    depths=(8, 14),
    lrs=(0.1, 0.2, 0.4),
    seeds=(0, 1),
)


def _store(path):
    return Store.create(path, SPEC, {"odenet_version": "test"})


def _result(status="done", epochs=2):
    history = [
        {"epoch": e, "train_loss": 1.0 / e, "test_acc": 0.1 * e} for e in range(1, epochs + 1)
    ]
    return {
        "status": status,
        "history": history,
        "epochs_done": epochs,
        "test_acc": 0.1 * epochs,
        "provenance": {"seed": 0, "torch": "x"},
    }


def test_create_open_and_refuse_changed_config(tmp_path):
    store = _store(tmp_path / "s")
    assert store.counts()["pending"] == 24 and len(store.runs()) == 24
    assert store.spec() == SPEC and store.meta()["odenet_version"] == "test"
    _store(tmp_path / "s")  # same config: joins, adds nothing
    assert len(store.runs()) == 24
    before = sorted(p.name for p in (tmp_path / "s").iterdir())
    other = dataclasses.replace(SPEC, lrs=(0.1, 0.2))
    with pytest.raises(
        ConfigError, match="different config \\(lrs: 0.1,0.2,0.4 -> 0.1,0.2\\).*new --out"
    ):
        Store.open(tmp_path / "s").check_spec(other)
    assert sorted(p.name for p in (tmp_path / "s").iterdir()) == before
    with pytest.raises(ConfigError, match="no study in"):
        Store.open(tmp_path / "nothing")


def test_finish_replaces_epochs_and_stores_provenance(tmp_path):
    store = _store(tmp_path)
    (rid,) = store.claim(1, "sequential")
    store.record_epoch(rid, {"epoch": 1, "train_loss": 9.0, "test_acc": 0.05})
    store.record_epoch(rid, {"epoch": 1, "train_loss": 2.0, "test_acc": 0.1})  # after a resume
    assert [(m["epoch"], m["train_loss"]) for m in store.epochs(rid)] == [(1, 2.0)]
    store.finish(rid, _result())
    run = store.run(rid)
    assert (run.status, run.epochs_done, run.test_acc, run.executor) == (
        "done",
        2,
        0.2,
        "sequential",
    )
    assert run.provenance == {"seed": 0, "torch": "x"} and run.finished is not None
    assert [m["epoch"] for m in store.epochs(rid)] == [1, 2]
    (rid2,) = store.claim(1, "sequential")
    store.fail(rid2, "RuntimeError: boom")
    assert store.run(rid2).error == "RuntimeError: boom"
    assert store.retry_failed() == 1 and store.run(rid2).status == "pending"


def _worker(path, q):
    store = Store.open(path)
    mine = []
    while claimed := store.claim(1, "sequential"):
        for rid in claimed:
            store.record_epoch(rid, {"epoch": 1, "train_loss": 1.0, "test_acc": 0.1})
            store.finish(rid, _result())
            mine.append(rid)
    q.put(mine)


def test_two_processes_claim_each_run_exactly_once(tmp_path):
    store = _store(tmp_path)
    ctx = multiprocessing.get_context("fork")
    q = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(tmp_path, q)) for _ in range(2)]
    for p in procs:
        p.start()
    got = [q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    done = got[0] + got[1]
    assert sorted(done) == sorted(r.id for r in store.runs())  # each run once, none lost
    assert store.counts()["done"] == 24
    assert len(store.epochs()) == 48  # two epochs per run, no duplicates


def test_reclaim_runs_of_dead_processes_only(tmp_path):
    store = _store(tmp_path)
    a, b = store.claim(2, "sequential")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    assert not pid_alive(dead.pid) and pid_alive(os.getpid())
    with store.connect() as con:
        con.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead.pid, a))
    assert store.reclaim_dead() == [a]  # b belongs to this (live) process
    assert store.run(a).status == "pending" and store.run(b).status == "running"
    assert store.claim(1, "sequential") == [a]
    assert store.run(a).started is not None


def test_claim_with_a_key_takes_one_group_in_grid_order(tmp_path):
    """Grid order is (depth, scheme, lr, seed): 4 groups of 6 by (depth, scheme)."""
    from odenet.training.fused import fusion_key

    store, order = _store(tmp_path), [r.id for r in Store(tmp_path).runs()]
    # without a key: the next n pending runs, across groups (the old behaviour)
    assert store.claim(4, "x") == order[:4] and store.claim(4, "x") == order[4:8]
    for rid in order[:8]:
        store.release(rid)
    group = {r.id: fusion_key(r.config) for r in store.runs()}
    first = store.claim(4, "fused", fusion_key)
    assert first == order[:4]  # at most n, in grid order
    second = store.claim(4, "fused", fusion_key)
    assert second == order[4:6]  # the rest of that group, not two runs of the next
    assert store.claim(4, "fused", fusion_key) == order[6:10]
    assert {group[i] for i in first + second} == {group[order[0]]}
    assert [store.run(i).status for i in first + second] == ["running"] * 6
    # the key's runs need not be adjacent: every later pending run with the first's key
    assert store.claim(3, "x", lambda c: c.seed) == [order[10], order[12], order[14]]
    assert store.claim(0, "x", fusion_key) == [] and store.claim(0, "x") == []


def test_fused_executor_claims_a_scheme_that_does_not_fuse_alone(tmp_path):
    from odenet.studies.executors import make_executor
    from odenet.studies.executors.fused import claim_key

    spec = StudySpec(
        base=TrainConfig(dataset="synthetic", epochs=1),
        orders=(1, 2),
        solvers=("lm",),
        depths=(8,),
        lrs=(0.1, 0.2, 0.4),
    )
    store = Store.create(tmp_path, spec, {})
    assert make_executor("fused", "cpu", 8).key is claim_key
    claims = []
    while claimed := store.claim(8, "fused", claim_key):
        claims.append([i.split("-")[1] for i in claimed])
    assert claims == [["euler"] * 3, ["heun"] * 3, ["lm"], ["lm"], ["lm"]]
