"""TrainConfig validation, device resolution, seeds and checkpoint files (no model needed)."""

import dataclasses
import json

import pytest
import torch
from stored_formats import MAIN_CONFIG, V010_CONFIG

from odenet.errors import ConfigError, DataError
from odenet.nets import ModelConfig
from odenet.training import TrainConfig
from odenet.training import checkpoint as ckpt
from odenet.training.config import SETTINGS
from odenet.training.device import data_seed, provenance, resolve


def test_defaults_are_the_onecycle_recipe_and_valid():
    c = TrainConfig()
    c.validate()
    assert (c.lr, c.batch_size, c.momentum, c.nesterov, c.weight_decay) == (
        0.1, 128, 0.9, True, 5e-4,
    )  # fmt: skip
    assert (c.schedule, c.epochs, c.model.depth, c.model.solver) == ("onecycle", 10, 20, "euler")


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("lr", 0.0, "lr must be a positive"),
        ("lr", -1.0, "lr must be a positive"),
        ("lr", float("nan"), "lr must be a positive"),
        ("epochs", 0, "epochs must be a positive integer"),
        ("epochs", -3, "epochs must be a positive integer"),
        ("batch_size", 0, "batch_size"),
        ("schedule", "linear", "unknown schedule 'linear'"),
        ("device", "tpu", "unknown device 'tpu'"),
        ("momentum", 1.0, "momentum must be in"),
        ("weight_decay", -1e-4, "weight_decay"),
        ("label_smoothing", 1.0, "label_smoothing"),
        ("warmup_epochs", 11.0, "warmup_epochs"),
        ("limit_train", 0, "limit_train"),
        ("seed", -1, "seed"),
    ],
)
def test_bad_values_raise_config_error_naming_the_field(field, value, words):
    with pytest.raises(ConfigError, match=words):
        dataclasses.replace(TrainConfig(), **{field: value}).validate()


def test_nesterov_without_momentum_is_rejected():
    with pytest.raises(ConfigError, match="nesterov"):
        TrainConfig(momentum=0.0).validate()
    TrainConfig(momentum=0.0, nesterov=False).validate()


