"""`odenet analyze` on a real (tiny, synthetic) study: figures, JSON, cache, report, errors."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from odenet import solvers as registry
from odenet.analysis import AnalyzeConfig, RunSelection, run_analyze
from odenet.analysis.eigen import EigenConfig
from odenet.cli import main
from odenet.nets import ModelConfig
from odenet.solvers.stability import in_region
from odenet.studies.store import Store
from odenet.training import TrainConfig

DATASET = "synthetic:train=96,test=32,size=8"
# plain joins the study once the solvers branch registers it (He et al.'s plain networks)
SCHEMES = ("euler", "rk4") + (("plain",) if "plain" in registry.available() else ())
SMALL = ["--limit-data", "24", "--krylov", "4", "--restarts", "2", "--eigen-images", "4"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from odenet.studies import StudySpec, run_study

    out = tmp_path_factory.mktemp("analyze") / "s"
    spec = StudySpec(
        base=TrainConfig(
            epochs=1,
            dataset=DATASET,
            batch_size=32,
            device="cpu",
            limit_train=64,
            model=ModelConfig(width=4),
        ),
        orders=(),
        solvers=SCHEMES,
        depths=(14,),
        lrs=(0.1,),
        seeds=(0,),
    )
    run_study(spec, out, quiet=True)
    return out


def _run(argv: list[str], capsys) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    captured = capsys.readouterr()
    return exit_info.value.code or 0, captured.out, captured.err


def test_analyze_writes_figures_and_json(study, capsys):
    code, out, err = _run(["analyze", str(study), *SMALL, "--json"], capsys)
    assert code == 0, err
    payload = json.loads(out)  # strict JSON
    assert {"settings", "models", "figures"} <= set(payload)
    assert [m["solver"] for m in payload["models"]] == list(SCHEMES)
    for m in payload["models"]:
        assert {
            "run_id",
            "responses",
            "step_ratios",
            "grad_norms",
            "eigenvalues",
            "outside_region",
        } <= set(m)
        assert len(m["responses"]["network_order"]) == 6 == len(m["step_ratios"])
        assert m["responses"]["sorted"] == sorted(m["responses"]["network_order"], reverse=True)
        assert len(m["grad_norms"]["trained"]["params"]) == 6
        assert m["grad_norms"]["initial"]["params"] != m["grad_norms"]["trained"]["params"]
        assert "24 drawn (seed 0) from the run's training subset of 64 of 96" in m["data"]
        # the downsampling fields (first of stages 2 and 3) have no square Jacobian
        no_square = [e["re"] is None for e in m["eigenvalues"]]
        assert no_square == [False, False, True, False, True, False]
        # the count outside, recomputed from the reported eigenvalues and the scheme's region
        placed = [
            bool(in_region(e["scheme"], np.array([complex(e["re"], e["im"])]))[0])
            for e in m["eigenvalues"]
            if e["re"] is not None and m["solver"] != "plain"
        ]
        assert m["outside_region"] == (placed.count(False) if placed else None)
        assert m["fields_with_region"] == len(placed)
        # every estimate says whether it reached the tolerance (4 vectors x 2 cycles: rarely)
        tol = payload["settings"]["eigen"]["tol"]
        for e in m["eigenvalues"]:
            if e["re"] is None:
                assert e["unconverged"] is None and e["residual"] is None
                continue
            assert 0 <= e["unconverged"] <= 4 and 1 <= e["cycles"] <= 2
            assert (e["unconverged"] == 0) == (e["residual"] <= tol)
        flagged = sum(bool(e["unconverged"]) for e in m["eigenvalues"])
        assert m["unconverged_fields"] == flagged
    assert sum(m["unconverged_fields"] for m in payload["models"]) > 0
    assert {r["scheme"]: r["unconverged_fields"] for r in payload["table"]} == {
        m["solver"]: m["unconverged_fields"] for m in payload["models"]
    }
    names = {Path(p).name for p in payload["figures"]}
    for stem in ("responses_d14", "step_ratios_d14", "grad_norms_d14", "eigenvalues_d14"):
        assert {f"{stem}.png", f"{stem}.svg"} <= names
    assert all(Path(p).stat().st_size > 0 for p in payload["figures"])
    assert "n=1" in (study / "analysis" / "responses_d14.svg").read_text()
    # the report includes what was analysed
    code, _, err = _run(["report", str(study)], capsys)
    assert code == 0, err
    md = (study / "report.md").read_text()
    assert "What the instruments show (odenet analyze)" in md
    assert "analysis/responses_d14.png" in md and "d14-rk4-lr0.1-s0" in md
    assert "unconverged)" in md  # the outside counts rest on flagged estimates


def test_responses_of_a_run_match_own_hooks_on_its_own_subset(study):
    """One run's responses, computed here with forward hooks on the images it trained on."""
    from odenet.data import load_dataset
    from odenet.training import load_trained

    eigen = EigenConfig(krylov=2, restarts=1, images=2)
    cfg = AnalyzeConfig(
        str(study), RunSelection(solvers=("rk4",)), None, eigen=eigen, initial=False, figures=False
    )
    result = run_analyze(cfg)
    (got,) = [m.values for m in result.models]
    model, config = load_trained(study / "runs" / got["run_id"])
    ds = load_dataset(config.dataset)
    own = torch.randperm(96, generator=torch.Generator().manual_seed(0))[:64].sort().values
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    x = (ds.train_images[own].float() / 255 - mean) / std
    outs = []
    fields = [f for stage in model.stages for f in stage.fields]
    handles = [f.register_forward_hook(lambda _m, _a, o: outs.append(o)) for f in fields]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    expected = [o.double().std().item() for o in outs]
    assert got["responses"]["network_order"] == pytest.approx(expected, rel=1e-5)
    assert got["grad_norms"]["initial"] is None


