"""Dataset registry, synthetic task (deterministic, learnable, not linear), real Fashion-MNIST."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from odenet.data import ArrayDataset, available_datasets, load_dataset
from odenet.data import fetch as fetch_mod
from odenet.data.synthetic import SyntheticSpec, make_synthetic, parse_spec
from odenet.errors import ConfigError, DataError

DEBIAN_FASHION = Path("/usr/share/datasets/fashion-mnist")


def test_available():
    assert available_datasets() == ["cifar10", "cifar100", "fashion-mnist", "mnist", "synthetic"]


def test_unknown_dataset_lists_the_valid_ones():
    with pytest.raises(ConfigError) as info:
        load_dataset("imagenet")
    msg = str(info.value)
    assert msg.startswith("unknown dataset 'imagenet'; expected one of: cifar10, cifar100")
    assert "\n" not in msg


def test_missing_offline_is_a_data_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv(fetch_mod.DATA_ENV, raising=False)
    monkeypatch.delenv(fetch_mod.MIRROR_ENV, raising=False)
    monkeypatch.setattr(fetch_mod, "SYSTEM_DIR", tmp_path / "none")
    with pytest.raises(DataError, match=r"mnist: train-images-idx3-ubyte.gz not found; downloa"):
        load_dataset("MNIST", tmp_path / "d", download=False)


@pytest.mark.parametrize(
    "name, spec",
    [
        ("synthetic", SyntheticSpec()),
        ("synthetic:300", SyntheticSpec(train=300)),
        ("Synthetic:train=64, test=32,size=16,classes=4,channels=1,noise=0.3,seed=7",
         SyntheticSpec(64, 32, 4, 16, 1, 0.3, 7)),
    ],
)  # fmt: skip
def test_synthetic_names(name, spec):
    assert parse_spec(name) == spec


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("synthetic:depth=3", "unknown option 'depth'"),
        ("synthetic:train=many", "train='many' is not a number"),
        ("synthetic:classes=1", "classes=1; use an integer in 2..20"),
        ("synthetic:size=4", "size=4"),
        ("synthetic:0", "train=0"),
    ],
)
def test_synthetic_bad_names(name, fragment):
    with pytest.raises(ConfigError, match=fragment):
        load_dataset(name)


def test_synthetic_dataset_is_deterministic_and_well_formed():
    a = load_dataset("synthetic:train=400,test=100,seed=3")
    b = load_dataset("synthetic:train=400,test=100,seed=3")
    c = load_dataset("synthetic:train=400,test=100,seed=4")
    assert torch.equal(a.train_images, b.train_images) and torch.equal(a.test_labels, b.test_labels)
    assert not torch.equal(a.train_images, c.train_images)
    assert a.train_images.shape == (400, 3, 32, 32) and a.train_images.dtype == torch.uint8
    assert a.test_images.shape == (100, 3, 32, 32) and a.test_labels.dtype == torch.int64
    assert (a.in_channels, a.image_size, a.num_classes, a.augment) == (3, 32, 10, "none")
    assert a.name == "synthetic:train=400,test=100,seed=3"
    counts = torch.bincount(a.train_labels, minlength=10)
    assert counts.min() >= 20  # every class present
    # mean/std are the training set's own per-channel statistics
    px = a.train_images.transpose(0, 1).reshape(3, -1).double() / 255
    assert a.mean == pytest.approx(px.mean(1).tolist(), abs=1e-12)
    assert a.std == pytest.approx(px.std(1).tolist(), abs=1e-12)
    # the test set does not depend on the training-set size
    d = load_dataset("synthetic:train=50,test=100,seed=3")
    assert torch.equal(d.test_images, a.test_images)


def test_synthetic_class_means_are_uninformative():
    # Random phases: the per-class mean images are nearly equal, so pixel means carry no label.
    tx, ty, _, _ = make_synthetic(SyntheticSpec(train=3000, test=1, noise=0.0))
    x = tx.float() / 255
    means = torch.stack([x[ty == k].mean(0) for k in range(10)])
    spread = (means - means.mean(0)).abs().mean()
    assert spread < 0.02, spread  # vs. a per-image pattern amplitude of 0.25..0.45


def _fit(model, x, y, vx, vy, epochs, lr, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, nesterov=True)
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), 64):
            idx = perm[i : i + 64]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    model.eval()
    with torch.no_grad():
        return (model(vx).argmax(1) == vy).float().mean().item()


@pytest.mark.slow
def test_synthetic_is_learnable_by_a_small_cnn_but_not_by_a_linear_model():
    torch.manual_seed(0)  # test-only: default nn init
    ds = load_dataset("synthetic:train=1500,test=500,size=16,classes=6")
    mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
    std = torch.tensor(ds.std).view(1, -1, 1, 1)
    x = (ds.train_images.float() / 255 - mean) / std
    vx = (ds.test_images.float() / 255 - mean) / std
    y, vy = ds.train_labels, ds.test_labels

    def block(i, o, s):
        return [nn.Conv2d(i, o, 3, s, 1, bias=False), nn.BatchNorm2d(o), nn.ReLU()]

    cnn = nn.Sequential(*block(3, 16, 1), *block(16, 32, 2), *block(32, 32, 2),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 6))  # fmt: skip
    linear = nn.Sequential(nn.Flatten(), nn.Linear(3 * 16 * 16, 6))
    acc_cnn = _fit(cnn, x, y, vx, vy, epochs=6, lr=0.05)
    acc_lin = _fit(linear, x, y, vx, vy, epochs=6, lr=0.005)
    assert acc_cnn > 0.8, acc_cnn
    assert acc_lin < 0.4, acc_lin  # chance is 1/6


def test_array_dataset_validates():
    x = torch.zeros(4, 1, 8, 8, dtype=torch.uint8)
    y = torch.zeros(4, dtype=torch.int64)
    kw = dict(name="t", test_images=x, test_labels=y, num_classes=2, mean=(0.5,), std=(0.5,))
    assert ArrayDataset(train_images=x, train_labels=y, augment="none", **kw).image_size == 8
    with pytest.raises(DataError, match="train labels outside"):
        ArrayDataset(train_images=x, train_labels=y + 2, augment="none", **kw)
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(train_images=x.float(), train_labels=y, augment="none", **kw)
    with pytest.raises(ConfigError, match="augment 'rotate'"):
        ArrayDataset(train_images=x, train_labels=y, augment="rotate", **kw)
    assert "tensor" not in repr(ArrayDataset(train_images=x, train_labels=y, augment="crop", **kw))


@pytest.mark.skipif(not DEBIAN_FASHION.is_dir(), reason="dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))  # empty cache: the Debian copy must be found
    monkeypatch.delenv(fetch_mod.DATA_ENV, raising=False)
    ds = load_dataset("fashion-mnist", download=False, progress=False)
    assert ds.train_images.shape == (60000, 1, 28, 28) and ds.test_images.shape == (
        10000,
        1,
        28,
        28,
    )
    assert torch.equal(torch.bincount(ds.test_labels), torch.full((10,), 1000))
    assert (ds.augment, ds.num_classes) == ("crop-flip", 10)
    px = ds.train_images.double() / 255
    assert math.isclose(px.mean().item(), ds.mean[0], abs_tol=5e-5)
    assert math.isclose(px.std().item(), ds.std[0], abs_tol=5e-5)
