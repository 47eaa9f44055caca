"""DeviceLoader: real crops, real flips, exact normalisation, seeded reproducibility, subsets."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from odenet.data import ArrayDataset, DeviceLoader, fixed_subset, make_loaders
from odenet.errors import ConfigError

MEAN, STD = (0.5, 0.25, 0.75), (0.2, 0.5, 0.1)


def unique_images(n=16, c=3, h=12, w=10, seed=0):
    """uint8 images with no zero pixels (so zero padding is recognisable) and no symmetry."""
    g = torch.Generator().manual_seed(seed)
    return torch.randint(1, 256, (n, c, h, w), generator=g, dtype=torch.uint8)


def to_pixels(x: torch.Tensor, mean=MEAN, std=STD) -> torch.Tensor:
    """Invert the loader's normalisation back to uint8 pixel values."""
    m = torch.tensor(mean).view(1, -1, 1, 1)
    s = torch.tensor(std).view(1, -1, 1, 1)
    return ((x * s + m) * 255).round().to(torch.uint8)


def loader(images, labels=None, **kw):
    labels = torch.arange(len(images)) if labels is None else labels
    kw.setdefault("batch_size", 5)
    kw.setdefault("train", True)
    return DeviceLoader(images, labels, mean=MEAN, std=STD, **kw)


def find_crop(out: torch.Tensor, src: torch.Tensor, pad: int):
    """All (dy, dx, flipped) such that ``out`` is that crop of the zero-padded ``src``."""
    c, h, w = src.shape
    padded = F.pad(src, (pad, pad, pad, pad))
    hits = []
    for dy in range(2 * pad + 1):
        for dx in range(2 * pad + 1):
            crop = padded[:, dy : dy + h, dx : dx + w]
            hits += [(dy, dx, False)] if torch.equal(out, crop) else []
            hits += [(dy, dx, True)] if torch.equal(out, crop.flip(-1)) else []
    return hits


def test_normalisation_exact_and_eval_fixed_order():
    images = unique_images()
    ld = loader(images, train=False, augment="crop-flip")  # eval ignores augmentation
    batches = list(ld)
    assert [len(y) for _, y in batches] == [5, 5, 5, 1] and len(ld) == 4
    x = torch.cat([b[0] for b in batches])
    y = torch.cat([b[1] for b in batches])
    assert torch.equal(y, torch.arange(16)) and x.dtype == torch.float32
    expect = (images.float() / 255 - torch.tensor(MEAN).view(1, -1, 1, 1)) / torch.tensor(STD).view(
        1, -1, 1, 1
    )
    torch.testing.assert_close(x, expect, rtol=1e-5, atol=1e-5)
    assert torch.equal(torch.cat([b[0] for b in ld]), x)  # same order every epoch


def test_shuffle_is_a_permutation_and_labels_follow_images():
    images = unique_images(n=23)
    ld = loader(images, batch_size=4, generator=torch.Generator().manual_seed(3))
    epochs = []
    for _ in range(2):
        xs, ys = zip(*ld)
        y = torch.cat(ys)
        assert sorted(y.tolist()) == list(range(23))
        assert torch.equal(to_pixels(torch.cat(xs)), images[y])  # augment="none": exact images
        epochs.append(y)
    assert not torch.equal(epochs[0], epochs[1])  # a new order each epoch
    assert not torch.equal(epochs[0], torch.arange(23))


def test_crops_are_crops_of_the_padded_image_and_flips_are_flips():
    images = unique_images(n=64)
    ld = loader(images, batch_size=64, augment="crop-flip", pad=3)
    x, y = next(iter(ld))
    out = to_pixels(x)
    found = []
    for k in range(64):
        hits = find_crop(out[k], images[y[k]], pad=3)
        assert len(hits) == 1, (k, hits)  # exactly one offset/flip explains it
        found.append(hits[0])
    offsets = {(dy, dx) for dy, dx, _ in found}
    flips = sum(f for _, _, f in found)
    assert len(offsets) > 20  # 49 possible offsets, drawn per image
    assert 16 <= flips <= 48  # about half flipped (binomial(64, 1/2): 16..48 is > 99.99 %)


def test_crop_only_never_flips_and_pad_zero_is_identity():
    images = unique_images(n=32)
    x, y = next(iter(loader(images, batch_size=32, augment="crop", pad=2)))
    out = to_pixels(x)
    assert all(
        len(h) == 1 and not h[0][2] for h in (find_crop(out[k], images[y[k]], 2) for k in range(32))
    )
    x, y = next(iter(loader(images, batch_size=32, augment="crop", pad=0)))
    assert torch.equal(to_pixels(x), images[y])


def test_generator_state_reproduces_batches():
    images = unique_images(n=20)
    ld = loader(images, batch_size=6, augment="crop-flip")
    list(ld)  # advance one epoch
    state = ld.generator.get_state()
    first = [(x.clone(), y.clone()) for x, y in ld]
    ld.generator.set_state(state)
    again = list(ld)
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(first, again))
    other = loader(images, batch_size=6, augment="crop-flip", generator=torch.Generator())
    other.generator.set_state(state)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(first, other))  # a fresh loader too


def test_drop_last_channels_last_and_len():
    images = unique_images(n=11)
    ld = loader(images, batch_size=4, drop_last=True, channels_last=True)
    batches = list(ld)
    assert len(ld) == len(batches) == 2 and all(len(y) == 4 for _, y in batches)
    assert batches[0][0].is_contiguous(memory_format=torch.channels_last)
    assert len(loader(images, batch_size=4)) == 3


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"batch_size": 0}, "batch_size=0"),
        ({"augment": "flip"}, "augment 'flip'"),
        ({"pad": -1}, "pad=-1"),
        ({"device": "tpu"}, "device 'tpu'"),
    ],
)
def test_bad_arguments(kwargs, fragment):
    with pytest.raises(ConfigError, match=fragment):
        loader(unique_images(n=4), **kwargs)