def test_device_resolution():
    p = resolve(TrainConfig(device="cpu"))
    assert (p.device.type, p.amp, p.channels_last) == ("cpu", False, False)
    p = resolve(TrainConfig(device="cpu", amp=True, channels_last=True))
    assert (p.amp, p.channels_last) == (True, True)
    auto = resolve(TrainConfig(device="auto"))
    assert auto.device.type == ("cuda" if torch.cuda.is_available() else "cpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve(TrainConfig(device="cuda"))


def test_data_seed_is_derived_deterministically_and_differs_from_the_seed():
    assert data_seed(0) == data_seed(0)
    seeds = {data_seed(s) for s in range(100)}
    assert len(seeds) == 100 and not seeds & set(range(1000))
    assert all(0 <= s < 2**63 for s in seeds)


def test_provenance_holds_versions_seed_and_config():
    c = TrainConfig(seed=7, device="cpu")
    prov = provenance(c, resolve(c))
    assert prov["torch"] == torch.__version__ and prov["seed"] == 7
    assert prov["config"] == dataclasses.asdict(c)
    assert set(prov) >= {"odenet", "python", "device", "device_name"}
    json.dumps(prov)  # must be JSON-serialisable (it goes into result.json)


def test_checkpoint_round_trip_is_atomic_and_checks_config(tmp_path):
    c = TrainConfig(dataset="synthetic", epochs=3)
    payload = {"config": dataclasses.asdict(c), "epoch": 1, "t": torch.arange(4)}
    assert ckpt.load_checkpoint(tmp_path) is None
    ckpt.save_checkpoint(tmp_path, payload)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt"]  # no temp left
    state = ckpt.load_checkpoint(tmp_path)
    assert torch.equal(state["t"], torch.arange(4)) and state["epoch"] == 1
    ckpt.check_same_config(state["config"], c, tmp_path)
    ckpt.check_same_config(state["config"], dataclasses.replace(c, data_dir="/x"), tmp_path)
    with pytest.raises(ConfigError, match="epochs: 3 there, 4 now"):
        ckpt.check_same_config(state["config"], dataclasses.replace(c, epochs=4), tmp_path)
    assert ckpt.config_from_dict(state["config"]) == c


def test_corrupt_checkpoint_and_missing_run_are_data_errors(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="delete it"):
        ckpt.load_checkpoint(tmp_path)
    with pytest.raises(DataError, match="no checkpoint"):
        ckpt.load_trained(tmp_path / "empty")


# ---- one config tree: TrainConfig holds a ModelConfig; flat names at the boundary ----------
def test_no_model_field_is_a_train_config_field():
    own = {f.name for f in dataclasses.fields(TrainConfig)}
    model = {f.name for f in dataclasses.fields(ModelConfig)}
    assert not own & model and TrainConfig().model == ModelConfig()
    # every field is a setting under its own name, except the data's shape
    assert set(SETTINGS) == (own - {"model"}) | (model - {"in_channels", "num_classes"})
    assert all(s.help for s in SETTINGS.values())  # the command line's help comes from here


def test_settings_read_and_write_the_tree_by_flat_names():
    c = TrainConfig().replace(depth=8, norm="gn", ode_t1=2.0, epochs=3)
    assert c.model == ModelConfig(depth=8, norm="gn", ode_t1=2.0) and c.epochs == 3
    assert (c.value("depth"), c.value("norm"), c.value("epochs")) == (8, "gn", 3)
    assert list(c.settings()) == list(SETTINGS) and c.settings()["ode_t1"] == 2.0
    assert c.replace() == c and TrainConfig().replace(width=4) != TrainConfig()
    with pytest.raises(ConfigError, match="unknown setting 'in_channels'"):
        c.replace(in_channels=1)  # the data decides it
    with pytest.raises(ConfigError, match="unknown setting 'bogus'"):
        c.value("bogus")
    with pytest.raises(TypeError):
        dataclasses.replace(c, depth=8)  # no second copy of the model's fields


def test_model_fields_are_validated_and_the_shape_comes_from_the_data():
    for field, value, words in [("norm", "ln", "unknown norm 'ln'"), ("block", "x", "block"),
                                ("ode_t1", -1.0, "ode_t1 must be"), ("depth", 9, "depth 9"),
                                ("ode_adjoint", "yes", "ode_adjoint must be true")]:  # fmt: skip
        with pytest.raises(ConfigError, match=words):
            TrainConfig().replace(**{field: value}).validate()
    with pytest.raises(ConfigError, match="num_classes comes from the dataset"):
        TrainConfig(model=ModelConfig(num_classes=5)).validate()

    class Data:  # the shape of a 1-channel, 3-class dataset
        in_channels, num_classes = 1, 3

    model = TrainConfig().replace(norm="gn").model_for(Data())
    assert (model.in_channels, model.num_classes, model.norm) == (1, 3, "gn")
    assert ModelConfig(arch="resnet18").for_data() == ModelConfig(
        arch="resnet18", in_channels=3, num_classes=1000
    )


@pytest.mark.parametrize("stored", [V010_CONFIG, MAIN_CONFIG])
def test_flat_configs_of_earlier_versions_load_as_the_same_run(stored, tmp_path):
    config = ckpt.config_from_dict(stored)
    assert config == TrainConfig(
        dataset="synthetic:train=256,test=128,size=8", epochs=2, device="cpu",
        model=ModelConfig(depth=8, width=4),
    )  # fmt: skip
    assert ckpt.config_from_dict(dataclasses.asdict(config)) == config  # the nested form
    ckpt.check_same_config(stored, config, tmp_path)  # resumes: no "different run"
    with pytest.raises(ConfigError, match="depth: 8 there, 14 now"):
        ckpt.check_same_config(stored, config.replace(depth=14), tmp_path)
    with pytest.raises(ConfigError, match="norm: None there, 'gn' now"):
        ckpt.check_same_config(stored, config.replace(norm="gn"), tmp_path)
    for bad in ({**stored, "bogus": 1}, {**dataclasses.asdict(config), "model": {"bogus": 1}}):
        with pytest.raises(DataError, match="unknown fields \\['bogus'\\]"):
            ckpt.config_from_dict(bad)
