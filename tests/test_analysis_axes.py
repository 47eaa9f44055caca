"""A run's identity is its axes (issue 18): analyze, landscape and the report select, group
and label runs by every axis of a study, a swept one (downsample) included."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from odenet.cli import main
from odenet.studies.store import Store
from odenet.tables import FlatTable

STUDY = (
    "study --dataset synthetic:train=256,test=128,size=8 --set arch=single --depths 14 "
    "--axis downsample=stem,field --orders 1,4 --lrs 0.1,0.4 --seeds 0,1 --width 4 --epochs 1 "
    "--device cpu -q"
).split()
SMALL = ["--limit-data", "16", "--krylov", "2", "--restarts", "1", "--eigen-images", "2"]
VARIANTS = {("euler", "stem"), ("euler", "field"), ("rk4", "stem"), ("rk4", "field")}


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("axes") / "s"
    with pytest.raises(SystemExit) as exit_info:
        main([*STUDY, "--out", str(out)])
    assert not exit_info.value.code
    return out


def _json(run_cli, argv: list[str]) -> dict:
    code, out, err = run_cli(argv)
    assert code == 0, err
    return json.loads(out)


def _best_lrs(study: Path) -> dict[tuple[str, str], float]:
    """Per (scheme, downsample), the lr with the best mean test accuracy over its seeds
    (ties: the smaller lr), from the stored runs."""
    accs: dict[tuple, dict[float, list[float]]] = {}
    for r in Store.open(study).runs():
        cell = (r.solver, r.axes["downsample"])
        accs.setdefault(cell, {}).setdefault(r.lr, []).append(r.test_acc)
    return {
        cell: max(sorted(by_lr), key=lambda lr: sum(by_lr[lr]) / len(by_lr[lr]))
        for cell, by_lr in accs.items()
    }


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)


def test_analyze_default_selection_measures_every_variant(study, run_cli):
    got = _json(run_cli, ["analyze", str(study), *SMALL, "--no-initial", "--no-figures", "--json"])
    models = got["models"]
    assert {(m["solver"], m["downsample"]) for m in models} == VARIANTS
    best = _best_lrs(study)
    for m in models:  # the best lr of its own cell, its smallest seed
        assert (m["lr"], m["seed"]) == (best[m["solver"], m["downsample"]], 0)
    table = got["table"]
    assert {(r["scheme"], r["downsample"]) for r in table} == VARIANTS
    assert all(r["n"] == 1 for r in table)
    assert got["settings"]["selection"]["lr"] == "best per (depth, scheme, downsample)"


def test_analyze_all_never_averages_runs_that_differ_in_an_axis(study, run_cli):
    argv = ["analyze", str(study), *SMALL, "--lr", "all", "--seed", "all", "--json"]
    got = _json(run_cli, argv)
    models = got["models"]
    assert len(models) == 16
    table = got["table"]
    assert len(table) == 8  # 2 schemes x 2 downsample x 2 lrs, each the mean of its 2 seeds
    for row in table:
        same = [
            m
            for m in models
            if (m["solver"], m["downsample"], m["lr"])
            == (row["scheme"], row["downsample"], row["lr"])
        ]
        assert row["n"] == 2 and row["seeds"] == [0, 1] == sorted(m["seed"] for m in same)
        # means of a few float64 terms: summation order changes them by a few ulps at most
        want = _mean([_mean(m["responses"]["network_order"]) for m in same])
        assert row["response"] == pytest.approx(want, rel=1e-12)
        want = _mean([_mean(m["step_ratios"]) for m in same])
        assert row["step_ratio"] == pytest.approx(want, rel=1e-12)
        assert row["test_acc"] == pytest.approx(_mean([m["test_acc"] for m in same]), rel=1e-12)
        # the stem and field networks differ (field: one field fewer has a square Jacobian):
        # a row mixing them could not match both
        assert {m["fields_with_region"] for m in same} == {row["fields_with_region"]}
    assert {r["fields_with_region"] for r in table if r["downsample"] == "stem"} != {
        r["fields_with_region"] for r in table if r["downsample"] == "field"
    }
    # the figures label each line with its swept value and its n
    svg = (study / "analysis" / "responses_d14.svg").read_text()
    assert "rk4 downsample=field, lr 0.4 (n=2)" in svg


def test_landscape_measures_every_variant_and_reports_them(study, run_cli):
    argv = ["landscape", str(study), "--points", "3", "--limit-data", "16"]
    got = _json(run_cli, [*argv, "--power-iters", "1", "--trace-probes", "1", "--json"])
    models = got["models"]
    assert {(m["solver"], m["downsample"]) for m in models} == VARIANTS
    best = _best_lrs(study)
    assert all(m["lr"] == best[m["solver"], m["downsample"]] for m in models)
    svg = (study / "landscape" / "slice1d_d14.svg").read_text()
    assert "euler downsample=field (lr" in svg and "euler downsample=stem (lr" in svg
    # the report: landscape's section, and its sharpness as run columns of the measured runs
    code, out, err = run_cli(["report", str(study), "--json"])
    assert code == 0, err
    rows = {r["id"]: r for r in json.loads(out)["runs"]}
    measured = {m["run_id"]: m["sharpness"] for m in models}
    for run_id, row in rows.items():
        if run_id in measured:
            assert row["lambda_max"] == measured[run_id]["lambda_max"]
            assert row["trace"] == measured[run_id]["trace"]
        else:
            assert row["lambda_max"] is None and row["trace"] is None
    md = (study / "report.md").read_text()
    assert "## Loss landscape" in md and "![slice1d_d14](landscape/slice1d_d14.png)" in md


def test_where_keeps_the_runs_with_a_swept_value(study, run_cli):
    argv = ["analyze", str(study), *SMALL, "--no-initial", "--no-figures", "--json"]
    got = _json(run_cli, [*argv, "--where", "downsample=field", "--lr", "all"])
    assert {(m["solver"], m["downsample"], m["lr"]) for m in got["models"]} == {
        (s, "field", lr) for s in ("euler", "rk4") for lr in (0.1, 0.4)
    }
    assert got["settings"]["selection"]["where"] == {"downsample": ["field"]}
    for where, what in (
        ("downsample=middle", "no finished run with downsample middle"),
        ("width=4", "--where width: not a swept axis of this study (its swept axes: downsample)"),
        ("nonsense", "--where 'nonsense': write FIELD=VALUE"),
    ):
        code, _, err = run_cli([*argv, "--where", where])
        assert code == 2 and len(err.strip().splitlines()) == 1 and what in err, err


def test_sections_and_tables_of_the_analyses_reach_the_report(study, run_cli):
    code, _, err = run_cli(["analyze", str(study), *SMALL, "--no-initial", "--no-figures"])
    assert code == 0, err
    store = Store.open(study)
    rows = [r for r in store.analyses("analyze") if r["table"] is not None]
    assert rows, "analyze stores its flat form"
    for r in rows:
        table = r["table"]
        assert table.index == ("field",)
        assert [row["response"] for row in table.records()] == (
            r["result"]["responses"]["network_order"]
        )
        assert math.isfinite(table.records()[0]["grad_param"])
    code, _, err = run_cli(["report", str(study)])
    assert code == 0, err
    md = (study / "report.md").read_text()
    assert "## What the instruments show (odenet analyze)" in md
    assert md.index("## What the instruments") < md.index("## Runs")


def test_flat_tables_are_stored_beside_a_result_and_handed_back_apart(tmp_path):
    from odenet.studies import StudySpec
    from odenet.training import TrainConfig

    with pytest.raises(ValueError, match="2 values"):
        FlatTable(("a", "b"), ((1,),))
    with pytest.raises(ValueError, match="index"):
        FlatTable(("a",), ((1,),), index=("b",))
    base = TrainConfig(dataset="synthetic", epochs=1)
    spec = StudySpec(base=base, solvers=("euler",), depths=(8,), lrs=(0.1,))
    runs = spec.runs
    store = Store.create(tmp_path / "s", spec, {})
    table = FlatTable(("x", "y"), ((1.5, None),))
    store.record_analysis(runs[0].id, "k", {"a": 1}, {"x": 1.5, "deep": {"y": None}}, table)
    store.record_analysis(runs[0].id, "other", {"a": 1}, {"z": 2})
    assert store.analysis(runs[0].id, "k", {"a": 1}) == {"x": 1.5, "deep": {"y": None}}
    rows = store.analyses()
    assert [(r["kind"], r["table"]) for r in rows] == [("k", table), ("other", None)]
    assert rows[0]["result"] == {"x": 1.5, "deep": {"y": None}}
    assert store.analyses("other")[0]["result"] == {"z": 2}


def test_the_store_reads_the_swept_names_without_building_the_spec():
    from odenet.studies import StudySpec
    from odenet.training import TrainConfig

    sweep = {"weight_decay": (0.0, 5e-4), "momentum": (0.8, 0.9), "epochs": (1,)}
    spec = StudySpec(base=TrainConfig(dataset="synthetic"), depths=(8,), lrs=(0.1,), sweep=sweep)
    assert spec.swept == StudySpec.swept_in(spec.to_dict()) == ("momentum", "weight_decay")
    old = {"orders": [1], "depths": [8], "lrs": [0.1], "seeds": [0], "epochs": 1}  # format 1
    assert StudySpec.swept_in(old) == StudySpec.from_dict(old).swept == ()
