"""The fused executor: make_executor, grouping, small studies through run_pending (claims that
follow fusion groups; a failing group's members trained one by one, nothing done lost).

The study has euler (fuses) and lm (falls back to one-by-one training with a logged line) at
three lrs; lr 1e4 diverges. Each fused member's store row, epochs and result.json must be
those of a separate run of its config.
"""

import logging

import pytest
import torch
from float32_bounds import training_rtol
from threads import one_torch_thread

from odenet.errors import ConfigError
from odenet.nets import ModelConfig
from odenet.studies.executors import FusedExecutor, SequentialExecutor, make_executor
from odenet.studies.executors.fused import group_runs
from odenet.studies.runner import StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import Store
from odenet.training import TrainConfig, train
from odenet.training.checkpoint import load_result

SPEC = StudySpec(
    base=TrainConfig(
        epochs=1,
        dataset="synthetic:train=64,test=32,size=8",
        batch_size=16,
        device="cpu",
        model=ModelConfig(width=4),
    ),
    orders=(1,),
    solvers=("lm",),
    depths=(8,),
    lrs=(0.1, 0.4, 1e4),
    seeds=(0,),
)


def test_make_executor_names_and_errors():
    assert isinstance(make_executor("sequential", "cpu", 4), SequentialExecutor)
    fused = make_executor("fused", "cpu", 5)
    assert isinstance(fused, FusedExecutor) and fused.capacity == 5 and fused.name == "fused"
    auto = make_executor("auto", "cpu", 8)
    assert isinstance(auto, SequentialExecutor)  # auto fuses only on CUDA
    if torch.cuda.is_available():
        assert isinstance(make_executor("auto", "cuda", 8), FusedExecutor)
    with pytest.raises(ConfigError, match="expected one of: auto, sequential, fused"):
        make_executor("parallel", "cpu", 8)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(ConfigError, match="--fuse-max"):
            make_executor("fused", "cpu", bad)


def test_group_runs_by_everything_but_lr_and_seed(tmp_path):
    spec = StudySpec(
        base=TrainConfig(dataset="synthetic", epochs=1),
        orders=(1, 2),
        depths=(8, 14),
        lrs=(0.1, 0.2, 0.4),
        seeds=(0, 1),
    )
    store = Store.create(tmp_path / "s", spec, {})
    groups = group_runs(store.runs(), 4)
    # 4 (depth, scheme) pairs x 6 (lr, seed) runs, in chunks of at most 4: 4 + 2 each
    assert [len(g) for g in groups] == [4, 2] * 4
    for g in groups:
        assert len({(r.depth, r.solver) for r in g}) == 1
    assert sorted(r.id for g in groups for r in g) == sorted(r.id for r in store.runs())


def test_fused_study_writes_members_as_separate_runs(tmp_path, caplog):
    with one_torch_thread():
        store = Store.create(tmp_path / "study", SPEC, {})
        with caplog.at_level(logging.WARNING, logger="odenet.studies"):
            run_pending(store, make_executor("fused", "cpu", 3), wait=False)
    rows = {r.id: r for r in store.runs()}
    runs = SPEC.runs
    assert {r.status for r in rows.values()} == {"done", "diverged"}
    assert [rows[r.id].status for r in runs if r.lr == 1e4] == ["diverged", "diverged"]
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1 and "'lm'" in lines[0] and "sequentially" in lines[0]
    for r in runs:
        row = rows[r.id]
        execution = row.provenance["execution"]
        assert row.executor == execution["executor"]  # what trained it, not what claimed it
        if r.solver == "euler":
            assert execution == {"executor": "fused", "members": 3}
        else:
            assert execution["executor"] == "sequential" and execution["members"] == 1
            assert "lm" in execution["reason"]
        assert load_result(row.run_dir)["provenance"]["execution"] == execution
    # a fused member's row and epochs are those of a separate run of its config
    member = next(r for r in runs if r.solver == "euler" and r.lr == 0.4)
    ref = train(member.config)
    row = rows[member.id]
    assert row.epochs_done == ref.epochs_done == 1
    # fused vs plain convolutions: other summation orders, the longest sum a weight gradient
    # over 16 x 8 x 8 positions, 4 steps (tests/float32_bounds.py); accuracies: one flip
    rtol = training_rtol(16 * 8 * 8, 4)
    (epoch,) = store.epochs(member.id)
    assert row.train_loss == pytest.approx(ref.train_loss, rel=rtol)
    assert row.test_acc == pytest.approx(ref.test_acc, abs=1.01 / 32)
    assert epoch["lr"] == ref.history[0].lr
    for key in ("train_loss", "test_loss"):
        assert epoch[key] == pytest.approx(getattr(ref.history[0], key), rel=rtol), key
    for key, images in (("train_acc", 64), ("test_acc", 32)):
        assert epoch[key] == pytest.approx(getattr(ref.history[0], key), abs=1.01 / images), key