def test_bad_tensors():
    with pytest.raises(ConfigError, match="uint8"):
        loader(unique_images(n=4).float())
    with pytest.raises(ConfigError, match="int64"):
        loader(unique_images(n=4), labels=torch.zeros(4, dtype=torch.int32))
    with pytest.raises(ConfigError, match="mean/std"):
        DeviceLoader(unique_images(n=4), torch.zeros(4, dtype=torch.int64), batch_size=2,
                     mean=(0.5,), std=(0.2,), train=False)  # fmt: skip


def test_fixed_subset_is_seed_independent_and_nested():
    a = fixed_subset(100, 30, "limit_train")
    assert torch.equal(a, fixed_subset(100, 30, "limit_train"))
    assert a.tolist() == sorted(set(a.tolist())) and len(a) == 30
    assert set(fixed_subset(100, 10, "x").tolist()) <= set(a.tolist())  # first N of one perm
    assert fixed_subset(100, None, "x") is None
    with pytest.raises(ConfigError, match="limit_train=101; the split has 100 images"):
        fixed_subset(100, 101, "limit_train")
    with pytest.raises(ConfigError, match="limit_test=0"):
        fixed_subset(100, 0, "limit_test")


def make_ds(augment="crop-flip"):
    g = torch.Generator().manual_seed(1)
    return ArrayDataset(
        name="toy",
        train_images=unique_images(n=40, seed=1),
        train_labels=torch.randint(0, 3, (40,), generator=g),
        test_images=unique_images(n=12, seed=2),
        test_labels=torch.randint(0, 3, (12,), generator=g),
        num_classes=3,
        mean=MEAN,
        std=STD,
        augment=augment,
    )


def test_make_loaders():
    ds = make_ds()
    train, test = make_loaders(ds, batch_size=8, device="cpu", seed=5, limit_train=24, limit_test=7)
    assert (train.train, train.augment, train.num_samples) == (True, "crop-flip", 24)
    assert (test.train, test.augment, test.num_samples) == (False, "none", 7)
    keep = fixed_subset(40, 24, "limit_train")
    assert torch.equal(train.images, ds.train_images[keep])
    assert torch.equal(train.labels, ds.train_labels[keep])
    again, _ = make_loaders(ds, batch_size=8, device="cpu", seed=5, limit_train=24)
    other, _ = make_loaders(ds, batch_size=8, device="cpu", seed=6, limit_train=24)
    run = [y for _, y in train]
    assert all(torch.equal(a, b) for a, b in zip(run, [y for _, y in again]))
    assert not all(torch.equal(a, b) for a, b in zip(run, [y for _, y in other]))
    plain, _ = make_loaders(ds, batch_size=8, device="cpu", seed=5, augment=False)
    assert plain.augment == "none"
    assert make_loaders(make_ds("crop"), batch_size=8, device="cpu", seed=0)[0].augment == "crop"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images = unique_images(n=33)
    kw = {"batch_size": 8, "augment": "crop-flip"}
    cpu = list(loader(images, generator=torch.Generator().manual_seed(9), **kw))
    gpu = list(loader(images, generator=torch.Generator().manual_seed(9), device="cuda", **kw))
    assert gpu[0][0].device.type == "cuda"
    for (xc, yc), (xg, yg) in zip(cpu, gpu):
        assert torch.equal(yc, yg.cpu())
        torch.testing.assert_close(xc, xg.cpu())


@pytest.mark.parametrize("augment,channels_last", [("crop-flip", False), ("crop", True),
                                                   ("none", False)])  # fmt: skip
def test_member_batches_are_each_members_own_batches(augment, channels_last):
    """K copies of one loader with their own generators, batched together: member m's channels
    and labels are bitwise what loaders[m] yields (a partial last batch included), and every
    generator ends where the loader alone leaves it."""
    import copy

    from odenet.data.loader import member_batches

    base = loader(unique_images(n=17), batch_size=5, augment=augment, channels_last=channels_last)
    seeds = (3, 4, 5)
    members = []
    for s in seeds:
        m = copy.copy(base)
        m.generator = torch.Generator().manual_seed(s)
        members.append(m)
    fused = list(member_batches(members))
    assert [x.shape[0] for x, _ in fused] == [5, 5, 5, 2]
    for m, s in enumerate(seeds):
        alone = copy.copy(base)
        alone.generator = torch.Generator().manual_seed(s)
        own = list(alone)
        for (x, y), (xm, ym) in zip(fused, own, strict=True):
            assert torch.equal(x[:, 3 * m : 3 * m + 3], xm)
            assert torch.equal(y[:, m], ym)
        assert torch.equal(alone.generator.get_state(), members[m].generator.get_state())
    if channels_last:
        assert fused[0][0].is_contiguous(memory_format=torch.channels_last)
    assert fused[0][0].shape == (5, 9, 12, 10) and fused[0][1].shape == (5, 3)


def test_member_batches_refuse_different_loaders():
    import copy

    from odenet.data.loader import member_batches

    a, b = loader(unique_images()), loader(unique_images())
    with pytest.raises(ConfigError, match="copies of one training loader"):
        next(member_batches([a, b]))
    with pytest.raises(ConfigError, match="copies of one training loader"):
        next(member_batches([loader(unique_images(), train=False)]))
    for setting in ("channels_last", "drop_last"):
        other = copy.copy(a)
        setattr(other, setting, True)
        with pytest.raises(ConfigError, match="copies of one training loader"):
            next(member_batches([a, other]))
    assert next(member_batches([a, copy.copy(a)]))[0].shape == (5, 6, 12, 10)
