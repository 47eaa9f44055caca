"""Issue 19, items 6-8 and 10: study files, output directories, conflicting settings and runs
that would train the same network are refused with one line (exit 2) before anything is
written; the same axis values in another order are the same study."""

import sqlite3
from pathlib import Path

import pytest
from refusals import DATA, SETTINGS, S, refused, snapshot

from odenet.errors import ConfigError

RUN = ["--dataset", DATA, "--depth", "8", "--width", "4", "--epochs", "1", "--device", "cpu"]


# ---- item 6: --config accepts regular files of sane size, decode errors are one line -------
@pytest.mark.parametrize(
    ("make", "words"),
    [(lambda d: (d / "c.toml").write_bytes(b"\xff\xfe\x00orders = [1]\n") and d / "c.toml",
      "is not UTF-8 text (byte 0xff at offset 0)"),
     (lambda d: Path("/dev/zero"), "'/dev/zero' is not a regular file"),
     (lambda d: d, "is not a regular file"),
     (lambda d: (d / "c.toml").write_bytes(b"#" * (2 << 20)) and d / "c.toml",
      "is larger than 1024 KiB"),
     (lambda d: (d / "c.toml").write_text("x = " + "[" * 100_000) and d / "c.toml",
      "nested too deeply"),
     (lambda d: (d / "c.toml").write_text("orders = [1") and d / "c.toml", "as TOML")],
)  # fmt: skip
def test_config_files_that_are_not_study_files(run_cli, tmp_path, make, words):
    config = make(tmp_path)
    out = tmp_path / "out"
    before = snapshot(tmp_path)
    refused(run_cli, ["study", "--config", str(config), "--out", str(out)], None, words)
    assert snapshot(tmp_path) == before and not out.exists()


def test_a_setting_given_twice_in_a_config_file_is_refused(run_cli, tmp_path):
    (tmp_path / "s.toml").write_text("limit-train = 100\nlimit_train = 200\n")
    argv = ["study", "--config", str(tmp_path / "s.toml"), "--out", str(tmp_path / "X")]
    refused(run_cli, argv, None, "limit_train is given twice (key 'limit-train' of --config")
    assert not (tmp_path / "X").exists()


def test_config_file_read_stops_at_the_limit(tmp_path, monkeypatch):
    """A file that grows after it was checked is still read at most MAX_CONFIG_BYTES + 1."""
    import odenet.studies.spec_sources as sources
    from odenet.errors import ConfigError

    path = tmp_path / "s.toml"
    path.write_text("orders = [1]\n" + "#" * 100)
    monkeypatch.setattr(sources, "MAX_CONFIG_BYTES", 50)
    with pytest.raises(ConfigError, match="larger than 0 KiB"):
        sources.load_toml(path)
    monkeypatch.setattr(sources, "MAX_CONFIG_BYTES", 1 << 20)
    assert sources.load_toml(path) == {"orders": (1,)}


# ---- item 7: --out ------------------------------------------------------------------------
@pytest.mark.parametrize("command", ["study", "train"])
def test_an_empty_out_is_refused(run_cli, tmp_path, monkeypatch, command):
    monkeypatch.chdir(tmp_path)
    argv = [*S, "--orders", "1", "--lrs", "0.1"] if command == "study" else RUN
    refused(run_cli, [command, *argv, "--out", ""], None, "--out '' is an empty path")
    assert list(tmp_path.iterdir()) == []


def test_a_study_never_mixes_with_a_training_run(run_cli, tmp_path, finished_copy):
    run = tmp_path / "run"
    code, _, err = run_cli(["train", *RUN, "--out", str(run)])
    assert code == 0, err
    before = snapshot(run)
    refused(run_cli, ["study", *S, "--orders", "1", "--lrs", "0.1", "--out", str(run)], None,
            "holds a training run (checkpoint.pt, result.json")  # fmt: skip
    assert snapshot(run) == before
    refused(
        run_cli,
        ["train", *RUN, "--out", str(finished_copy)],
        finished_copy,
        "holds a study (study.sqlite)",
    )


# ---- item 8: conflicting settings ---------------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--axis", "width=4,8", "--axis", "width=8,16"],
      "width is given twice (--axis width=4,8 and --axis width=8,16)"),
     (["--set", "width=4", "--axis", "width=4,8"],
      "width is given twice (--set width=4 and --axis width=4,8)"),
     (["--set", "pad=2", "--set", "pad=3"], "pad is given twice (--set pad=2 and --set pad=3)"),
     (["--width", "4", "--axis", "width=4,8"], "width is given twice (--width and --axis"),
     (["--dataset", DATA, "--set", "dataset=cifar10"],
      "dataset is given twice (--dataset and --set dataset=cifar10)")],
)  # fmt: skip
def test_a_setting_given_twice_is_refused(run_cli, tmp_path, extra, words):
    argv = ["study", "--depths", "8", "--epochs", "1", "--device", "cpu", "--orders", "1",
            "--lrs", "0.1", *extra, "--out", str(tmp_path / "X")]  # fmt: skip
    refused(run_cli, argv, None, words)
    assert list(tmp_path.iterdir()) == []


