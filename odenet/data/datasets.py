"""Datasets as in-memory uint8 arrays: cifar10, cifar100, fashion-mnist, mnist, synthetic and
your own images (``imagefolder:PATH[,size=N]``, see odenet.data.imagefolder).

``load_dataset(name)`` locates (or downloads and verifies, see ``odenet.data.fetch``) the
official files, parses them (``odenet.data.formats``) and returns an ``ArrayDataset``.

Normalisation: the real datasets carry the usual published per-channel mean/std of their full
training sets (fixed constants, so a --limit-train subset does not change the input scaling;
the Fashion-MNIST values were checked against the files: 0.2860 / 0.3530). ``synthetic`` and
``imagefolder`` compute their mean/std on their own training images.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from odenet.data import imagefolder, synthetic
from odenet.data.fetch import Resource, ensure_file
from odenet.data.formats import read_cifar_archive, read_idx_images, read_idx_labels
from odenet.errors import ConfigError, DataError

AUGMENTS = ("crop-flip", "crop", "none")


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """A whole dataset in memory. Images uint8 (N, C, H, W) on the CPU, labels int64 (N,)."""

    name: str  # the name as passed to load_dataset, stripped (synthetic: the full spec)
    train_images: torch.Tensor = field(repr=False)  # uint8 (N, C, H, W), CPU
    train_labels: torch.Tensor = field(repr=False)  # int64 (N,), values in [0, num_classes)
    test_images: torch.Tensor = field(repr=False)  # uint8 (M, C, H, W), CPU
    test_labels: torch.Tensor = field(repr=False)  # int64 (M,)
    num_classes: int  # K
    mean: tuple[float, ...]  # per channel, in [0, 1] pixel units
    std: tuple[float, ...]  # per channel, in [0, 1] pixel units
    augment: str  # default training augmentation: "crop-flip" | "crop" | "none"

    def __post_init__(self) -> None:
        for split in ("train", "test"):
            x, y = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if x.dtype != torch.uint8 or x.ndim != 4:
                raise DataError(f"{self.name}: {split} images must be uint8 (N, C, H, W)")
            if y.dtype != torch.int64 or y.shape != (len(x),):
                raise DataError(f"{self.name}: {split} labels must be int64 ({len(x)},)")
            if len(y) and (int(y.min()) < 0 or int(y.max()) >= self.num_classes):
                raise DataError(f"{self.name}: {split} labels outside [0, {self.num_classes})")
        if self.train_images.shape[1:] != self.test_images.shape[1:]:
            raise DataError(f"{self.name}: train and test images differ in shape")
        if not len(self.mean) == len(self.std) == self.in_channels:
            raise DataError(f"{self.name}: mean/std need one value per channel")
        if self.augment not in AUGMENTS:
            raise ConfigError(f"augment {self.augment!r}; expected one of: {', '.join(AUGMENTS)}")

    @property
    def in_channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def image_size(self) -> int:
        """Height of the (square) images."""
        return int(self.train_images.shape[2])


@dataclass(frozen=True)
class _Source:
    """How to build one real dataset from its published files."""

    resources: tuple[Resource, ...]  # files, in the order ``parse`` takes them
    parse: Callable[..., tuple]  # paths -> (train_x, train_y, test_x, test_y) numpy arrays
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    augment: str


def _parse_idx(train_x, train_y, test_x, test_y):
    return (
        read_idx_images(train_x),
        read_idx_labels(train_y),
        read_idx_images(test_x),
        read_idx_labels(test_y),
    )


def _idx_files(sums: dict[str, tuple[str, str]]) -> tuple[Resource, ...]:
    order = (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    )
    return tuple(Resource(f"{stem}.gz", *sums[stem]) for stem in order)


# (md5 of the .gz, md5 of the decompressed idx). Fashion-MNIST: the .gz sums are the ones
# torchvision and the upstream md5sum.txt publish; the content sums are torchvision's former
# `raw_data` list and match the Debian files in /usr/share/datasets/fashion-mnist/.
FASHION_MNIST_SUMS = {
    "train-images-idx3-ubyte": (
        "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    ),
    "train-labels-idx1-ubyte": (
        "25c81989df183df01b3e8a0aad5dffbe",
        "9018921c3c673c538a1fc5bad174d6f9",
    ),
    "t10k-images-idx3-ubyte": (
        "bef4ecab320f06d8554ea6380940ec79",
        "8181f5470baa50b63fa0f6fddb340f0a",
    ),
    "t10k-labels-idx1-ubyte": (
        "bb300cfdad3c16e7a12a480ee83cd310",
        "15d484375f8d13e6eb1aabb0c3f46965",
    ),
}
# MNIST: torchvision's .gz sums (ossci-datasets mirror of LeCun's files); content sums as
# listed for the uncompressed files (47,040,016 bytes for train images) by public scripts.
MNIST_SUMS = {
    "train-images-idx3-ubyte": (
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "6bbc9ace898e44ae57da46a324031adb",
    ),
    "train-labels-idx1-ubyte": (
        "d53e105ee54ea40749a09fcbcd1e9432",
        "a25bea736e30d166cdddb491f175f624",
    ),
    "t10k-images-idx3-ubyte": (
        "9fb629c4189551a2d022fa330f9573f3",
        "2646ac647ad5339dbf082846283269ea",
    ),
    "t10k-labels-idx1-ubyte": (
        "ec29112dd5afa0611ce80d1b7f02629c",
        "27ae3e4e09519cfbb04c329615203637",
    ),
}

SOURCES: dict[str, _Source] = {
    "cifar10": _Source(
        (Resource("cifar-10-python.tar.gz", "c58f30108f718f92721af3b95e74349a"),),
        lambda path: read_cifar_archive(path, "cifar10"),
        10,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        "crop-flip",
    ),
    "cifar100": _Source(
        (Resource("cifar-100-python.tar.gz", "eb9058c3a382ffc7106e4002c42a8d85"),),
        lambda path: read_cifar_archive(path, "cifar100"),
        100,
        (0.5071, 0.4865, 0.4409),
        (0.2673, 0.2564, 0.2762),
        "crop-flip",
    ),
    "fashion-mnist": _Source(
        _idx_files(FASHION_MNIST_SUMS), _parse_idx, 10, (0.2860,), (0.3530,), "crop-flip"
    ),
    # No flips for digits: a mirrored 2 or 7 is not a digit.
    "mnist": _Source(_idx_files(MNIST_SUMS), _parse_idx, 10, (0.1307,), (0.3081,), "crop"),
}
ALIASES = {
    "cifar-10": "cifar10",
    "cifar-100": "cifar100",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
}


def available_datasets() -> list[str]:
    """The dataset names ``load_dataset`` accepts (synthetic also takes options, see there)."""
    return sorted([*SOURCES, synthetic.PREFIX])


def load_dataset(
    name: str,
    data_dir: str | Path | None = None,
    *,
    download: bool = True,
    progress: bool = True,
) -> ArrayDataset:
    """Load a dataset by name (case-insensitive): locate or download, verify, parse.

    ConfigError for an unknown name or bad synthetic options; DataError when the files are
    missing (and cannot be fetched), corrupt or malformed. ``data_dir`` is searched first.
    """
    text = str(name).strip()
    prefix = text.lower().split(":", 1)[0]
    if prefix == synthetic.PREFIX:
        return _synthetic(text)
    if prefix == imagefolder.PREFIX:
        return _imagefolder(text)
    key = ALIASES.get(text.lower(), text.lower())
    if key not in SOURCES:
        raise ConfigError(
            f"unknown dataset {name!r}; expected one of: {', '.join(available_datasets())}, "
            "or imagefolder:PATH[,size=N]"
        )
    source = SOURCES[key]
    paths = [
        ensure_file(key, r, data_dir, download=download, progress=progress)
        for r in source.resources
    ]
    train_x, train_y, test_x, test_y = source.parse(*paths)
    return ArrayDataset(
        name=text,
        train_images=_tensor(train_x),
        train_labels=_tensor(train_y),
        test_images=_tensor(test_x),
        test_labels=_tensor(test_y),
        num_classes=source.num_classes,
        mean=source.mean,
        std=source.std,
        augment=source.augment,
    )


def _tensor(array: np.ndarray) -> torch.Tensor:
    array = np.ascontiguousarray(array)
    # Parsed idx arrays are read-only views of the decompressed bytes; torch wants its own.
    return torch.from_numpy(array if array.flags.writeable else array.copy())


def _synthetic(name: str) -> ArrayDataset:
    spec = synthetic.parse_spec(name)
    train_x, train_y, test_x, test_y = synthetic.make_synthetic(spec)
    pixels = train_x.transpose(0, 1).reshape(spec.channels, -1).double() / 255.0
    return ArrayDataset(
        name=name,
        train_images=train_x,
        train_labels=train_y,
        test_images=test_x,
        test_labels=test_y,
        num_classes=spec.classes,
        mean=tuple(pixels.mean(dim=1).tolist()),
        std=tuple(pixels.std(dim=1).tolist()),
        augment="none",
    )


def _imagefolder(name: str) -> ArrayDataset:
    root, size = imagefolder.parse_name(name)
    classes, a = imagefolder.load_arrays(root, size)
    train_x = torch.from_numpy(a["train_x"])
    pixels = train_x.transpose(0, 1).reshape(3, -1).double() / 255.0
    return ArrayDataset(
        name=name,
        train_images=train_x,
        train_labels=torch.from_numpy(a["train_y"]),
        test_images=torch.from_numpy(a["val_x"]),
        test_labels=torch.from_numpy(a["val_y"]),
        num_classes=len(classes),
        mean=tuple(pixels.mean(dim=1).tolist()),
        # a constant channel (std 0) is left unscaled rather than divided by zero
        std=tuple(s if s > 0 else 1.0 for s in pixels.std(dim=1).tolist()),
        augment="crop-flip",
    )
