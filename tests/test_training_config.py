"""TrainConfig validation, device resolution, seeds and checkpoint files (no model needed)."""

import dataclasses
import json

import pytest
import torch

from odenet.errors import ConfigError, DataError
from odenet.training import TrainConfig
from odenet.training import checkpoint as ckpt
from odenet.training.device import data_seed, provenance, resolve


def test_defaults_are_the_onecycle_recipe_and_valid():
    c = TrainConfig()
    c.validate()
    assert (c.lr, c.batch_size, c.momentum, c.nesterov, c.weight_decay) == (
        0.1, 128, 0.9, True, 5e-4,
    )  # fmt: skip
    assert (c.schedule, c.epochs, c.depth, c.solver) == ("onecycle", 10, 20, "euler")


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
