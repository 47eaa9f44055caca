"""Studies over any TrainConfig field: TOML lists and --axis sweep a field, --set and TOML
scalars set it for the whole study, run ids name the swept fields, the report keeps swept
values apart, and a study directory written by the previous (flat) spec format resumes."""

import json
import os
import socket
import sqlite3
import subprocess
import sys
from dataclasses import fields

import pytest

from odenet.errors import ConfigError
from odenet.studies import Store, StudySpec, load_study
from odenet.studies.grid import run_id
from odenet.studies.spec_sources import spec_from_sources
from odenet.training.config import SETTINGS, TrainConfig

DATASET = "synthetic:train=256,test=128,size=8"
QUICK = ["--dataset", DATASET, "--depths", "8", "--width", "4", "--epochs", "1", "--device", "cpu"]
TOML = f"""
[study]
orders = [1, 4]
depths = [8]
lrs = [0.1, 0.4]
weight_decay = [0.0, 5e-4]
warmup_epochs = 1
dataset = "{DATASET}"
width = 4
epochs = 1
device = "cpu"
"""


def test_toml_list_is_an_axis_scalar_a_setting(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(TOML)
    spec = spec_from_sources(path)
    assert spec.sweep == (("weight_decay", (0.0, 5e-4)),)
    assert spec.base.warmup_epochs == 1.0 and isinstance(spec.base.warmup_epochs, float)
    flags = dict(orders="1,4", depths="8", lrs="0.1,0.4")
    settings = dict(dataset=DATASET, width=4, epochs=1)
    cli = spec_from_sources(
        None, **flags, settings={**settings, "device": "cpu"}, sets=["warmup_epochs=1"],
        axes=["weight_decay=0,5e-4"],
    )  # fmt: skip
    assert cli == spec
    runs = spec.runs
    assert [r.id for r in runs] == [
        f"d8-{s}-lr{lr}-wd{wd}-s0"
        for s in ("euler", "rk4")
        for lr in (0.1, 0.4)
        for wd in ("0.0", "0.0005")
    ]
    for r in runs:
        assert r.config.weight_decay == float(r.id.split("-wd")[1].split("-")[0])
        assert r.config.warmup_epochs == 1.0
        assert (r.config.lr, r.config.model.solver) == (r.lr, r.solver)
    # a one-value list is a setting for the whole study: no axis, no id part
    one = spec_from_sources(None, **flags, settings=settings, axes=["weight_decay=0"])
    assert one.sweep == () and one.base.weight_decay == 0.0
    assert one.runs[0].id == "d8-euler-lr0.1-s0"


def test_run_ids_short_keys_and_fallback():
    assert run_id(20, "rk4", 0.1, 0, (("weight_decay", 5e-4),)) == "d20-rk4-lr0.1-wd0.0005-s0"
    swept = (("batch_size", 64), ("nesterov", False), ("schedule", "cosine"), ("amp", None))
    assert run_id(8, "euler", 1, 2, swept) == "d8-euler-lr1.0-bs64-nonesterov-cosine-ampnone-s2"
    assert (
        run_id(8, "euler", 0.1, 0, (("some_new_field", 3),)) == "d8-euler-lr0.1-some_new_field3-s0"
    )


def test_every_setting_is_settable_and_typed_from_its_annotation():
    """Each field of TrainConfig and of its ModelConfig (those added later too, but not the
    data's in_channels / num_classes) can be set with --set and is parsed by its annotation;
    the axes' own fields point to their options."""
    samples = {int: "3", float: "0.25", bool: "false", str: "x"}
    from odenet.nets import ModelConfig
    from odenet.studies.spec_values import FAMILIAR, coerce_value

    model = [f.name for f in fields(ModelConfig) if f.name not in ("in_channels", "num_classes")]
    assert set(SETTINGS) == {f.name for f in fields(TrainConfig) if f.name != "model"} | set(model)
    for name, setting in SETTINGS.items():
        kind, optional = setting.kind, setting.optional
        if name in FAMILIAR:
            with pytest.raises(ConfigError, match=f"{name} is an axis of every study"):
                spec_from_sources(None, sets=[f"{name}=1"])
            continue
        value = coerce_value(name, samples[kind], "--set")
        assert type(value) is kind
        if optional:
            assert coerce_value(name, "none", "--set") is None


def test_spec_rejects_sweeping_one_per_study_fields_and_placeholder_axes():
    with pytest.raises(ConfigError, match="device holds one value per study"):
        StudySpec(sweep={"device": ("cpu", "cuda")})
    with pytest.raises(ConfigError, match="lr is an axis of every study: set it with --lrs"):
        StudySpec(base=TrainConfig(lr=0.3))
    with pytest.raises(ConfigError, match="depth is an axis of every study: set it with --dep"):
        StudySpec(base=TrainConfig().replace(depth=8))
    with pytest.raises(ConfigError, match="--axis momentum: empty list"):
        StudySpec(sweep={"momentum": ()})
    with pytest.raises(ConfigError, match="cannot sweep 'bogus': not a TrainConfig field"):
        StudySpec(sweep={"bogus": (1, 2)})
    with pytest.raises(TypeError, match="unexpected keyword argument 'bogus'"):
        StudySpec(bogus=1)


def test_warmup_checked_against_each_runs_epochs():
    """Validation is TrainConfig.validate on every run config: warm-up 2 fits the epochs=2 runs
    but not the epochs=1 runs, and the error names the first bad run."""
    with pytest.raises(ConfigError, match=r"warmup_epochs must be in \[0, epochs=1\].*ep1-s0\)"):
        spec_from_sources(None, depths="8", orders="1", lrs="0.1", sets=["warmup_epochs=2"],
                          axes=["epochs=2,1"])  # fmt: skip


@pytest.mark.slow
def test_weight_decay_study_trains_both_values_and_reports_them_apart(
    tmp_path, run_cli, one_thread
):
    path = tmp_path / "study.toml"
    path.write_text(TOML)
    out = tmp_path / "study"
    code, stdout, err = run_cli(["study", "--config", str(path), "--out", str(out), "--quiet"])
    assert code == 0, err
    records = Store.open(out).runs()
    assert len(records) == 8 and all(r.status == "done" for r in records)
    for r in records:  # each run trained with its own weight decay, as result.json says
        result = json.loads((r.run_dir / "result.json").read_text())
        assert result["provenance"]["config"]["weight_decay"] == r.config.weight_decay
        assert result["provenance"]["config"]["warmup_epochs"] == 1.0
    by_id = {r.id: r for r in records}
    for s in ("euler", "rk4"):
        for lr in (0.1, 0.4):
            a, b = by_id[f"d8-{s}-lr{lr}-wd0.0-s0"], by_id[f"d8-{s}-lr{lr}-wd0.0005-s0"]
            assert a.train_loss != b.train_loss  # the decay changed the trained weights

    code, stdout, err = run_cli(["report", str(out), "--json"])
    assert code == 0, err
    data = json.loads(stdout)
    assert sorted((r["id"], r["weight_decay"]) for r in data["runs"]) == sorted(
        (r.id, r.config.weight_decay) for r in records
    )
    assert all(list(r)[:6] == ["id", "depth", "solver", "lr", "seed", "weight_decay"]
               for r in data["runs"])  # fmt: skip
    table = {(row["depth"], row["solver"], row["weight_decay"]): row for row in data["table"]}
    assert sorted(table) == [(8, s, wd) for s in ("euler", "rk4") for wd in (0.0, 0.0005)]
    assert all(row["runs"] == 2 for row in table.values())  # the two lrs of one group
    md = (out / "report.md").read_text()
    assert "| depth | scheme | weight_decay | best acc %" in md
    code, stdout, err = run_cli(["report", str(out)])
    assert code == 0 and "weight_decay" in stdout


# ---- a study directory written by the previous version (flat spec, no steps table) ---------
# Exactly what `odenet study --dataset synthetic:train=256,test=128,size=8 --depths 8 --width 4
# --epochs 1 --orders 1,4 --lrs 0.1,0.4 --device cpu` stored before this change: the spec
# (meta), the schema, and run configs without the fields added since (pad).
OLD_SPEC = {
    "orders": [1, 4], "solvers": [], "depths": [8], "lrs": [0.1, 0.4], "seeds": [0],
    "epochs": 1, "dataset": DATASET, "limit_train": None, "limit_test": None,
    "batch_size": 128, "schedule": "onecycle", "device": "cpu", "width": 4, "block": "postact",
    "shortcut": "A", "data_dir": None, "executor": "auto", "fuse_max": 8, "cuda_graphs": None,
}  # fmt: skip
OLD_CONFIG_KEYS = (
    "dataset", "depth", "solver", "block", "shortcut", "width", "epochs", "lr", "batch_size",
    "momentum", "nesterov", "weight_decay", "schedule", "warmup_epochs", "label_smoothing",
    "seed", "limit_train", "limit_test", "data_dir", "device", "amp", "channels_last",
    "augment", "cuda_graphs", "divergence_threshold",
)  # fmt: skip
OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE runs (
    id TEXT PRIMARY KEY, idx INTEGER NOT NULL, depth INTEGER NOT NULL, solver TEXT NOT NULL,
    lr REAL NOT NULL, seed INTEGER NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', executor TEXT, pid INTEGER, host TEXT,
    attempts INTEGER NOT NULL DEFAULT 0, error TEXT, started TEXT, finished TEXT,
    epochs_done INTEGER NOT NULL DEFAULT 0, test_acc REAL, best_test_acc REAL,
    train_loss REAL, diverged_epoch INTEGER, diverged_step INTEGER, params INTEGER,
    extra_params INTEGER, seconds REAL, device TEXT, provenance TEXT);
CREATE TABLE epochs (
    run_id TEXT NOT NULL REFERENCES runs(id), epoch INTEGER NOT NULL, train_loss REAL,
    train_acc REAL, test_loss REAL, test_acc REAL, lr REAL, seconds REAL, images_per_s REAL,
    PRIMARY KEY (run_id, epoch));
"""
OLD_IDS = ["d8-euler-lr0.1-s0", "d8-euler-lr0.4-s0", "d8-rk4-lr0.1-s0", "d8-rk4-lr0.4-s0"]


def _old_study(path) -> None:
    """The previous version's study: run 0 done, run 1 'running' under a dead process on this
    host (a killed study), runs 2 and 3 pending."""
    (path / "runs").mkdir(parents=True)
    con = sqlite3.connect(path / "study.sqlite")
    con.executescript(OLD_SCHEMA)
    con.executemany("INSERT INTO meta VALUES (?, ?)", [
        ("spec", json.dumps(OLD_SPEC)), ("created", "2026-01-01T00:00:00.000+00:00"),
        ("odenet_version", "0.old"),
    ])  # fmt: skip
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for i, rid in enumerate(OLD_IDS):
        _, solver, lr, _ = rid.split("-")
        config = {k: v for k, v in TrainConfig().settings().items() if k in OLD_CONFIG_KEYS}
        config |= {"dataset": DATASET, "depth": 8, "solver": solver, "width": 4, "epochs": 1,
                   "lr": float(lr[2:]), "device": "cpu"}  # fmt: skip
        status, pid = (
            ("done", None) if i == 0 else ("running", dead.pid) if i == 1 else ("pending", None)
        )
        con.execute(
            "INSERT INTO runs (id, idx, depth, solver, lr, seed, config, status, pid, host,"
            " finished, test_acc, epochs_done) VALUES (?, ?, 8, ?, ?, 0, ?, ?, ?, ?, ?, ?, ?)",
            (rid, i, solver, float(lr[2:]), json.dumps(config), status, pid,
             socket.gethostname(), "old" if i == 0 else None, 0.5 if i == 0 else None,
             1 if i == 0 else 0),
        )  # fmt: skip
    con.execute("INSERT INTO epochs (run_id, epoch, train_loss, test_acc) VALUES (?, 1, 2.0, 0.5)",
                (OLD_IDS[0],))  # fmt: skip
    con.commit()
    con.close()


def test_old_spec_reads_as_the_same_study(tmp_path):
    _old_study(tmp_path / "old")
    store = Store.open(tmp_path / "old")
    settings = dict(width=4, epochs=1, dataset=DATASET, device="cpu")
    spec = spec_from_sources(None, orders="1,4", lrs="0.1,0.4", depths="8", settings=settings)
    assert store.spec() == spec and store.spec().differences(spec) == []
    assert [r.id for r in spec.runs] == OLD_IDS
    assert [r.config for r in store.runs()] == [r.config for r in spec.runs]
    assert store.steps() == []  # no steps table yet: nothing logged, no error
    other = spec_from_sources(None, orders="1,4", lrs="0.1,0.4", depths="8", settings=settings,
                              sets=["pad=2"])  # fmt: skip
    with pytest.raises(ConfigError, match=r"different config \(pad: 4 -> 2\)"):
        store.check_spec(other)


def test_old_study_directory_resumes_with_the_same_run_ids(tmp_path, run_cli, one_thread):
    out = tmp_path / "old"
    _old_study(out)
    args = ["study", *QUICK, "--orders", "1,4", "--lrs", "0.1,0.4", "--quiet", "--out", str(out)]
    code, _, err = run_cli(args)
    assert code == 0, err
    records = Store.open(out).runs()
    assert [r.id for r in records] == OLD_IDS  # no run added, none renamed
    assert all(r.status == "done" for r in records)
    assert records[0].finished == "old" and records[0].test_acc == 0.5  # kept, not retrained
    assert all(r.finished != "old" and (r.run_dir / "result.json").is_file() for r in records[1:])
    data = load_study(out)
    assert [row["id"] for row in data.run_rows()] == OLD_IDS
    assert os.path.exists(out / "study.sqlite")
    code, _, err = run_cli([*args[:-2], "--lrs", "0.1", "--out", str(out)])
    assert code == 2 and "different config (lrs: 0.1,0.4 -> 0.1)" in err