def test_a_toml_value_is_overridden_by_one_flag(tmp_path):
    """The documented precedence stays: the command line wins over the study file."""
    from odenet.studies import spec_from_sources

    (tmp_path / "s.toml").write_text("width = [4, 8]\npad = 2\n")
    spec = spec_from_sources(tmp_path / "s.toml", sets=["width=16"], axes=["pad=0,4"])
    assert spec.base.model.width == 16 and dict(spec.sweep) == {"pad": (0, 4)}


def test_axis_values_in_another_order_resume_the_same_study(run_cli, finished_copy):
    """lrs 0.2,0.1 (and orders, an axis's values) on a study made with 0.1,0.2: the same
    study, nothing trained again, its run ids and grid order the stored ones."""
    from odenet.studies import spec_from_sources
    from odenet.studies.store import Store

    before = snapshot(finished_copy)
    code, _, err = run_cli(
        ["study", *S, "--orders", "1", "--lrs", "0.2,0.1", "--out", str(finished_copy)]
    )
    assert code == 0, err
    assert snapshot(finished_copy) == before  # nothing to do: every run is finished
    with sqlite3.connect(finished_copy / "study.sqlite") as con:
        rows = con.execute("SELECT idx, id FROM runs ORDER BY idx").fetchall()
    assert rows == [(0, "d8-euler-lr0.1-s0"), (1, "d8-euler-lr0.2-s0")]
    settings = SETTINGS
    store = Store.open(finished_copy)
    swapped = spec_from_sources(depths="8", orders="1", lrs="0.2,0.1", settings=settings)
    assert store.spec().differences(swapped) == []
    store.check_spec(swapped)
    changed = spec_from_sources(depths="8", orders="1", lrs="0.2,0.3", settings=settings)
    assert store.spec().differences(changed) == ["lrs: 0.1,0.2 -> 0.2,0.3"]


def test_a_new_study_in_another_order_keeps_its_own_grid_order(tmp_path):
    """Order still decides the grid of a new study (its execution order)."""
    from odenet.studies import spec_from_sources

    spec = spec_from_sources(depths="8", orders="1", lrs="0.2,0.1", settings={"dataset": DATA})
    assert [r.id for r in spec.runs] == ["d8-euler-lr0.2-s0", "d8-euler-lr0.1-s0"]


# ---- item 10: two runs of the same network ------------------------------------------------
@pytest.mark.parametrize(
    ("extra", "words"),
    [(["--depths", "8,14", "--set", "arch=resnet18"],
      "--depths 8,14: arch 'resnet18' fixes its depth, so run d8-euler-lr0.1-s0"),
     (["--depths", "8", "--set", "arch=resnet34", "--axis", "width=4,8"],
      "--axis width=4,8: arch 'resnet34' fixes its width"),
     (["--depths", "8,14", "--solvers", "ode-rk4"],
      "continuous scheme 'ode-rk4' uses one ODE field per stage"),
     (["--depths", "8", "--axis", "ode_t1=1,2"],
      "stacked scheme 'euler' integrates no ODE")],
)  # fmt: skip
@pytest.mark.parametrize("dry_run", [True, False])
def test_runs_that_would_train_the_same_network_are_refused(run_cli, tmp_path, extra, words,
                                                            dry_run):  # fmt: skip
    argv = ["study", "--dataset", DATA, "--epochs", "1", "--device", "cpu", "--orders", "1",
            "--lrs", "0.1", *extra, "--out", str(tmp_path / "X")]  # fmt: skip
    refused(run_cli, argv + (["--dry-run"] if dry_run else []), None, words)
    assert list(tmp_path.iterdir()) == []


def test_a_stored_study_with_repeated_networks_still_opens(tmp_path):
    """Studies made before the check (resnet18 with the default depths) open and report."""
    from odenet.studies import StudySpec
    from odenet.studies.store import Store
    from odenet.training import TrainConfig

    base = TrainConfig(dataset=DATA).replace(arch="resnet18")
    spec = StudySpec(base=base, depths=(20, 56), orders=(1,), lrs=(0.1,))
    Store.create(tmp_path / "old", spec, {})  # what an earlier version wrote
    assert [r.id for r in Store.open(tmp_path / "old").runs()] == [
        "d20-euler-lr0.1-s0",
        "d56-euler-lr0.1-s0",
    ]
    with pytest.raises(ConfigError, match="fixes its depth"):
        spec.check_runs_differ()
