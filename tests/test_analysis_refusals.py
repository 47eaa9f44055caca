"""landscape and analyze on the studies a careless user leaves behind (issue 19, items 9, 15, 16
and 17): another run's checkpoint, a damaged one, a read-only study, an all-diverged one, an lm
and an ode-* study. Every refusal is one line, exit 2, with study.sqlite's bytes and the file
list unchanged."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest

from odenet.analysis import AnalyzeConfig, run_analyze
from odenet.analysis.eigen import EigenConfig
from odenet.analysis.selection import select_runs
from odenet.nets import ModelConfig
from odenet.studies import StudySpec, run_study
from odenet.studies.store import Store
from odenet.training import TrainConfig
from odenet.training.checkpoint import CHECKPOINT, short_reason

DATA = "synthetic:train=256,test=128,size=8"
ANALYZE = ["--device", "cpu", "--limit-data", "32", "--krylov", "4", "--restarts", "2",
           "--eigen-images", "4", "--no-figures"]  # fmt: skip
LANDSCAPE = ["--device", "cpu", "--limit-data", "32", "--points", "3", "--no-sharpness"]
EULER, HEUN = "d8-euler-lr0.1-s0", "d8-heun-lr0.1-s0"


def _study(out: Path, *, width=4, solvers=("euler", "heun"), depth=8, lr=0.1) -> Path:
    """The issue's S: synthetic 256/128 images of 8x8, depth 8, width 4, one epoch, on CPU."""
    base = TrainConfig(epochs=1, dataset=DATA, device="cpu", model=ModelConfig(width=width))
    spec = StudySpec(base=base, orders=(), solvers=solvers, depths=(depth,), lrs=(lr,), seeds=(0,))
    run_study(spec, out, quiet=True)
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory) -> dict[str, Path]:
    """D (the issue's finished 2-run study) and a width-8 euler study (checkpoints to misplace)."""
    root = tmp_path_factory.mktemp("studies")
    return {"D": _study(root / "D"), "W8": _study(root / "W8", width=8, solvers=("euler",))}


@pytest.fixture
def D(made, tmp_path) -> Path:
    """A fresh copy of D for one test."""
    return Path(shutil.copytree(made["D"], tmp_path / "D"))


def _files(root: Path) -> dict:
    """Every path under ``root`` and each file's bytes (None for a directory)."""
    return {p: p.read_bytes() if p.is_file() else None for p in sorted(root.rglob("*"))}


def _refused(run_cli, argv: list[str], study: Path) -> str:
    """Run a command that must be refused: exit 2, one line, nothing written. The line."""
    before = _files(study)
    code, _, err = run_cli(argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert _files(study) == before  # study.sqlite's bytes and the file list unchanged
    return lines[0]


# ---- item 9: a checkpoint of another configuration ---------------------------------------
@pytest.mark.parametrize(
    ("source", "difference"),
    [(("D", HEUN), "solver 'heun' there, 'euler' in the study"),
     (("W8", EULER), "width 8 there, 4 in the study")],
)  # fmt: skip
def test_another_configurations_checkpoint_is_skipped_never_measured(
    made, D, run_cli, source, difference
):
    study, run = source
    shutil.copy(made[study] / "runs" / run / CHECKPOINT, D / "runs" / EULER / CHECKPOINT)
    code, out, err = run_cli(["analyze", str(D), *ANALYZE, "--json"])
    assert code == 0, err
    assert [m["run_id"] for m in json.loads(out)["models"]] == [HEUN]  # euler is not reported
    (line,) = err.strip().splitlines()
    assert line.startswith(f"warning: skipped {EULER}: its checkpoint ")
    assert f"is of another configuration ({difference}); to retrain it: `odenet reset" in line
    # the only selected run is the misplaced one: refused, nothing written
    line = _refused(run_cli, ["landscape", str(D), *LANDSCAPE, "--orders", "1"], D)
    assert f"skipped {EULER}: its checkpoint" in line and difference in line


def test_a_checkpoint_of_its_own_run_is_measured(D):
    """The check compares settings, not files: the run's own checkpoint passes (``data_dir``,
    ``cuda_graphs`` and ``log_every`` are no difference)."""
    result = run_analyze(
        AnalyzeConfig(str(D), limit_data=32, eigen=EigenConfig(4, 2, images=4), figures=False)
    )
    assert [m.values["run_id"] for m in result.models] == [EULER, HEUN] and not result.notes


# ---- item 15: damaged checkpoints, an all-skipped landscape, a read-only study -------------
def test_damaged_checkpoints_are_named_in_whole_words_and_nothing_is_written(D, run_cli):
    path = D / "runs" / EULER / CHECKPOINT
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])  # truncated
    other = D / "runs" / HEUN / CHECKPOINT
    data = bytearray(other.read_bytes())
    data[3000:3100] = b"x" * 100  # garbled inside the pickled header
    other.write_bytes(bytes(data))
    line = _refused(run_cli, ["landscape", str(D), *LANDSCAPE], D)  # no landscape/ left behind
    assert f"skipped {EULER}: its checkpoint {path} cannot be read (damaged or truncated: " in line
    assert "(damaged or truncated: UnpicklingError: Weights only load failed); to retrain" in line
    assert "PyTorch 2.6" not in line and "delete it" not in line
    assert not (D / "landscape").exists()


