"""`odenet landscape` on a real (tiny, synthetic) study, and run selection from a study's runs."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from odenet.analysis.landscape import LandscapeConfig, config_from_options, run_landscape
from odenet.analysis.selection import RunSelection, select_runs
from odenet.analysis.sharpness import SharpnessConfig
from odenet.cli import main
from odenet.errors import ConfigError
from odenet.studies.identity import Axes
from odenet.studies.store import RunRecord, Store
from odenet.training import TrainConfig

DATASET = "synthetic:train=128,test=32,size=16"
LIMIT_TRAIN = 96  # the runs train on a fixed random 96 of the 128 training images


def _spec():
    """The module's study: euler and heun at depth 8, one epoch on a training subset."""
    from odenet.studies import StudySpec

    return StudySpec(
        base=TrainConfig(
            epochs=1, dataset=DATASET, batch_size=64, device="cpu", limit_train=LIMIT_TRAIN
        ),
        orders=(1, 2),
        depths=(8,),
        lrs=(0.1,),
        seeds=(0,),
    )


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from odenet.studies import run_study

    out = tmp_path_factory.mktemp("study") / "s"
    run_study(_spec(), out, quiet=True)
    return out


def own_subset(n_train: int, limit_train: int, n: int | None) -> torch.Tensor:
    """The images a run trained on, written out here independently of odenet.analysis: the
    first ``limit_train`` of a seed-0 permutation of the split (sorted), and ``n`` of those
    drawn by a seed-0 permutation of the subset (sorted)."""
    own = torch.randperm(n_train, generator=torch.Generator().manual_seed(0))[:limit_train]
    own = own.sort().values
    if n is None or n >= limit_train:
        return own
    pick = torch.randperm(limit_train, generator=torch.Generator().manual_seed(0))[:n]
    return own[pick].sort().values


def _eval_loss_on_own(run_dir: Path, n: int | None) -> tuple[float, float]:
    """The trained model's eval loss on n images of its own training subset (all: None)."""
    from odenet.data.datasets import load_dataset
    from odenet.training import load_trained

    model, config = load_trained(run_dir)
    ds = load_dataset(config.dataset)
    idx = own_subset(len(ds.train_labels), config.limit_train, n)
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    x = (ds.train_images[idx].float() / 255 - mean) / std
    with torch.no_grad():
        logits = model.eval()(x)
    y = ds.train_labels[idx]
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).double().mean().item()


def test_the_subset_is_the_one_the_run_trained_on(study):
    """The landscape's images are those the training loader iterates (not the first N)."""
    from odenet.analysis.inputs import run_subset
    from odenet.data import load_dataset, make_loaders

    ds = load_dataset(DATASET)
    train, _ = make_loaders(ds, batch_size=128, device="cpu", seed=0, limit_train=LIMIT_TRAIN)
    trained = {bytes(img.numpy()) for img in train.images}
    subset = run_subset(DATASET, 128, LIMIT_TRAIN, None)
    assert {bytes(ds.train_images[i].numpy()) for i in subset.indices} == trained
    assert subset.count == LIMIT_TRAIN
    assert torch.equal(subset.indices, own_subset(128, LIMIT_TRAIN, None))
    part = run_subset(DATASET, 128, LIMIT_TRAIN, 32)
    assert torch.equal(part.indices, own_subset(128, LIMIT_TRAIN, 32))
    assert set(part.indices.tolist()) <= set(subset.indices.tolist())
    assert part.key != subset.key  # the images enter every cache key
    assert part.description.endswith(
        "32 drawn (seed 0) from the run's training subset of 96 of 128 images "
        "(--limit-train, fixed seed 0)"
    )


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
        # the loss at the trained weights is the eval-mode loss on the run's OWN images
        loss0, acc0 = _eval_loss_on_own(m.run.run_dir, 32)
        assert m.slice.at_origin()[0] == pytest.approx(loss0, rel=1e-5)
        assert m.slice.at_origin()[1] == pytest.approx(acc0)
        assert np.isfinite(m.sharpness["lambda_max"]) and m.sharpness["lambda_max"] > 0
        assert "32 drawn (seed 0) from the run's training subset of 96" in m.data
        assert m.to_dict()["data"] == m.data
    assert {p.name for p in result.figures} == {"slice1d_d8.png", "slice1d_d8.svg"}
    assert all(p.stat().st_size > 0 for p in result.figures)
    assert "training subset of 96" in result.figures[1].read_text()  # the SVG says so
    # sharpness cache: one row per model, keyed by every setting
    rows = Store.open(study).analyses("sharpness")
    assert sorted(r["run_id"] for r in rows) == ["d8-euler-lr0.1-s0", "d8-heun-lr0.1-s0"]
    assert {r["settings"]["data"]["count"] for r in rows} == {32}
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
    # the study report picks up landscape's section and its flat sharpness table, whose
    # columns join the run rows
    from odenet.studies.report import load_study_data

    data = load_study_data(study)
    assert "![slice1d_d8](landscape/slice1d_d8.png)" in data.sections
    assert set(data.tables["sharpness"]) == {"d8-euler-lr0.1-s0", "d8-heun-lr0.1-s0"}
    assert data.analysis_columns == ["lambda_max", "trace"]
    by_id = {row["id"]: row for row in data.run_rows()}
    newest = {r["run_id"]: r["result"] for r in Store.open(study).analyses("sharpness")}
    for run_id, values in newest.items():
        assert by_id[run_id]["lambda_max"] == values["lambda_max"]
        assert by_id[run_id]["trace"] == values["trace"]


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
    loss0, _ = _eval_loss_on_own(study / "runs" / "d8-euler-lr0.1-s0", 32)
    assert payload["models"][0]["loss_at_0"] == pytest.approx(loss0, rel=1e-5)


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--depth", "20"], "depth 20"),
        (["--orders", "4"], "scheme rk4"),
        (["--lr", "0.3"], "lr 0.3"),
        (["--seed", "7"], "seed 7"),
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


