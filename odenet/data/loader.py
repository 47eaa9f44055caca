"""Device-resident batches with on-device augmentation.

The whole split lives on the training device as uint8 (CIFAR-10 train: 150 MiB). A batch is
one index operation: gather the images, pad + random crop and random horizontal flip for the
whole batch at once (a single advanced-indexing gather), convert to float and normalise. All
randomness (shuffling, crop offsets, flips) is drawn from ``self.generator`` (a CPU
``torch.Generator``), so restoring its state reproduces the exact batches. The same code runs
on CPU and CUDA.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F

from odenet.data.datasets import AUGMENTS, ArrayDataset
from odenet.errors import ConfigError

LIMIT_SEED = 0  # --limit-train/--limit-test subsets: first N of this fixed permutation


def resolve_device(device: torch.device | str) -> torch.device:
    """Resolve "auto" to cuda when available (else cpu); other strings via torch.device.

    The one place a device name is checked: "cuda" without CUDA is a ConfigError.
    """
    if isinstance(device, torch.device):
        return device
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError:
        raise ConfigError(f"device {device!r}; expected 'auto', 'cpu' or 'cuda[:N]'") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} requested but CUDA is not available: use --device cpu"
        )
    return resolved


class DeviceLoader:
    """Batches ``(x, y)`` of one split, resident on ``device``.

    images: uint8 (N, C, H, W); labels: int64 (N,). Yields x float32 (B, C, H, W), normalised
    as (pixel / 255 - mean) / std per channel, and y int64 (B,), both on ``device``.
    train=True: a new shuffle each epoch, and ``augment`` applied ("crop-flip": zero-pad by
    ``pad`` pixels, take a random HxW crop, flip half the images left-right; "crop": no flip;
    "none"). train=False: fixed order, never augmented.
    """

    def __init__(
        self,
        images: torch.Tensor,
        labels: torch.Tensor,
        *,
        batch_size: int,
        mean: Sequence[float],
        std: Sequence[float],
        device: torch.device | str = "cpu",
        train: bool,
        generator: torch.Generator | None = None,
        augment: str = "none",
        pad: int = 4,
        drop_last: bool = False,
        channels_last: bool = False,
    ) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ConfigError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}"
            )
        if labels.dtype != torch.int64 or labels.shape != (len(images),):
            raise ConfigError(
                f"labels must be int64 ({len(images)},), got {labels.dtype} {tuple(labels.shape)}"
            )
        if batch_size < 1:
            raise ConfigError(f"batch_size={batch_size}; use an integer >= 1")
        if augment not in AUGMENTS:
            raise ConfigError(f"augment {augment!r}; expected one of: {', '.join(AUGMENTS)}")
        if pad < 0:
            raise ConfigError(f"pad={pad}; use an integer >= 0")
        channels = images.shape[1]
        if len(mean) != channels or len(std) != channels or min(std) <= 0:
            raise ConfigError(f"mean/std need {channels} values (std > 0), got {mean}, {std}")
        if generator is None:
            generator = torch.Generator().manual_seed(0)
        if generator.device.type != "cpu":
            raise ConfigError("the loader's generator must be a CPU torch.Generator")
        self.device = resolve_device(device)
        self.images = images.to(self.device)  # stays uint8
        self.labels = labels.to(self.device)
        self.batch_size = batch_size
        self.train = train
        self.augment = augment if train else "none"
        self.pad = pad
        self.drop_last = drop_last
        self.channels_last = channels_last
        self.generator = generator
        std_t = torch.tensor(std, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=self.device).view(1, -1, 1, 1)
        self._scale = 1.0 / (255.0 * std_t)  # x = pixel * scale - shift
        self._shift = mean_t / std_t

    @property
    def num_samples(self) -> int:
        return int(self.labels.shape[0])

    def __len__(self) -> int:
        n, b = self.num_samples, self.batch_size
        return n // b if self.drop_last else math.ceil(n / b)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.num_samples
        if self.train:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            idx = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self._batch(idx)

    def _batch(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        images = self.images[idx]
        if self.augment != "none":
            images = self.crop_flip(images)
        x = self.normalise(images)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x, self.labels[idx]

    def crop_flip(self, images: torch.Tensor) -> torch.Tensor:
        """Random crop (after zero padding by ``pad``) and, for "crop-flip", random flips.

        images: uint8 (B, C, H, W) on the device -> uint8 (B, C, H, W). Draws, in this order,
        B row offsets, B column offsets (uniform in 0..2*pad) and, for "crop-flip", B uniforms
        (flip where < 0.5), all from ``self.generator``.
        """
        draws = self.draw_crop_flip(images.shape[0]).to(self.device)
        return self.apply_crop_flip(images, draws)

    def draw_crop_flip(self, b: int) -> torch.Tensor:
        """The random part of ``crop_flip`` for b images: int64 (3, b) on the CPU holding row
        offsets, column offsets and flips (0/1), drawn from ``self.generator`` in that order.
        pad 0: no crop (offsets 0, nothing drawn for them)."""
        p, g = self.pad, self.generator
        if p:
            dy = torch.randint(0, 2 * p + 1, (b,), generator=g)
            dx = torch.randint(0, 2 * p + 1, (b,), generator=g)
        else:
            dy = dx = torch.zeros(b, dtype=torch.int64)
        if self.augment == "crop-flip":
            flip = torch.rand(b, generator=g) < 0.5
        else:
            flip = torch.zeros(b, dtype=torch.bool)
        return torch.stack([dy, dx, flip.long()])

    def apply_crop_flip(self, images: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        """The deterministic part of ``crop_flip``: draws (3, B) on the device, as drawn above."""
        b, c, h, w = images.shape
        p = self.pad
        dy, dx, flip = draws[0], draws[1], draws[2].bool()
        padded = F.pad(images, (p, p, p, p)) if p else images
        ar_h = torch.arange(h, device=self.device)
        ar_w = torch.arange(w, device=self.device)
        rows = dy[:, None] + ar_h  # (B, H) rows of the padded image
        cols = dx[:, None] + torch.where(flip[:, None], ar_w.flip(0), ar_w)  # (B, W)
        # One gather over the flattened padded planes (4x faster on CPU than 4-d indexing).
        flat = (rows[:, :, None] * (w + 2 * p) + cols[:, None, :]).view(b, 1, h * w)
        out = padded.reshape(b, c, -1).gather(2, flat.expand(b, c, h * w))
        return out.view(b, c, h, w)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, C, H, W) -> float32 (pixel / 255 - mean) / std."""
        return images.float().mul_(self._scale).sub_(self._shift)


