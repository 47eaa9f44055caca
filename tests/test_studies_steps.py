"""Step-resolution metrics: the store's steps table (idempotent on resume), a run's on_log
callback through its events and the runner's recorder, report --json "steps" and the
loss-by-step figure (rows recorded directly; the engine's logging is tested where it is
produced)."""

import dataclasses
import json
import math
import sqlite3

import pytest

from odenet.nets import ModelConfig
from odenet.studies import Store, StudySpec, load_study, report_study
from odenet.studies.executors.events import RunEvents
from odenet.studies.figures import _seed_mean
from odenet.studies.runner import Recorder, StudyObserver
from odenet.training.config import TrainConfig
from odenet.training.results import StepLog, TrainCallbacks

SPEC = StudySpec(
    base=TrainConfig(dataset="synthetic", epochs=2, model=ModelConfig(width=4)),
    orders=(1, 4),
    depths=(8,),
    lrs=(0.1, 0.4),
    seeds=(0, 1),
)


def _store(path):
    return Store.create(path, SPEC, {})


def _finish(store, rid, status="done"):
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_acc": 0.3 * e} for e in (1, 2)]
    store.finish(rid, {"status": status, "history": history, "epochs_done": 2,
                       "test_acc": 0.6, "provenance": {}})  # fmt: skip


def _loss(rid: str, step: int) -> float:
    """A distinct, exactly representable loss per (run, step)."""
    return 3.0 - step / 64 + sum(map(ord, rid)) % 7 / 8


def test_record_steps_accepts_steplogs_and_dicts_and_replaces_on_resume(tmp_path):
    store = _store(tmp_path / "s")
    rid, other = SPEC.runs[0].id, SPEC.runs[1].id
    store.record_steps(rid, [StepLog(s, _loss(rid, s), 0.1 * s) for s in range(1, 11)])
    store.record_steps(other, [{"step": 1, "loss": 1.5, "lr": 0.05}])
    assert [r["step"] for r in store.steps(rid)] == list(range(1, 11))
    assert store.steps(other) == [{"run_id": other, "step": 1, "loss": 1.5, "lr": 0.05}]
    assert len(store.steps()) == 11
    # the same rows again (a resumed run re-logs a step): replaced, not duplicated
    store.record_steps(rid, [StepLog(5, 9.0, 0.5)])
    rows = store.steps(rid)
    assert len(rows) == 10 and rows[4] == {"run_id": rid, "step": 5, "loss": 9.0, "lr": 0.5}
    # a new attempt resuming from a checkpoint at step 6: the earlier attempt's 6..10 go
    store.record_steps(rid, [StepLog(6, 1.0, 0.6), StepLog(7, 0.9, 0.7)], restart=True)
    assert [(r["step"], r["loss"]) for r in store.steps(rid)][4:] == [(5, 9.0), (6, 1.0), (7, 0.9)]
    assert len(store.steps(other)) == 1  # other runs untouched
    store.record_steps(rid, [])  # nothing logged since the last read: no-op


def test_run_events_store_logged_rows_restarting_once_per_attempt(tmp_path):
    store = _store(tmp_path / "s")
    run = store.runs()[0]
    recorder = Recorder(store, StudyObserver())
    recorder.track([run.id])
    first = RunEvents(run.id, recorder.record)
    assert isinstance(first, TrainCallbacks)
    first.on_log([StepLog(s, 1.0, 0.1) for s in range(1, 5)])
    first.on_log([StepLog(s, 1.0, 0.1) for s in range(5, 9)])  # later reads append
    assert [r["step"] for r in store.steps(run.id)] == list(range(1, 9))
    again = RunEvents(run.id, recorder.record)  # killed; resumed from step 4's checkpoint
    again.on_log([])
    again.on_log([StepLog(5, 2.0, 0.2)])
    again.on_log([StepLog(6, 2.0, 0.2)])
    assert [(r["step"], r["loss"]) for r in store.steps(run.id)] == [
        (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0), (5, 2.0), (6, 2.0)
    ]  # fmt: skip


def test_steps_table_is_added_to_a_study_made_without_it(tmp_path):
    store = _store(tmp_path / "s")
    with sqlite3.connect(store.path) as con:
        con.execute("DROP TABLE steps")
    assert store.steps() == []
    rid = store.runs()[0].id
    store.record_steps(rid, [StepLog(1, 2.0, 0.1)])
    assert store.steps() == [{"run_id": rid, "step": 1, "loss": 2.0, "lr": 0.1}]