def test_short_reason_keeps_the_first_sentence_whole():
    weights = RuntimeError(
        "Weights only load failed. In PyTorch 2.6, we changed the default value of the "
        "`weights_only` argument in `torch.load` from `False` to `True`.\nPlease file an issue"
    )
    assert short_reason(weights) == "RuntimeError: Weights only load failed"
    assert short_reason(EOFError()) == "EOFError"
    assert short_reason(OSError(22, "Invalid argument")) == "OSError: [Errno 22] Invalid argument"
    assert short_reason(ValueError("x" * 101)) == "ValueError"  # never a cut message


@pytest.mark.parametrize("command", ["landscape", "analyze"])
def test_a_read_only_study_is_refused_alike_by_both(D, run_cli, monkeypatch, command):
    """(As root chmod does not stop a write: the check, os.access, is told the directory is
    read-only, as it is on a read-only mount.)"""
    real = os.access
    monkeypatch.setattr(os, "access", lambda p, mode: mode != os.W_OK and real(p, mode))
    options = LANDSCAPE if command == "landscape" else ANALYZE
    line = _refused(run_cli, [command, str(D), *options], D)
    assert line == (
        f"error: the study {str(D)!r} is read-only, and {command} writes into it (cached "
        "measurements, figures, its report section); copy the study directory somewhere "
        f"writable and run {command} on the copy"
    )


# ---- item 16: a study without a finished run ----------------------------------------------
def test_an_all_diverged_study_gets_advice_that_can_help(tmp_path, run_cli):
    study = _study(tmp_path / "DV", lr=1e5)
    assert {r.status for r in Store.open(study).runs()} == {"diverged"}
    for command, options in (("analyze", ANALYZE), ("landscape", LANDSCAPE)):
        line = _refused(run_cli, [command, str(study), *options], study)
        assert line == (
            "error: the study has no finished runs (2 diverged): a diverged run leaves no "
            "trained model to measure; a study with smaller learning rates (--lrs) trains some"
        )


def test_no_finished_runs_advice_follows_what_the_runs_are():
    from test_landscape_study import _record

    def advice(*states) -> str:
        with pytest.raises(Exception) as info:
            select_runs([_record(8, "euler", 0.1, i, None, s) for i, s in enumerate(states)])
        return str(info.value)

    assert advice("pending", "diverged").endswith(
        "(1 diverged, 1 pending): run the study's `odenet study` command (again) to train them"
    )
    assert "(1 diverged, 1 failed): see `odenet report` for the errors" in advice(
        "failed", "diverged"
    )
    assert "odenet study" not in advice("diverged", "diverged")


# ---- item 17: lm's learned k, and what analyze measures of an ode-* network ---------------
def test_analyze_on_an_lm_study_warns_of_nothing(tmp_path):
    study = _study(tmp_path / "L", solvers=("lm",), depth=14)  # n = 2: k of the second field
    config = AnalyzeConfig(str(study), limit_data=32, eigen=EigenConfig(4, 2, images=4))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_analyze(config)
    assert not [w for w in caught if "requires_grad" in str(w.message)]
    (model,) = result.models
    assert [e["scheme"] for e in model.values["eigenvalues"]] == ["euler", "lm"] * 3


def test_analyze_says_what_it_measures_of_an_ode_network(tmp_path, run_cli):
    study = _study(tmp_path / "O", solvers=("ode-rk4",))
    code, out, err = run_cli(["analyze", str(study), *ANALYZE, "--json"])
    assert code == 0, err
    payload = json.loads(out)
    (model,) = payload["models"]
    assert model["fields"] == ["stage 1, field 1", "stage 2, field 1"]  # the two transitions
    note = (
        "d8-ode-rk4-lr0.1-s0: continuous network (ode-rk4): only its 2 transition field(s) are "
        "measured (a downsampling field used as one Euler step where the shape changes, "
        "labelled euler, no eigenvalue); the 3 shared ODE field(s) that ode-rk4 integrates "
        "are not"
    )
    assert payload["notes"] == [note] and err.strip() == f"warning: {note}"


def test_a_continuous_network_without_transitions_is_skipped_with_a_note(tmp_path, run_cli):
    """The single-stage family keeps one shape: an ode-* network of it has no stacked field."""
    base = TrainConfig(
        epochs=1,
        dataset=DATA,
        device="cpu",
        model=ModelConfig(width=4, arch="single", downsample="stem"),
    )
    spec = StudySpec(
        base=base, orders=(1,), solvers=("ode-rk4",), depths=(6,), lrs=(0.1,), seeds=(0,)
    )
    study = tmp_path / "single"
    run_study(spec, study, quiet=True)
    code, out, err = run_cli(["analyze", str(study), *ANALYZE, "--json"])
    assert code == 0, err
    assert [m["solver"] for m in json.loads(out)["models"]] == ["euler"]
    assert "skipped d6-ode-rk4-lr0.1-s0: ResNet has no stacked residual fields" in err