def member_batches(loaders: Sequence[DeviceLoader]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One training epoch of K loaders over the same split, as fused-network batches.

    Yields x float32 (B, K C, H, W), member m's batch in channels [m C, (m + 1) C), and y int64
    (B, K). Member m's part is exactly what ``loaders[m]`` would yield (the same draws from its
    generator, in the same order), but a step gathers, crops, flips and normalises all K
    batches at once and copies the K members' random draws to the device in one transfer, so
    the cost per step does not grow with K in kernel launches. The loaders must share their
    images, labels, batch size, augmentation and normalisation (``copy.copy`` of one loader
    with its own generator, as ``train_fused`` makes them).
    """
    first = loaders[0]
    shared = ("images", "labels", "_scale", "_shift")  # the same tensors
    settings = ("batch_size", "augment", "pad", "drop_last", "channels_last", "device", "train")
    for other in loaders:
        if (not first.train or any(getattr(other, a) is not getattr(first, a) for a in shared)
                or any(getattr(other, a) != getattr(first, a) for a in settings)):  # fmt: skip
            raise ConfigError("member_batches needs copies of one training loader")
    k, b, n = len(loaders), first.batch_size, first.num_samples
    orders = torch.stack([torch.randperm(n, generator=g.generator) for g in loaders])
    orders = orders.to(first.device)  # (K, N)
    for i in range(len(first)):
        idx = orders[:, i * b : (i + 1) * b].reshape(-1)  # member-major, (K B')
        images = first.images[idx]
        if first.augment != "none":
            size = idx.numel() // k
            draws = torch.cat([loader.draw_crop_flip(size) for loader in loaders], dim=1)
            images = first.apply_crop_flip(images, draws.to(first.device))
        x = first.normalise(images)
        kb, c, h, w = x.shape
        x = x.view(k, kb // k, c, h, w).transpose(0, 1).reshape(kb // k, k * c, h, w)
        if first.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        yield x, first.labels[idx].view(k, -1).t()


def fixed_subset(n: int, limit: int | None, what: str) -> torch.Tensor | None:
    """Indices of the first ``limit`` items of a fixed (seed 0) permutation of range(n), sorted;
    None when limit is None. ConfigError when limit is not in 1..n."""
    if limit is None:
        return None
    if not 1 <= limit <= n:
        raise ConfigError(f"{what}={limit}; the split has {n} images: use 1..{n} or omit it")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(LIMIT_SEED))
    return perm[:limit].sort().values


def make_loaders(
    ds: ArrayDataset,
    *,
    batch_size: int,
    device: torch.device | str,
    seed: int,
    limit_train: int | None = None,
    limit_test: int | None = None,
    augment: bool = True,
    pad: int = 4,
    channels_last: bool = False,
) -> tuple[DeviceLoader, DeviceLoader]:
    """(train, test) loaders for ``ds``. The train loader shuffles and applies ``ds.augment``
    (or nothing when augment=False; its crop pads by ``pad``, 0: no crop) with a generator
    seeded by ``seed``; the test loader keeps a fixed order. limit_*: fixed, seed-independent
    subsets (``fixed_subset``)."""
    loaders = []
    for split, limit, train in (("train", limit_train, True), ("test", limit_test, False)):
        images, labels = getattr(ds, f"{split}_images"), getattr(ds, f"{split}_labels")
        subset = fixed_subset(len(labels), limit, f"limit_{split}")
        if subset is not None:
            images, labels = images[subset], labels[subset]
        loaders.append(
            DeviceLoader(
                images,
                labels,
                batch_size=batch_size,
                mean=ds.mean,
                std=ds.std,
                device=device,
                train=train,
                generator=torch.Generator().manual_seed(seed),
                augment=ds.augment if (train and augment) else "none",
                pad=pad,
                drop_last=False,
                channels_last=channels_last,
            )
        )
    return loaders[0], loaders[1]