def test_seed_mean_averages_the_seeds_that_logged_each_step():
    a = [{"step": s, "loss": float(s)} for s in (1, 2, 3)]
    b = [{"step": 1, "loss": 3.0}, {"step": 2, "loss": math.nan}]  # diverged at step 2
    assert _seed_mean([a, b]) == ([1, 2, 3], [2.0, 2.0, 3.0])


def test_report_json_has_steps_and_draws_loss_by_step(tmp_path):
    store = _store(tmp_path / "s")
    runs = store.runs()
    for r in runs:
        _finish(store, r.id)
        store.record_steps(r.id, [StepLog(s, _loss(r.id, s), 0.01 * s) for s in range(1, 151)])
    data = report_study(tmp_path / "s")
    steps = data.to_json()["steps"]
    assert len(steps) == 150 * len(runs)
    assert set(steps[0]) == {"run_id", "step", "loss", "lr"}
    by_run = {}
    for row in steps:
        by_run.setdefault(row["run_id"], []).append(row)
        assert row["loss"] == _loss(row["run_id"], row["step"])
    assert sorted(by_run) == sorted(r.id for r in runs)
    for rows in by_run.values():  # increasing steps for every run
        assert [r["step"] for r in rows] == list(range(1, 151))
    json.dumps(data.to_json())  # JSON-able
    fig = tmp_path / "s" / "figures"
    assert (fig / "loss_by_step.png").stat().st_size > 0
    svg = (fig / "loss_by_step.svg").read_text()
    for lr in (0.1, 0.4):  # a panel per lr, a line per scheme, two seeds behind each
        for scheme in ("euler", "rk4"):
            assert f'id="steps-d8-lr{lr:g}-{scheme}"' in svg
    assert svg.count("(n=2 seeds)") == 4
    assert "loss_by_step.png" in (tmp_path / "s" / "report.md").read_text()


def test_report_without_steps_has_an_empty_list_and_no_figure(tmp_path):
    store = _store(tmp_path / "s")
    for r in store.runs():
        _finish(store, r.id)
    data = report_study(tmp_path / "s")
    assert data.to_json()["steps"] == [] and load_study(tmp_path / "s").steps == []
    assert not (tmp_path / "s" / "figures" / "loss_by_step.png").exists()


def test_a_diverged_runs_nonfinite_step_is_kept_in_the_data(tmp_path):
    """The diverging step's loss stays in the rows (the figure leaves it out: _seed_mean;
    the JSON writes null)."""
    store = _store(tmp_path / "s")
    runs = store.runs()
    _finish(store, runs[0].id, "diverged")
    store.record_steps(runs[0].id, [StepLog(1, 2.0, 0.1), StepLog(2, math.inf, 0.1)])
    data = load_study(tmp_path / "s")
    assert [r["loss"] for r in data.steps] == [2.0, math.inf]
    # report --json stays strict JSON: the non-finite loss is null
    assert [r["loss"] for r in data.to_json()["steps"]] == [2.0, None]
    json.dumps(data.to_json(), allow_nan=False)


@pytest.mark.slow
@pytest.mark.skipif(
    "log_every" not in {f.name for f in dataclasses.fields(TrainConfig)},
    reason="the engine's step logging (TrainConfig.log_every, on_log calls) has not landed",
)
def test_a_study_logs_every_step_of_every_run(tmp_path, run_cli):
    """End to end: 256 images in batches of 128 are 2 steps an epoch; a short run logs every
    step (log_every auto), so each run's steps are 1..4 over 2 epochs."""
    out = tmp_path / "s"
    args = ["study", "--dataset", "synthetic:train=256,test=128,size=8", "--depths", "8",
            "--width", "4", "--epochs", "2", "--orders", "1,4", "--lrs", "0.1,0.4",
            "--device", "cpu", "--quiet", "--out", str(out)]  # fmt: skip
    code, _, err = run_cli(args)
    assert code == 0, err
    code, stdout, err = run_cli(["report", str(out), "--json"])
    data = json.loads(stdout)
    ids = [r["id"] for r in data["runs"]]
    assert len(ids) == 4
    for rid in ids:
        rows = [r for r in data["steps"] if r["run_id"] == rid]
        assert [r["step"] for r in rows] == [1, 2, 3, 4]
        assert all(math.isfinite(r["loss"]) and r["lr"] >= 0 for r in rows)
