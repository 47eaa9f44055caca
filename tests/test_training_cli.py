"""`odenet train`: defaults, JSON output, divergence exit code and one-line errors."""

import dataclasses
import json

import pytest

import odenet.cli
import odenet.training
from odenet.cli import main
from odenet.nets import ModelConfig
from odenet.training import TrainConfig
from odenet.training.config import SETTINGS

SPEC = "synthetic:train=128,test=64,size=8"
SMALL = ["--dataset", SPEC, "--depth", "8", "--width", "4", "--batch-size", "64",
         "--device", "cpu"]  # fmt: skip


def run(capsys, *args):
    with pytest.raises(SystemExit) as exit_info:
        main(["train", *args])
    out, err = capsys.readouterr()
    return exit_info.value.code or 0, out, err


def test_cli_defaults_are_the_trainconfig_defaults(capsys, monkeypatch):
    seen = {}

    def fake_train(config, *, out_dir=None, dataset=None, callbacks=None):
        seen["config"] = config
        raise odenet.ConfigError("stop here")

    monkeypatch.setattr(odenet.cli, "train", fake_train)
    code, _, err = run(capsys, "--dataset", "cifar10")
    assert code == 2 and err.strip() == "error: stop here"
    assert seen["config"] == TrainConfig(dataset="cifar10")
    run(capsys, "--dataset", "x", "--no-amp", "--no-channels-last", "--no-nesterov",
        "--no-augment", "--lr", "0.3", "--limit-train", "100", "--out", "d")  # fmt: skip
    assert seen["config"] == dataclasses.replace(
        TrainConfig(dataset="x"), amp=False, channels_last=False, nesterov=False, augment=False,
        lr=0.3, limit_train=100,
    )  # fmt: skip


def test_json_is_pure_and_has_the_summary_keys(capsys, tmp_path):
    code, out, err = run(capsys, *SMALL, "--epochs", "1", "--json", "--out", str(tmp_path))
    assert code == 0
    obj = json.loads(out)  # stdout holds nothing but the JSON object
    assert {"test_acc", "train_loss", "diverged", "epochs", "params", "seconds"} <= set(obj)
    assert obj["diverged"] is False and obj["epochs"] == 1 and 0 <= obj["test_acc"] <= 1
    assert obj["history"][0]["epoch"] == 1 and (tmp_path / "checkpoint.pt").exists()


def test_table_output_without_json(capsys):
    code, out, _ = run(capsys, *SMALL, "--epochs", "1")
    assert code == 0 and "test acc" in out and "params" in out


def test_huge_lr_diverges_with_exit_code_zero(capsys):
    code, out, _ = run(capsys, *SMALL, "--epochs", "3", "--lr", "1000", "--json")
    obj = json.loads(out)
    assert code == 0 and obj["diverged"] is True and obj["status"] == "diverged"
    assert obj["diverged_epoch"] >= 1 and obj["diverged_step"] >= 1
    assert obj["epochs"] == obj["diverged_epoch"] - 1 < 3


@pytest.mark.parametrize(
    "args, words",
    [
        (["--lr", "0"], "lr must be a positive"),
        (["--lr", "-0.1"], "lr must be a positive"),
        (["--epochs", "0"], "epochs must be a positive integer"),
        (["--schedule", "linear"], "unknown schedule"),
        (["--depth", "9"], "depth"),
        (["--solver", "nope"], "unknown solver"),
    ],
)
def test_bad_input_is_one_line_exit_2(capsys, args, words):
    code, out, err = run(capsys, *SMALL, *args)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: ") and words in err


def test_unknown_dataset_is_one_line_exit_2(capsys):
    code, _, err = run(capsys, "--dataset", "imagenet", "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and "unknown dataset 'imagenet'" in err


def test_missing_data_offline_is_one_line_exit_1(capsys, monkeypatch, tmp_path):
    import odenet.data.fetch as fetch

    monkeypatch.setattr(fetch, "MIRRORS", {**fetch.MIRRORS, "cifar10": ("http://127.0.0.1:9/",)})
    monkeypatch.delenv("ODENET_MIRROR", raising=False)
    monkeypatch.setenv("ODENET_DATA", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    code, _, err = run(capsys, "--dataset", "cifar10", "--data-dir", str(tmp_path), "--device",
                       "cpu")  # fmt: skip
    assert code == 1 and err.count("\n") == 1 and err.startswith("error: ")


def test_every_field_is_an_option_of_train_describe_and_study():
    """The options are generated from the config fields: every setting is a flag of train and
    study (the axes' own fields excepted), every ModelConfig field one of describe, each with
    its help text."""
    from typer.testing import CliRunner

    from odenet.cli import app
    from odenet.studies.spec_values import FAMILIAR

    model = {f.name: f.metadata["help"] for f in dataclasses.fields(ModelConfig)}
    train_flags = {name: s.help for name, s in SETTINGS.items()}
    study_flags = {name: help for name, help in train_flags.items() if name not in FAMILIAR}
    for command, flags in (("train", train_flags), ("describe", model), ("study", study_flags)):
        result = CliRunner().invoke(app, [command, "--help"], env={"COLUMNS": "250"})
        assert result.exit_code == 0
        for name, text in flags.items():
            assert f"--{name.replace('_', '-')} " in result.output, (command, name)
            assert text[:30] in result.output, (command, name)
    assert "--no-ode-adjoint" in result.output and "--no-nesterov" in result.output


def test_model_options_reach_the_model(capsys, monkeypatch):
    seen = {}

    def fake_train(config, *, out_dir=None, dataset=None, callbacks=None):
        seen["config"] = config
        raise odenet.ConfigError("stop here")

    monkeypatch.setattr(odenet.cli, "train", fake_train)
    run(capsys, *SMALL, "--norm", "gn", "--solver", "ode-rk4", "--ode-t1", "2", "--ode-adjoint")
    assert seen["config"].model == ModelConfig(
        depth=8, width=4, norm="gn", solver="ode-rk4", ode_t1=2.0, ode_adjoint=True
    )


@pytest.mark.parametrize("args", [["--norm", "gn"], ["--solver", "ode-rk4", "--ode-t1", "2"]])
def test_model_options_train(capsys, args):
    code, out, err = run(capsys, *SMALL, "--epochs", "1", "--json", *args)
    assert code == 0, err
    model = json.loads(out)["provenance"]["config"]["model"]
    assert (model["norm"], model["ode_t1"], model["solver"]) == (
        ("gn", 1.0, "euler") if "--norm" in args else (None, 2.0, "ode-rk4")
    )
