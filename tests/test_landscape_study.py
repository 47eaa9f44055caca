"""`odenet landscape` on a real (tiny, synthetic) study, and run selection from a study's runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odenet.cli import main
from odenet.errors import ConfigError
from odenet.studies.landscape import LandscapeConfig, config_from_options, run_landscape
from odenet.studies.landscape_select import select_runs
from odenet.studies.sharpness import SharpnessConfig
from odenet.studies.store import RunRecord, Store
from odenet.training import TrainConfig

DATASET = "synthetic:train=128,test=32,size=16"


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from odenet.studies import StudySpec, run_study

    out = tmp_path_factory.mktemp("study") / "s"
    spec = StudySpec(
        orders=(1, 2),
        depths=(8,),
        lrs=(0.1,),
        seeds=(0,),
        epochs=1,
        dataset=DATASET,
        batch_size=64,
        device="cpu",
    )
    run_study(spec, out, quiet=True)
    return out


def _eval_loss_on_first(run_dir: Path, n: int) -> tuple[float, float]:
    """The trained model's eval loss on the first n training images, computed independently."""
    from odenet.data.datasets import load_dataset
    from odenet.training import load_trained

    model, config = load_trained(run_dir)
    ds = load_dataset(config.dataset)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    x = (ds.train_images[:n].float() / 255 - mean) / std
    with torch.no_grad():
        logits = model.eval()(x)
    y = ds.train_labels[:n]
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).double().mean().item()


def test_1d_landscape_on_a_study(study):
    cfg = LandscapeConfig(
        str(study),
        dims=1,
        points=7,
        limit_data=32,
        points_per_batch=4,
        sharpness_config=SharpnessConfig(power_iters=2, trace_probes=1),
    )
    result = run_landscape(cfg)
    assert [m.run.solver for m in result.models] == ["euler", "heun"]
    for m in result.models:
        assert m.eval_mode == "vmap" and m.slice.complete
        loss0, acc0 = _eval_loss_on_first(m.run.run_dir, 32)
        assert m.slice.at_origin()[0] == pytest.approx(loss0, rel=1e-5)
        assert m.slice.at_origin()[1] == pytest.approx(acc0)
        assert np.isfinite(m.sharpness["lambda_max"]) and m.sharpness["lambda_max"] > 0
    out = study / "landscape"
    assert {p.name for p in result.figures} == {"slice1d_d8.png", "slice1d_d8.svg"}
    assert all(p.stat().st_size > 0 for p in result.figures)
    # sharpness table: one row per model, keyed by (run, images used, seed)
    with Store.open(study).connect() as con:
        rows = con.execute("SELECT run_id, limit_data, seed FROM sharpness").fetchall()
    assert sorted(tuple(r) for r in rows) == [
        ("d8-euler-lr0.1-s0", 32, 0),
        ("d8-heun-lr0.1-s0", 32, 0),
    ]
    # the settings of each slice sit beside it; a rerun resumes (nothing is recomputed)
    first = result.models[0].slice.path
    assert json.loads(first.with_suffix(".json").read_text())["direction_seed"] == 0
    mtime = first.stat().st_mtime_ns
    again = run_landscape(cfg)
    assert first.stat().st_mtime_ns == mtime
    np.testing.assert_array_equal(again.models[0].slice.loss, result.models[0].slice.loss)
    # different settings -> a different key (file)
    # (6 points: 0 is off the grid, so the loss at theta is evaluated on its own)
    other = run_landscape(replace(cfg, direction_seed=1, points=6, sharpness=False))
    assert other.models[0].slice.path != first and other.models[0].sharpness is None
    origin = result.models[0].slice.at_origin()[0]
    assert other.models[0].to_dict()["loss_at_0"] == pytest.approx(origin, rel=1e-5)
    assert not np.isclose(other.models[0].slice.loss, origin).any()
    # the study report picks up the figures and the sharpness columns
    from odenet.studies.report import load_study_data

    data = load_study_data(study)
    assert out / "slice1d_d8.png" in data.landscape_figures
    assert set(data.sharpness) == {"d8-euler-lr0.1-s0", "d8-heun-lr0.1-s0"}


