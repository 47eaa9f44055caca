"""A deterministic, learnable image-classification task for tests and smoke runs.

Class c is an oriented grating: one of ceil(K/2) orientations times one of two spatial
frequencies. Each image shows its class's grating with a random phase, small orientation and
frequency jitter, under a Gaussian window at a random place, in a random colour, on a random
background, plus pixel noise. The random phase makes the mean image of every class the same,
so a linear classifier on pixels does poorly, while a small convolutional net (oriented
filters, then pooling) learns it within a few epochs.

Dataset names (``load_dataset``): ``"synthetic"`` (the defaults below), ``"synthetic:N"`` (N
training images) or ``"synthetic:key=value,..."`` with keys train, test, classes, size,
channels, noise, seed, e.g. ``"synthetic:train=2000,test=500,size=16"``. The images are a pure
function of the spec; train and test come from independent streams, so the test set does not
change with the training-set size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import torch

from odenet.data.memory import check_images_fit
from odenet.errors import ConfigError

PREFIX = "synthetic"
# float32 maps held per image position while a split is generated: 6, and 2 per channel
MAKE_BYTES, MAKE_BYTES_PER_CHANNEL = 24, 8


@dataclass(frozen=True)
class SyntheticSpec:
    train: int = 5000  # training images
    test: int = 1000  # test images
    classes: int = 10  # number of classes, 2..20 (orientations get too close beyond)
    size: int = 32  # image height = width, pixels (>= 8)
    channels: int = 3  # colour channels (1 or 3 are usual; any >= 1 works)
    noise: float = 0.15  # std of the Gaussian pixel noise, in [0, 1] pixel units
    seed: int = 0  # the whole dataset is a function of the spec, seed included

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field."""
        checks = [
            ("train", self.train >= 1, "an integer >= 1"),
            ("test", self.test >= 1, "an integer >= 1"),
            ("classes", 2 <= self.classes <= 20, "an integer in 2..20"),
            ("size", self.size >= 8, "an integer >= 8"),
            ("channels", self.channels >= 1, "an integer >= 1"),
            ("noise", 0.0 <= self.noise <= 1.0, "a number in [0, 1]"),
            ("seed", self.seed >= 0, "an integer >= 0"),
        ]
        for key, ok, want in checks:
            if not ok:
                raise ConfigError(f"synthetic dataset: {key}={getattr(self, key)!r}; use {want}")
        per_image = self.size**2 * (MAKE_BYTES + MAKE_BYTES_PER_CHANNEL * self.channels)
        check_images_fit(
            "synthetic",
            self.train,
            self.test,
            self.channels,
            self.size,
            "use smaller train=, test= or size= values",
            work=max(self.train, self.test) * per_image,
        )


def parse_spec(name: str) -> SyntheticSpec:
    """``"synthetic"`` | ``"synthetic:N"`` | ``"synthetic:k=v,..."`` -> validated SyntheticSpec."""
    head, _, rest = name.strip().partition(":")
    if head.lower() != PREFIX:
        raise ConfigError(f"not a synthetic dataset name: {name!r}")
    values: dict[str, int | float] = {}
    types = {f.name: f.type for f in fields(SyntheticSpec)}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip() if eq else "train"
        value = value if eq else item
        if key not in types:
            raise ConfigError(
                f"synthetic dataset: unknown option {key!r} in {name!r}; "
                f"expected synthetic:N or synthetic:key=value,... with keys {', '.join(types)}"
            )
        try:
            values[key] = float(value) if types[key] == "float" else int(value)
        except ValueError:
            raise ConfigError(f"synthetic dataset: {key}={value!r} is not a number") from None
    spec = SyntheticSpec(**values)
    spec.validate()
    return spec


def class_patterns(classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(orientation in radians, frequency in cycles per image) of each class, float64 (K,)."""
    n_orient = math.ceil(classes / 2)
    c = torch.arange(classes, dtype=torch.float64)
    theta = math.pi * (c % n_orient) / n_orient
    cycles = torch.where(c < n_orient, 2.5, 5.0).to(torch.float64)
    return theta, cycles


def _images(spec: SyntheticSpec, n: int, stream: int) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(spec.seed * 1_000_003 + stream)
    s, k = spec.size, spec.classes

    def u(*shape, lo=0.0, hi=1.0):
        return lo + (hi - lo) * torch.rand(*shape, generator=g)

    labels = torch.randint(0, k, (n,), generator=g)
    theta, cycles = class_patterns(k)
    spread = math.pi / math.ceil(k / 2)  # angle between neighbouring orientations
    th = (theta[labels].float() + u(n, lo=-0.15, hi=0.15) * spread).view(n, 1, 1)
    freq = (cycles[labels].float() * u(n, lo=0.9, hi=1.1) / s).view(n, 1, 1)
    phase = u(n, hi=2 * math.pi).view(n, 1, 1)
    cx, cy = (u(n, lo=0.3, hi=0.7) * s).view(n, 1, 1), (u(n, lo=0.3, hi=0.7) * s).view(n, 1, 1)
    width = (u(n, lo=0.22, hi=0.4) * s).view(n, 1, 1)
    grid = torch.arange(s, dtype=torch.float32)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    wave = torch.cos(2 * math.pi * freq * (xx * torch.cos(th) + yy * torch.sin(th)) + phase)
    window = torch.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * width**2))
    pattern = (u(n, lo=0.25, hi=0.45).view(n, 1, 1) * window * wave).unsqueeze(1)  # (n,1,s,s)
    colour = u(n, spec.channels, 1, 1, lo=0.4, hi=1.0)
    background = u(n, 1, 1, 1, lo=0.3, hi=0.7) + u(n, spec.channels, 1, 1, lo=-0.1, hi=0.1)
    # Luminance noise, shared by the channels: a third of the draws (randn dominates the cost).
    noise = spec.noise * torch.randn(n, 1, s, s, generator=g)
    x = (background + colour * pattern + noise).clamp_(0.0, 1.0)
    return (x * 255.0).round_().to(torch.uint8), labels.to(torch.int64)


def make_synthetic(spec: SyntheticSpec):
    """(train_images, train_labels, test_images, test_labels): uint8 (N, C, S, S), int64 (N,)."""
    spec.validate()
    train_x, train_y = _images(spec, spec.train, stream=0)
    test_x, test_y = _images(spec, spec.test, stream=1)
    return train_x, train_y, test_x, test_y