def test_store_names_the_executor_that_actually_trained_each_run(tmp_path, monkeypatch):
    """lm does not fuse: under --executor fused its runs train one by one and say so; each
    run's result.json is written once, with that provenance."""
    import odenet.training.checkpoint as ckpt
    from odenet.studies import Store, StudySpec, run_study

    written, save_result = [], ckpt.save_result

    def counted(out_dir, result):
        written.append((out_dir.name, result["provenance"]["execution"]))
        return save_result(out_dir, result)

    monkeypatch.setattr(ckpt, "save_result", counted)
    spec = StudySpec(
        base=TrainConfig(
            dataset="synthetic:train=128,test=64,size=8",
            epochs=1,
            batch_size=32,
            model=ModelConfig(width=4),
        ),
        orders=(1,),
        solvers=("lm",),
        depths=(8,),
        lrs=(0.1, 0.2),
        executor="fused",
    )
    study = run_study(spec, tmp_path / "s", quiet=True)
    runs = {r.id: r for r in Store.open(tmp_path / "s").runs()}
    for run_id, run in runs.items():
        execution = run.provenance["execution"]
        assert run.executor == execution["executor"]
        assert execution["executor"] == ("sequential" if "-lm-" in run_id else "fused")
        assert load_result(run.run_dir)["provenance"]["execution"] == execution
    assert sorted(written) == sorted((i, r.provenance["execution"]) for i, r in runs.items())
    # the report's run rows (report --json / --csv) carry the executor and the group size
    rows = {row["id"]: (row["executor"], row["members"]) for row in study.run_rows()}
    assert rows == {i: ("sequential", 1) if "-lm-" in i else ("fused", 2) for i in runs}


TINY = dict(depths=(8,), seeds=(0,), base=TrainConfig(
    epochs=1, dataset="synthetic:train=32,test=16,size=8", batch_size=16, device="cpu",
    model=ModelConfig(width=4),
))  # fmt: skip


class Events(StudyObserver):
    def __init__(self):
        self.starts, self.ends = [], []

    def on_run_start(self, run):
        self.starts.append(run.id)

    def on_run_end(self, run):
        self.ends.append(run.id)


def _run_study(tmp_path, spec, fuse_max, observer=None):
    with one_torch_thread():
        store = Store.create(tmp_path / "study", spec, {})
        run_pending(store, make_executor("fused", "cpu", fuse_max), observer, wait=False)
    return store


def test_every_fusion_group_is_claimed_and_trained_as_one(tmp_path):
    """3 schemes x 3 lrs with fuse_max 4: claims in grid order would split heun and rk4."""
    spec = StudySpec(orders=(1, 2, 4), lrs=(0.05, 0.1, 0.2), **TINY)
    events = Events()
    store = _run_study(tmp_path, spec, 4, events)
    runs = store.runs()
    assert {r.status for r in runs} == {"done"}
    for r in runs:
        assert r.provenance["execution"] == {"executor": "fused", "members": 3}, r.id
    assert sorted(events.starts) == sorted(events.ends) == sorted(r.id for r in runs)