def test_cache_is_keyed_by_settings(study):
    def analyze(krylov: int = 2, limit: int = 16):
        eigen = EigenConfig(krylov=krylov, restarts=1, images=2)
        return run_analyze(
            AnalyzeConfig(str(study), limit_data=limit, eigen=eigen, figures=False)
        ).models

    first = analyze()
    assert not any(m.cached for m in first)
    again = analyze()
    assert all(m.cached for m in again)
    assert [m.values["eigenvalues"] for m in again] == [m.values["eigenvalues"] for m in first]
    assert not any(m.cached for m in analyze(krylov=3))
    assert not any(m.cached for m in analyze(limit=17))


@pytest.mark.parametrize(
    ("argv", "what"),
    [
        (["--depth", "20"], "depth 20"),
        (["--orders", "2"], "scheme heun"),
        (["--lr", "0.3"], "lr 0.3"),
        (["--seed", "5"], "seed 5"),
        (["--lr", "abc"], "--lr"),
        (["--krylov", "0"], "krylov"),
        (["--eigen-tol", "0"], "tol"),
        (["--restarts", "0"], "restarts"),
        (["--limit-data", "0"], "--limit-data"),
    ],
)
def test_bad_selections_are_one_line_exit_2(study, capsys, argv, what):
    code, _, err = _run(["analyze", str(study), *argv], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and what in err


def test_empty_study_and_missing_checkpoints(study, tmp_path, capsys):
    from odenet.studies import StudySpec

    code, _, err = _run(["analyze", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "no study" in err
    empty = tmp_path / "empty"
    spec = StudySpec(
        base=TrainConfig(dataset=DATASET, epochs=1),
        solvers=("euler",),
        depths=(8,),
        lrs=(0.1,),
    )
    Store.create(empty, spec, {})
    code, _, err = _run(["analyze", str(empty)], capsys)
    assert code == 2 and "no finished runs" in err and len(err.strip().splitlines()) == 1
    copy = tmp_path / "s"
    shutil.copytree(study, copy)
    (copy / "runs" / "d14-euler-lr0.1-s0" / "checkpoint.pt").unlink()
    code, out, err = _run(["analyze", str(copy), *SMALL, "--json"], capsys)
    assert code == 0
    assert "d14-euler-lr0.1-s0" not in [m["run_id"] for m in json.loads(out)["models"]]
    assert len(err.strip().splitlines()) == 1 and "odenet reset" in err