def _record(depth, solver, lr, seed, acc, status="done", wd=None) -> RunRecord:
    """A stored run; ``wd``: its value of a swept weight_decay (None: nothing swept)."""
    swept = () if wd is None else ("weight_decay",)
    return RunRecord(
        id=f"d{depth}-{solver}-lr{lr}" + ("" if wd is None else f"-wd{wd}") + f"-s{seed}",
        depth=depth,
        solver=solver,
        lr=lr,
        seed=seed,
        status=status,
        test_acc=acc,
        epochs_done=1,
        run_dir=Path("/nonexistent"),
        config=TrainConfig() if wd is None else replace(TrainConfig(), weight_decay=wd),
        swept=swept,
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
    one = RunSelection(depths=(20,), orders=(1,), lrs=(0.1,))
    assert [r.id for r in select_runs(runs, one).runs] == ["d20-euler-lr0.1-s0"]
    seed1 = RunSelection(orders=(4,), seeds=(1,))
    assert [r.id for r in select_runs(runs, seed1).runs] == ["d20-rk4-lr0.4-s1"]
    every = RunSelection(depths=(20,), orders=(1,), all_lrs=True, all_seeds=True)
    assert [r.id for r in select_runs(runs, every).runs] == [
        "d20-euler-lr0.1-s0",
        "d20-euler-lr0.1-s1",
        "d20-euler-lr0.4-s0",
    ]
    lrs_smallest_seed = RunSelection(depths=(20,), orders=(1,), all_lrs=True)
    assert [r.id for r in select_runs(runs, lrs_smallest_seed).runs] == [
        "d20-euler-lr0.1-s0",
        "d20-euler-lr0.4-s0",
    ]
    with pytest.raises(ConfigError, match=r"no finished run at depth 56, scheme rk4"):
        select_runs(runs, RunSelection(depths=(56,), orders=(4,)))
    with pytest.raises(ConfigError, match=r"lr 0.8; .*lrs 0.1, 0.4$"):
        select_runs(runs, RunSelection(lrs=(0.8,)))
    with pytest.raises(ConfigError, match=r"no finished runs \(1 pending\): run the study's"):
        select_runs([_record(20, "euler", 0.1, 0, None, "pending")])


def test_axes_configuration_cell_variant_and_labels():
    a = _record(20, "rk4", 0.1, 1, 0.5, wd=5e-4).axes
    assert a.names == ("depth", "solver", "lr", "weight_decay", "seed")
    assert a.configuration == Axes.of_run(20, "rk4", 0.1, 0, (("weight_decay", 5e-4),)).without(
        "seed"
    )
    assert a.cell.names == ("depth", "solver", "weight_decay")
    assert a.variant.names == ("solver", "weight_decay")
    assert a.variant.label() == "rk4 weight_decay=0.0005"
    assert a.describe() == "depth 20, rk4, lr 0.1, weight_decay=0.0005, seed 1"
    assert a.configuration != _record(20, "rk4", 0.1, 1, 0.5, wd=0.0).axes.configuration


def test_selection_picks_the_best_lr_of_each_cell_and_notes_an_unfinished_cell():
    runs = [
        _record(20, "euler", 0.1, 0, 0.90, wd=0.0),
        _record(20, "euler", 0.1, 1, 0.80, wd=0.0),
        _record(20, "euler", 0.4, 0, 0.70, wd=0.0),
        _record(20, "euler", 0.1, 0, 0.50, wd=5e-4),
        _record(20, "euler", 0.4, 1, 0.95, wd=5e-4),
        _record(20, "euler", 0.4, 0, 0.90, wd=5e-4),
        _record(20, "rk4", 0.1, 0, 0.90, wd=0.0),
        _record(20, "rk4", 0.1, 0, None, "pending", wd=5e-4),
    ]
    sel = select_runs(runs)
    assert [r.id for r in sel.runs] == [
        "d20-euler-lr0.1-wd0.0-s0",  # wd 0: lr 0.1 (mean 0.85 > 0.70), its smallest seed
        "d20-euler-lr0.4-wd0.0005-s0",  # wd 5e-4: lr 0.4 (0.925 > 0.50)
        "d20-rk4-lr0.1-wd0.0-s0",
    ]
    assert sel.notes == ("skipped depth 20, rk4, weight_decay=0.0005: no finished run",)
    assert sel.swept == ("weight_decay",)
    every = select_runs(runs, RunSelection(orders=(1,), all_lrs=True, all_seeds=True))
    assert len(every.runs) == 6
    kept_wd = (("weight_decay", (5e-4,)),)
    kept = select_runs(runs, RunSelection(all_lrs=True, where=kept_wd))
    assert [r.id for r in kept.runs] == [
        "d20-euler-lr0.1-wd0.0005-s0",
        "d20-euler-lr0.4-wd0.0005-s0",
    ]
    assert kept.notes == ("skipped depth 20, scheme rk4, weight_decay=0.0005: no finished run",)
    with pytest.raises(ConfigError, match="no finished run at depth 20, scheme rk4, weight_dec"):
        select_runs(runs, RunSelection(depths=(20,), orders=(4,), where=kept_wd))


def test_option_parsing_errors(tmp_path):
    with pytest.raises(ConfigError, match="--range"):
        config_from_options(tmp_path, range_="1:-1")
    for text in ("-inf:inf", "nan:1", "0:inf"):
        with pytest.raises(ConfigError, match="finite"):
            config_from_options(tmp_path, range_=text)
    with pytest.raises(ConfigError, match="--limit-data"):
        config_from_options(tmp_path, limit_data="0")
    with pytest.raises(ConfigError, match="--surface needs --dims 2"):
        config_from_options(tmp_path, surface=True)
    with pytest.raises(ConfigError, match="--lr"):
        config_from_options(tmp_path, lr="-0.1")
    cfg = config_from_options(tmp_path, depth="8,14", orders="1,2", limit_data="all", dims=2)
    assert cfg.selection.depths == (8, 14) and cfg.limit_data is None and cfg.grid.points == 25
    cfg = config_from_options(tmp_path, lr="all", seed="0,1")
    assert cfg.selection.all_lrs and cfg.selection.seeds == (0, 1)


def test_sharpness_cache_is_keyed_by_every_setting(study):
    """40 power iterations after 1 must not return the 1-iteration value (issue 11.2)."""
    base = LandscapeConfig(
        str(study),
        selection=RunSelection(orders=(1,)),
        dims=1,
        points=3,
        limit_data=16,
        sharpness_config=SharpnessConfig(power_iters=1, power_tol=0.0, trace_probes=1),
    )
    one = run_landscape(base).models[0].sharpness
    assert one["power_iterations"] == 1 and "cached" not in one
    more = replace(
        base, sharpness_config=SharpnessConfig(power_iters=4, power_tol=0.0, trace_probes=1)
    )
    four = run_landscape(more).models[0].sharpness
    assert four["power_iterations"] == 4 and "cached" not in four
    assert four["lambda_max"] != one["lambda_max"]
    again = run_landscape(base).models[0].sharpness
    assert again["cached"] and again["lambda_max"] == one["lambda_max"]
    # probes, batch size and the images are part of the key too
    probes = replace(
        base, sharpness_config=SharpnessConfig(power_iters=1, power_tol=0.0, trace_probes=2)
    )
    for other in (probes, replace(base, batch_size=8), replace(base, limit_data=17)):
        assert "cached" not in run_landscape(other).models[0].sharpness
    # so is the slice: another batch size is another file
    paths = {run_landscape(replace(base, batch_size=b)).models[0].slice.path for b in (8, 16)}
    assert len(paths) == 2


def test_non_finite_range_is_one_line_exit_2(study, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["landscape", str(study), "--range", "-inf:inf"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "finite" in err


@pytest.mark.slow
def test_two_landscape_processes_on_one_study(study, tmp_path):
    """Two processes computing the same slices at once both succeed with equal values."""
    import os
    import shutil
    import subprocess
    import sys

    copy = tmp_path / "s"
    shutil.copytree(study, copy)
    shutil.rmtree(copy / "landscape", ignore_errors=True)
    cmd = [
        sys.executable,
        "-m",
        "odenet",
        "landscape",
        str(copy),
        "--points",
        "9",
        "--limit-data",
        "32",
        "--points-per-batch",
        "1",
        "--no-sharpness",
        "--json",
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    procs = [
        subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1].decode()[-500:] for o in outs]
    losses = [[m["loss_at_0"] for m in json.loads(o[0])["models"]] for o in outs]
    assert losses[0] == losses[1]
    assert not list((copy / "landscape").glob("*.tmp"))


def test_a_run_without_a_readable_checkpoint_costs_that_run_only(study, tmp_path, capsys):
    import shutil

    copy = tmp_path / "s"
    shutil.copytree(study, copy)
    (copy / "runs" / "d8-euler-lr0.1-s0" / "checkpoint.pt").unlink()
    args = ["landscape", str(copy), "--points", "3", "--limit-data", "16", "--no-sharpness"]
    with pytest.raises(SystemExit) as exit_info:
        main([*args, "--json"])
    assert exit_info.value.code in (0, None)
    captured = capsys.readouterr()
    assert [m["run_id"] for m in json.loads(captured.out)["models"]] == ["d8-heun-lr0.1-s0"]
    warning = captured.err.strip()
    assert len(warning.splitlines()) == 1
    assert "d8-euler-lr0.1-s0" in warning and f"odenet reset {copy} d8-euler-lr0.1-s0" in warning
    # a damaged checkpoint likewise; with no readable run left: one line, exit 2
    (copy / "runs" / "d8-heun-lr0.1-s0" / "checkpoint.pt").write_bytes(b"garbage")
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "d8-heun-lr0.1-s0" in err and "odenet reset" in err


def test_reset_retrains_a_finished_run_whose_checkpoint_was_lost(study, tmp_path, capsys):
    import shutil

    from odenet.studies import run_study

    copy = tmp_path / "s"
    shutil.copytree(study, copy)
    run_landscape(
        LandscapeConfig(
            str(copy),
            points=3,
            limit_data=16,
            sharpness_config=SharpnessConfig(power_iters=1, trace_probes=1),
        )
    )
    store = Store.open(copy)
    before = store.run("d8-euler-lr0.1-s0")
    (copy / "runs" / before.id / "checkpoint.pt").unlink()
    with pytest.raises(SystemExit) as exit_info:
        main(["reset", str(copy), "d8-nope"])
    assert exit_info.value.code == 2 and "d8-nope" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["reset", str(copy), before.id])
    assert exit_info.value.code in (0, None)
    assert "reset 1 run(s) to pending: d8-euler-lr0.1-s0" in capsys.readouterr().out
    after = store.run(before.id)
    assert after.status == "pending" and after.test_acc is None and after.epochs_done == 0
    assert store.epochs(before.id) == [] and not (copy / "runs" / before.id).exists()
    assert {r["run_id"] for r in store.analyses("sharpness")} == {"d8-heun-lr0.1-s0"}
    assert store.run("d8-heun-lr0.1-s0").status == "done"  # the other run is untouched
    run_study(_spec(), copy, quiet=True)
    again = store.run(before.id)
    assert again.status == "done" and (copy / "runs" / before.id / "checkpoint.pt").is_file()
    assert again.test_acc == before.test_acc  # the same deterministic training, redone
    assert len(store.epochs(before.id)) == 1