def test_a_failing_fused_group_trains_its_members_one_by_one(tmp_path, monkeypatch, caplog):
    import odenet.training.fused

    def out_of_memory(configs, **kw):
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(odenet.training.fused, "train_fused", out_of_memory)
    spec = StudySpec(orders=(1,), lrs=(0.05, 0.1, 0.2), **TINY)
    events = Events()
    with caplog.at_level(logging.WARNING, logger="odenet.studies"):
        store = _run_study(tmp_path, spec, 8, events)
    runs = store.runs()
    assert [r.status for r in runs] == ["done"] * 3
    (line,) = [r.getMessage() for r in caplog.records]
    assert "CUDA out of memory" in line and all(r.id in line for r in runs)
    for r in runs:
        execution = r.provenance["execution"]
        assert r.executor == execution["executor"] == "sequential" and execution["members"] == 1
        assert "fused group failed" in execution["reason"]
        assert "RuntimeError: CUDA out of memory" in execution["reason"]
        assert load_result(r.run_dir)["provenance"]["execution"] == execution
    # each member started and ended once, although the group was told first
    assert events.starts == events.ends == [r.id for r in runs]


def test_a_member_the_failed_group_finished_keeps_its_result(tmp_path, monkeypatch):
    import odenet.training.fused

    real, finished = odenet.training.fused.train_fused, []

    def first_then_fail(configs, *, out_dirs, dataset, callbacks, execution):
        finished.extend(real(configs[:1], out_dirs=out_dirs[:1], dataset=dataset,
                             callbacks=callbacks[:1], execution=execution))  # fmt: skip
        raise RuntimeError("boom")

    monkeypatch.setattr(odenet.training.fused, "train_fused", first_then_fail)
    spec = StudySpec(orders=(1,), lrs=(0.05, 0.1, 0.2), **TINY)
    first, *rest = _run_study(tmp_path, spec, 8).runs()
    (kept,) = finished
    # not trained again: its fused result (wall time included) is what the store holds
    assert first.status == "done" and first.seconds == kept.seconds
    assert first.provenance["execution"] == {"executor": "fused", "members": 1}
    assert first.executor == "fused" and load_result(first.run_dir)["seconds"] == kept.seconds
    for r in rest:
        assert r.status == "done" and r.provenance["execution"]["executor"] == "sequential"


def test_an_interrupt_gives_every_unfinished_member_back(tmp_path, monkeypatch):
    import odenet.training
    import odenet.training.fused

    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    def out_of_memory(configs, **kw):
        raise RuntimeError("CUDA out of memory")

    spec = StudySpec(orders=(1,), lrs=(0.05, 0.1, 0.2), **TINY)
    store = Store.create(tmp_path / "study", spec, {})
    for fused, single in ((interrupted, None), (out_of_memory, interrupted)):
        monkeypatch.setattr(odenet.training.fused, "train_fused", fused)
        if single is not None:  # the group fails, then the first one-by-one run is interrupted
            monkeypatch.setattr(odenet.training, "train", single)
        with pytest.raises(KeyboardInterrupt):
            run_pending(store, make_executor("fused", "cpu", 8), wait=False)
        assert store.counts()["pending"] == 3


def test_a_failed_group_frees_its_network_before_the_members_train(tmp_path, monkeypatch):
    """The fallback exists for "CUDA out of memory": while the members train one by one, the
    failed group's fused network (held by the exception's traceback) must be gone."""
    import gc

    import odenet.training
    import odenet.training.fused
    from odenet.nets import build_model
    from odenet.nets.fused import FusedResNet, fuse

    def fails_holding_a_network(configs, **kw):
        network = fuse([build_model(8, "euler", width=4) for _ in configs])  # noqa: F841
        raise RuntimeError("CUDA out of memory")

    alive, real_train = [], odenet.training.train

    def counting_train(config, **kw):
        gc.collect()
        alive.append(sum(type(o) is FusedResNet for o in gc.get_objects()))
        return real_train(config, **kw)

    monkeypatch.setattr(odenet.training.fused, "train_fused", fails_holding_a_network)
    monkeypatch.setattr(odenet.training, "train", counting_train)
    spec = StudySpec(orders=(1,), lrs=(0.05, 0.1), **TINY)
    assert [r.status for r in _run_study(tmp_path, spec, 8).runs()] == ["done", "done"]
    assert alive == [0, 0]
