"""A study as pandas DataFrames: "runs" (a row per run, a column per axis, as report --csv),
"epochs" (a row per run and epoch), "steps" (report --json's steps) and "analysis" (a row
per run and field of an analysis's flat table)."""

import json
import math
import sys

import pytest

pd = pytest.importorskip("pandas")

from odenet import ConfigError, load_study  # noqa: E402
from odenet.nets import ModelConfig  # noqa: E402
from odenet.studies import Store, StudySpec, run_study  # noqa: E402
from odenet.tables import FlatTable  # noqa: E402
from odenet.training import TrainConfig  # noqa: E402

BASE = TrainConfig(dataset="synthetic:train=64,test=32,size=8", epochs=2, batch_size=32,
                   log_every=1, model=ModelConfig(width=4))  # fmt: skip
SPEC = StudySpec(base=BASE, orders=(1,), depths=(8,), lrs=(0.1,), seeds=(0, 1),
                 sweep={"weight_decay": (0.0, 5e-4)})  # fmt: skip
AXES = ["depth", "solver", "lr", "weight_decay", "seed"]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Four runs; analysis tables stored for some: a row per field (analyze's form) for two,
    one row (landscape's sharpness form) for one."""
    out = tmp_path_factory.mktemp("frames") / "study"
    run_study(SPEC, out, quiet=True)
    store = Store.open(out)
    first, second = store.runs()[:2]
    for k, run in enumerate((first, second)):
        rows = (("s1.b1", 0.5 + k, True), ("s1.b2", 0.25, None))
        fields = FlatTable(("field", "response", "inside"), rows, index=("field",))
        store.record_analysis(run.id, "analyze", {"k": k}, {}, fields)
    store.record_analysis(first.id, "sharpness", {}, {}, FlatTable(("lambda_max",), ((12.5,),)))
    return out


def _same(a, b) -> bool:
    """Cell equality with NaN, None and a CSV's empty cell all 'missing'."""
    missing = [v is None or (isinstance(v, float) and math.isnan(v)) for v in (a, b)]
    if any(missing):
        return all(missing)
    return a == b


def test_runs_frame_has_a_row_per_run_a_column_per_axis_and_agrees_with_csv(study, run_cli):
    data = load_study(study)
    runs = data.dataframe("runs")
    assert list(runs["id"]) == [r.id for r in data.records]
    for name in AXES:
        assert list(runs[name]) == [r.axes[name] for r in data.records]
    assert list(runs["status"]) == ["done"] * 4 and list(runs["members"]) == [1] * 4
    assert list(runs["test_acc"]) == [r.test_acc for r in data.records]
    assert _same(runs["lambda_max"][0], 12.5) and runs["lambda_max"][1:].isna().all()
    csv = study.parent / "runs.csv"
    code, _, err = run_cli(["report", str(study), "--csv", str(csv)])
    assert code == 0, err
    read = pd.read_csv(csv)
    assert list(read.columns) == list(runs.columns)
    for column in runs.columns:
        for a, b in zip(runs[column], read[column], strict=True):
            assert _same(a, b), (column, a, b)


def test_epochs_frame_has_a_row_per_run_and_epoch_with_its_axes(study):
    data = load_study(study)
    epochs = data.dataframe("epochs")
    assert list(epochs.columns[:7]) == ["run_id", *AXES, "epoch"]
    assert "epoch_lr" in epochs.columns  # the epoch's last lr; "lr" is the axis
    assert len(epochs) == 4 * 2
    assert not epochs.duplicated(["run_id", "epoch"]).any()
    store = Store.open(study)
    for r in data.records:
        mine = epochs[epochs["run_id"] == r.id]
        assert list(mine["epoch"]) == [1, 2]
        assert (mine["lr"] == r.lr).all() and (mine["weight_decay"] == r.config.weight_decay).all()
        stored = store.epochs(r.id)
        assert list(mine["test_acc"]) == [m["test_acc"] for m in stored]
        assert list(mine["epoch_lr"]) == [m["lr"] for m in stored]


def test_steps_frame_is_report_json_steps(study, run_cli):
    code, out, err = run_cli(["report", str(study), "--json"])
    assert code == 0, err
    steps = load_study(study).dataframe("steps")
    assert list(steps.columns) == ["run_id", "step", "loss", "lr"]
    assert steps.to_dict("records") == json.loads(out)["steps"]
    assert len(steps) == 4 * 2 * 2  # 2 steps an epoch, each logged


def test_analysis_frame_has_a_row_per_run_and_field(study):
    data = load_study(study)
    frame = data.dataframe("analysis")
    assert list(frame.columns) == ["run_id", "kind", *AXES, "field", "response", "inside"]
    first, second = data.records[:2]
    assert list(frame["run_id"]) == [first.id, first.id, second.id, second.id]
    assert list(frame["field"]) == ["s1.b1", "s1.b2"] * 2
    assert list(frame["response"]) == [0.5, 0.25, 1.5, 0.25]
    assert set(frame["kind"]) == {"analyze"} and list(frame["seed"]) == [0, 0, 1, 1]


def test_bad_kind_and_missing_pandas_are_one_clear_error(study, monkeypatch):
    data = load_study(study)
    with pytest.raises(ConfigError, match="unknown dataframe kind 'run'; expected one of runs"):
        data.dataframe("run")
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(ConfigError) as err:
        data.dataframe("runs")
    assert (
        str(err.value)
        == 'dataframe() needs pandas, which is not installed: pip install "odenet[pandas]"'
    )
