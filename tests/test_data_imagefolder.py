"""imagefolder:PATH[,size=N]: pixels, labels, mean/std, the cache and its invalidation, errors."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import odenet.files
from odenet.cli import main
from odenet.data import imagefolder, load_dataset
from odenet.errors import ConfigError

CLASSES = ("zebra", "ant", "Moth")  # sorted: Moth, ant, zebra (plain string order)


def _write(root: Path, per_class: dict[str, int], seed: int = 0, size: int = 12) -> dict:
    """PNG files root/<split>/<class>/<i>.png of random RGB pixels; returns path -> array."""
    rng = np.random.default_rng(seed)
    pixels = {}
    for split, n in per_class.items():
        for c in CLASSES:
            d = root / split / c
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
                Image.fromarray(a).save(d / f"{i}.png")
                pixels[d / f"{i}.png"] = a
    return pixels


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "imgs"
    return root, _write(root, {"train": 3, "val": 2})


def test_pixels_labels_and_statistics(folder):
    root, pixels = folder
    ds = load_dataset(f"imagefolder:{root},size=12")
    order = sorted(CLASSES)
    assert order == ["Moth", "ant", "zebra"] and ds.num_classes == 3
    assert ds.train_images.shape == (9, 3, 12, 12) and ds.test_images.shape == (6, 3, 12, 12)
    assert ds.train_labels.tolist() == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert ds.test_labels.tolist() == [0, 0, 1, 1, 2, 2]
    for split, images, n in (("train", ds.train_images, 3), ("val", ds.test_images, 2)):
        for k, c in enumerate(order):
            for i in range(n):
                want = pixels[root / split / c / f"{i}.png"].transpose(2, 0, 1)
                assert np.array_equal(images[k * n + i].numpy(), want), (split, c, i)
    train = np.stack([pixels[root / "train" / c / f"{i}.png"] for c in order for i in range(3)])
    x = train.reshape(-1, 3).astype(np.float64) / 255.0
    np.testing.assert_allclose(ds.mean, x.mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(ds.std, x.std(axis=0, ddof=1), rtol=1e-12)
    assert ds.augment == "crop-flip"


def test_resize_grayscale_and_jpeg(tmp_path):
    """Every file is converted to RGB and resized to size x size; constant images stay exact."""
    root = tmp_path / "mixed"
    for split in ("train", "val"):
        (root / split / "a").mkdir(parents=True)
        (root / split / "b").mkdir(parents=True)
        Image.new("L", (20, 30), 77).save(root / split / "a" / "g.png")
        Image.new("RGB", (9, 7), (10, 200, 30)).save(root / split / "b" / "c.jpg", quality=100)
        (root / split / "b" / "notes.txt").write_text("ignored")
    ds = load_dataset(f"imagefolder:{root},size=5")
    assert ds.train_images.shape == (2, 3, 5, 5)
    assert (ds.train_images[0] == 77).all()
    # JPEG is lossy; a flat colour decodes within a couple of levels of itself
    got = ds.train_images[1].reshape(3, -1).int()
    assert (got - ds.train_images.new_tensor([[10], [200], [30]]).int()).abs().max() <= 3


def test_default_size(folder):
    root, _ = folder
    ds = load_dataset(f"imagefolder:{root}")
    assert ds.image_size == imagefolder.DEFAULT_SIZE == 32


def test_cache_hit_does_not_decode(folder, monkeypatch):
    root, _ = folder
    first = load_dataset(f"imagefolder:{root},size=12")
    caches = list(root.glob(".odenet-cache-12-*.npz"))
    assert len(caches) == 1

    def refuse(path, size):
        raise AssertionError(f"decoded {path} despite the cache")

    monkeypatch.setattr(imagefolder, "_decode", refuse)
    again = load_dataset(f"imagefolder:{root},size=12")
    assert np.array_equal(again.train_images.numpy(), first.train_images.numpy())
    assert np.array_equal(again.test_labels.numpy(), first.test_labels.numpy())
    assert again.mean == first.mean and again.std == first.std


def test_a_changed_file_invalidates_the_cache(folder, monkeypatch):
    root, _ = folder
    load_dataset(f"imagefolder:{root},size=12")
    (old,) = root.glob(".odenet-cache-12-*.npz")
    target = root / "train" / "ant" / "1.png"
    Image.new("RGB", (12, 12), (1, 2, 3)).save(target)
    os.utime(target, ns=(1, 1))  # a different mtime even on a coarse-grained file system
    decoded = []
    real = imagefolder._decode
    monkeypatch.setattr(imagefolder, "_decode", lambda p, s: decoded.append(p) or real(p, s))
    ds = load_dataset(f"imagefolder:{root},size=12")
    assert len(decoded) == 15  # everything decoded again
    assert (ds.train_images[4] == ds.train_images.new_tensor([1, 2, 3]).view(3, 1, 1)).all()
    (new,) = root.glob(".odenet-cache-12-*.npz")  # the stale cache is gone
    assert new != old


def test_sizes_have_separate_caches(folder):
    root, _ = folder
    load_dataset(f"imagefolder:{root},size=12")
    load_dataset(f"imagefolder:{root},size=6")
    assert len(list(root.glob(".odenet-cache-*.npz"))) == 2


def test_read_only_folder_still_loads(folder, monkeypatch):
    root, _ = folder

    def no_tmp(*args, **kwargs):
        raise PermissionError("read-only")

    monkeypatch.setattr(odenet.files, "_new_temp", no_tmp)  # the temp file of the cache's writer
    ds = load_dataset(f"imagefolder:{root},size=12")
    assert len(ds.train_labels) == 9 and not list(root.glob(".odenet-cache-*"))


def _bad(root: Path, problem: str) -> Path:
    if problem == "missing split":
        import shutil

        shutil.rmtree(root / "val")
    elif problem == "empty class":
        for f in (root / "val" / "ant").iterdir():
            f.unlink()
    elif problem == "class sets differ":
        (root / "train" / "wasp").mkdir()
        Image.new("RGB", (12, 12)).save(root / "train" / "wasp" / "0.png")
    elif problem == "unreadable image":
        (root / "train" / "zebra" / "1.png").write_bytes(b"not a png")
    return root


BAD = {
    "missing split": "no val/ folder",
    "empty class": "class 'ant' in",
    "class sets differ": "only in train: wasp; only in val: -",
    "unreadable image": "cannot read image",
}


@pytest.mark.parametrize("problem", sorted(BAD))
def test_bad_folders_raise_config_error(folder, problem):
    root, _ = folder
    with pytest.raises(ConfigError, match=BAD[problem]) as info:
        load_dataset(f"imagefolder:{_bad(root, problem)},size=12")
    assert "\n" not in str(info.value)
    if problem == "unreadable image":
        assert str(root / "train" / "zebra" / "1.png") in str(info.value)


@pytest.mark.parametrize(
    "name, needle",
    [
        ("imagefolder:", "use imagefolder:PATH"),
        ("imagefolder:/x,size=0", "size must be a positive integer"),
        ("imagefolder:/x,size=ab", "size must be a positive integer"),
        ("imagefolder:/definitely/not/here", "is not a directory"),
    ],
)
def test_bad_names(name, needle):
    with pytest.raises(ConfigError, match=needle):
        load_dataset(name)


def test_cli_train_on_a_folder_and_bad_folders_exit_2(folder, capsys):
    """The acceptance command; then a broken folder: one line on stderr, exit code 2."""
    root, _ = folder
    with pytest.raises(SystemExit) as exit_:
        main([
            "train", "--dataset", f"imagefolder:{root},size=16", "--depth", "8", "--width", "4",
            "--epochs", "1", "--json", "--device", "cpu",
        ])  # fmt: skip
    assert exit_.value.code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "done" and out["params"] > 0
    _bad(root, "unreadable image")
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--dataset", f"imagefolder:{root},size=16", "--depth", "8"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot read image" in err and "Traceback" not in err


# ---- issue 19, item 12 ---------------------------------------------------------------------
def test_one_class_is_refused(tmp_path):
    root = tmp_path / "imgs"
    for split in ("train", "val"):
        (root / split / "cat").mkdir(parents=True)
        Image.new("RGB", (12, 12)).save(root / split / "cat" / "0.png")
    with pytest.raises(
        ConfigError, match=r"has one class \(cat\); a classifier needs at least two"
    ):
        load_dataset(f"imagefolder:{root},size=12")
    assert not list(root.glob(".odenet-cache-*"))


def test_a_dangling_symlink_image_is_refused_by_name(folder):
    root, _ = folder
    link = root / "train" / "ant" / "9.png"
    link.symlink_to(root / "nowhere.png")
    with pytest.raises(ConfigError) as info:
        load_dataset(f"imagefolder:{root},size=12")
    assert str(info.value) == (
        f"imagefolder: cannot read image {str(link)!r} (a symbolic link to a missing file); "
        "fix or remove it"
    )
    link.unlink()
    link.symlink_to(root / "train" / "ant" / "0.png")  # a link to an image is an image
    assert len(load_dataset(f"imagefolder:{root},size=12").train_labels) == 10


def test_the_cache_is_readable_as_any_new_file(folder):
    """Mode 0666 less the umask (0644 under 022), as ``open`` gives: not 0600."""
    root, _ = folder
    old = os.umask(0o022)
    try:
        load_dataset(f"imagefolder:{root},size=12")
    finally:
        os.umask(old)
    (cache,) = root.glob(".odenet-cache-12-*.npz")
    assert cache.stat().st_mode & 0o777 == 0o644
