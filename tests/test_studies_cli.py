"""Bad input to `odenet study`: one clear line on stderr, exit code 2, nothing written."""

import json
import os
from pathlib import Path

import pytest
import torch

from odenet.nets import ModelConfig
from odenet.studies import Store, StudySpec
from odenet.training import TrainConfig

BASE = [
    "study",
    "--dataset",
    "synthetic:train=64,test=32,size=8",
    "--depths",
    "8",
    "--orders",
    "1",
    "--lrs",
    "0.1",
    "--epochs",
    "1",
    "--width",
    "4",
    "--quiet",
]


def _files(root):
    """Every file and folder under ``root`` (relative paths)."""
    return sorted(str(p.relative_to(root)) for p in Path(root).rglob("*"))


def _with(option, value):
    args = list(BASE)
    if option in args:
        args[args.index(option) + 1] = value
    else:
        args += [option, value]
    return args


@pytest.mark.parametrize(
    "option, value, words",
    [
        ("--depths", "8,21", "--depths: depth 21 is not 6n+2"),
        ("--solvers", "rk5", "--solvers: unknown solver 'rk5'"),
        ("--orders", "7", "--orders: unknown order 7"),
        ("--lrs", "0.1,,0.2", "--lrs: empty item"),
        ("--lrs", "abc", "--lrs: 'abc' is not a number"),
        ("--lrs", "", "--lrs: empty list"),
        ("--lrs", "-0.1", "--lrs: lr must be a positive finite number, got -0.1"),
        ("--seeds", "0,x", "--seeds: 'x' is not an integer"),
        ("--dataset", "imagenet", "unknown dataset 'imagenet'"),
        ("--schedule", "linear", "unknown schedule 'linear'; expected one of: onecycle"),
        ("--set", "weight_decay=-1", "weight_decay must be >= 0, got -1.0 (run d8-euler-"),
        ("--set", "bogus=1", "--set: unknown field 'bogus'; TrainConfig fields: dataset"),
        ("--set", "weight_decay", "--set 'weight_decay': write FIELD=VALUE"),
        ("--set", "nesterov=maybe", "--set nesterov: 'maybe' is not true or false"),
        ("--set", "pad=-1", "pad must be a non-negative integer (0: no crop), got -1"),
        ("--axis", "lr=0.1,0.2", "--axis: lr is an axis of every study: use --lrs"),
        ("--axis", "dataset=mnist,cifar10", "dataset holds one value per study"),
        ("--axis", "weight_decay=0,,1", "--axis weight_decay: empty item"),
        ("--axis", "momentum=0.9,0.9", "--axis momentum: 0.9 appears twice"),
        ("--executor", "dask", "--executor: unknown value 'dask'"),
        ("--fuse-max", "0", "--fuse-max"),
        pytest.param(
            "--device",
            "cuda",
            "CUDA is not available",
            marks=pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available"),
        ),  # fmt: skip
    ],
)
def test_bad_input_exit_2_one_line_nothing_written(option, value, words, tmp_path, run_cli):
    out = tmp_path / "study"
    code, stdout, stderr = run_cli(_with(option, value) + ["--out", str(out)])
    assert code == 2
    assert stderr.count("\n") == 1 and stderr.startswith("error: ") and words in stderr
    assert _files(tmp_path) == []  # nothing created


def test_unwritable_out(tmp_path, run_cli):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, stderr = run_cli(BASE + ["--out", str(blocker / "study")])
    assert code == 2 and stderr.count("\n") == 1 and "is not writable" in stderr
    code, _, stderr = run_cli(BASE + ["--out", str(blocker)])
    assert code == 2 and "exists and is not a directory" in stderr
    assert _files(tmp_path) == ["file"]
    code, _, stderr = run_cli(BASE)
    assert code == 2 and "--out DIR is required" in stderr
    if os.geteuid() != 0:  # root may write anywhere
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        code, _, stderr = run_cli(BASE + ["--out", str(locked / "a" / "b")])
        assert code == 2 and "is not writable" in stderr and not (locked / "a").exists()


def test_changed_config_on_existing_study_is_refused(tmp_path, run_cli):
    spec = StudySpec(
        base=TrainConfig(
            epochs=1, dataset="synthetic:train=64,test=32,size=8", model=ModelConfig(width=4)
        ),
        orders=(1,),
        depths=(8,),
        lrs=(0.1,),
    )
    Store.create(tmp_path / "study", spec, {})
    # opening the database may create and remove its -wal/-shm files (a directory mtime
    # change); the files themselves must be untouched
    before = {
        p: os.path.getmtime(tmp_path / p) for p in _files(tmp_path) if (tmp_path / p).is_file()
    }
    code, _, stderr = run_cli(_with("--lrs", "0.1,0.2") + ["--out", str(tmp_path / "study")])
    assert code == 2 and stderr.count("\n") == 1
    assert "different config (lrs: 0.1 -> 0.1,0.2)" in stderr and "new --out" in stderr
    after = {
        p: os.path.getmtime(tmp_path / p) for p in _files(tmp_path) if (tmp_path / p).is_file()
    }
    assert after == before and _files(tmp_path) == ["study", "study/runs", "study/study.sqlite"]


def test_dry_run_prints_budgets_and_writes_nothing(tmp_path, run_cli):
    args = _with("--orders", "1,2,4") + [
        "--solvers",
        "lm",
        "--depths",
        "8,14",
        "--lrs",
        "0.1,0.2,0.4",
        "--seeds",
        "0,1",
        "--dry-run",
        "--out",
        str(tmp_path / "s"),
    ]
    code, out, err = run_cli(args)
    assert code == 0, err
    assert "study grid: 48 runs" in out  # 2 depths x 4 schemes x 3 lrs x 2 seeds
    assert "NO" not in out and out.count("yes") == 8
    code, out, err = run_cli(args + ["--json"])
    data = json.loads(out)
    assert len(data["runs"]) == 48 and len(data["models"]) == 8
    # lm's k: one per block after the first of each stage (3 stages): 0 at n=1, 3 at n=2
    for depth, lm_k in ((8, 0), (14, 3)):
        models = [m for m in data["models"] if m["depth"] == depth]
        assert len({m["params"] for m in models}) == 1 and all(m["matched"] for m in models)
        assert [m["solver"] for m in models] == ["euler", "heun", "rk4", "lm"]
        assert [m["extra_params"] for m in models] == [0, 0, 0, lm_k]
    assert _files(tmp_path) == []


def test_out_that_cannot_be_created_is_one_line(tmp_path, monkeypatch, run_cli):
    """os.access can say yes where mkdir says no (read-only or virtual file systems)."""
    import errno

    def refuse(self, *args, **kwargs):
        raise OSError(errno.EROFS, "Read-only file system", str(self))

    monkeypatch.setattr(Path, "mkdir", refuse)
    code, out, err = run_cli([*BASE, "--out", str(tmp_path / "ro")])
    assert code == 2
    assert err.strip().splitlines() == [
        f"error: cannot create the study directory {str(tmp_path / 'ro')!r} "
        "(Read-only file system); choose another --out"
    ]
    assert not (tmp_path / "ro").exists()