def test_2d_landscape_via_cli_json(study, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "landscape",
                str(study),
                "--dims",
                "2",
                "--points",
                "5",
                "--limit-data",
                "32",
                "--orders",
                "1,2",
                "--no-sharpness",
                "--surface",
                "--json",
            ]
        )
    assert exit_info.value.code in (0, None)
    payload = json.loads(capsys.readouterr().out)
    names = {Path(p).name for p in payload["figures"]}
    assert {"slice2d.png", "slice2d.svg", "surface2d.png", "surface2d.svg"} <= names
    assert payload["settings"]["points"] == 5 and payload["settings"]["dims"] == 2
    slices = [np.load(m["slice_file"]) for m in payload["models"]]
    assert all(z["loss"].shape == (5, 5) and z["done"].all() for z in slices)
    loss0, _ = _eval_loss_on_first(study / "runs" / "d8-euler-lr0.1-s0", 32)
    assert payload["models"][0]["loss_at_0"] == pytest.approx(loss0, rel=1e-5)


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--depth", "20"], "depth 20"),
        (["--orders", "4"], "scheme rk4"),
        (["--lr", "0.3"], "lr 0.3"),
        (["--solvers", "lm"], "scheme lm"),
    ],
)
def test_untrained_selection_fails_with_one_line(study, capsys, argv, what):
    with pytest.raises(SystemExit) as exit_info:
        main(["landscape", str(study), *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and what in err
    assert "depths 8; schemes euler, heun; lrs 0.1" in err


def _record(depth, solver, lr, seed, acc, status="done") -> RunRecord:
    return RunRecord(
        id=f"d{depth}-{solver}-lr{lr}-s{seed}",
        depth=depth,
        solver=solver,
        lr=lr,
        seed=seed,
        status=status,
        test_acc=acc,
        epochs_done=1,
        run_dir=Path("/nonexistent"),
        config=TrainConfig(),
    )


def test_selection_best_lr_smallest_seed_and_errors():
    runs = [
        _record(20, "euler", 0.1, 0, 0.80),
        _record(20, "euler", 0.1, 1, 0.90),
        _record(20, "euler", 0.4, 0, 0.88),
        _record(20, "euler", 0.8, 0, 0.99, "diverged"),
        _record(20, "rk4", 0.4, 1, 0.91),
        _record(20, "rk4", 0.4, 0, 0.90),
        _record(56, "euler", 0.1, 0, 0.92),
        _record(56, "rk4", 0.1, 0, None, "pending"),
    ]
    sel = select_runs(runs)
    # euler@20: lr 0.1 has mean 0.85 < 0.88 at 0.4 (the diverged 0.8 is ignored)
    assert [r.id for r in sel.runs] == [
        "d20-euler-lr0.4-s0",
        "d20-rk4-lr0.4-s0",
        "d56-euler-lr0.1-s0",
    ]
    assert sel.depths == [20, 56] and sel.schemes == ["euler", "rk4"]
    assert sel.notes == ("skipped depth 56, scheme rk4: no finished run",)
    assert [r.id for r in select_runs(runs, depths=(20,), orders=(1,), lr=0.1).runs] == [
        "d20-euler-lr0.1-s0"
    ]
    assert [r.id for r in select_runs(runs, orders=(4,), seed=1).runs] == ["d20-rk4-lr0.4-s1"]
    with pytest.raises(ConfigError, match=r"no finished run at depth 56, scheme rk4"):
        select_runs(runs, depths=(56,), orders=(4,))
    with pytest.raises(ConfigError, match=r"lr 0.8; .*lrs 0.1, 0.4$"):
        select_runs(runs, lr=0.8)
    with pytest.raises(ConfigError, match="no finished runs yet"):
        select_runs([_record(20, "euler", 0.1, 0, None, "pending")])


def test_option_parsing_errors(tmp_path):
    with pytest.raises(ConfigError, match="--range"):
        config_from_options(tmp_path, range_="1:-1")
    with pytest.raises(ConfigError, match="--limit-data"):
        config_from_options(tmp_path, limit_data="0")
    with pytest.raises(ConfigError, match="--surface needs --dims 2"):
        config_from_options(tmp_path, surface=True)
    cfg = config_from_options(tmp_path, depth="8,14", orders="1,2", limit_data="all", dims=2)
    assert cfg.depths == (8, 14) and cfg.limit_data is None and cfg.grid.points == 25
