"""The crop's zero padding is TrainConfig.pad: pad=2 crops with offsets 0..4, pad=0 does not
crop (nor draw offsets), and train() builds its loaders with the config's pad."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import odenet.data
import odenet.training.engine
from odenet.data import ArrayDataset, DeviceLoader, make_loaders
from odenet.errors import ConfigError
from odenet.nets import ModelConfig
from odenet.training import TrainConfig, train

MEAN, STD = (0.5,), (0.25,)


def _images(n=64, h=6, w=5):
    """Distinct nonzero pixels (zero padding is recognisable, no crop equals another)."""
    g = torch.Generator().manual_seed(0)
    return torch.randint(1, 256, (n, 1, h, w), generator=g, dtype=torch.uint8)


def _loader(images, pad, augment="crop", seed=3):
    return DeviceLoader(images, torch.arange(len(images)), batch_size=len(images), mean=MEAN,
                        std=STD, train=True, augment=augment, pad=pad,
                        generator=torch.Generator().manual_seed(seed))  # fmt: skip


@pytest.mark.parametrize("pad", [1, 2, 4])
def test_crop_offsets_span_zero_to_two_pad_and_match_slices(pad):
    images = _images(n=400)
    ld = _loader(images, pad)
    draws = ld.draw_crop_flip(len(images))
    assert set(draws[0].tolist()) == set(range(2 * pad + 1))  # 400 draws hit every offset
    assert set(draws[1].tolist()) == set(range(2 * pad + 1))
    out = ld.apply_crop_flip(images, draws)
    padded = F.pad(images, (pad, pad, pad, pad))
    h, w = images.shape[2:]
    for i in range(len(images)):  # an independent computation: slicing the padded image
        dy, dx = int(draws[0, i]), int(draws[1, i])
        assert torch.equal(out[i], padded[i, :, dy : dy + h, dx : dx + w])
    # the crop shows zero padding at most `pad` rows deep
    zero_rows = (out == 0).all(dim=3).sum(dim=2)
    assert int(zero_rows.max()) == pad


def test_pad_zero_is_no_crop():
    images = _images()
    cropped = _loader(images, 0, augment="crop")
    assert torch.equal(cropped.crop_flip(images), images)
    flipped = _loader(images, 0, augment="crop-flip", seed=5)
    out = flipped.crop_flip(images)
    flips = torch.rand(len(images), generator=torch.Generator().manual_seed(5)) < 0.5
    assert 0 < int(flips.sum()) < len(images)  # both cases occur
    expected = torch.where(flips[:, None, None, None], images.flip(3), images)
    assert torch.equal(out, expected)  # only the flips were drawn: no offsets


def test_make_loaders_and_config_carry_pad(monkeypatch):
    ds = ArrayDataset(
        name="tiny", train_images=_images(32), train_labels=torch.arange(32) % 2,
        test_images=_images(8), test_labels=torch.arange(8) % 2, num_classes=2,
        mean=MEAN, std=STD, augment="crop-flip",
    )  # fmt: skip
    train_loader, test_loader = make_loaders(ds, batch_size=8, device="cpu", seed=0, pad=2)
    assert (train_loader.pad, train_loader.augment, test_loader.augment) == (2, "crop-flip", "none")
    assert TrainConfig().pad == 4
    with pytest.raises(ConfigError, match="pad must be a non-negative integer"):
        TrainConfig(pad=-1).validate()

    seen = []
    real = odenet.data.make_loaders

    def spy(*args, **kwargs):
        seen.append(kwargs["pad"])
        return real(*args, **kwargs)

    monkeypatch.setattr(odenet.training.engine, "make_loaders", spy)
    config = TrainConfig(dataset="tiny", epochs=1, batch_size=16, pad=2, device="cpu",
                         model=ModelConfig(depth=8, width=2))  # fmt: skip
    train(config, dataset=ds)
    assert seen == [2]
