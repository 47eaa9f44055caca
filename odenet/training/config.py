"""TrainConfig: everything that determines one training run, frozen and validated.

The defaults are the one-cycle recipe of the acceptance command (peak lr 0.1, batch 128,
momentum 0.9 with Nesterov, weight decay 5e-4, 10 epochs): ``odenet train --dataset
fashion-mnist --depth 20 --solver euler`` with no other flags runs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from odenet.errors import ConfigError

if TYPE_CHECKING:  # the nets layer is imported lazily (training sits above nets)
    from odenet.nets import ModelConfig

SCHEDULES = ("onecycle", "cosine", "step", "constant")
MAX_SEED = 2**63 - 1  # seeds are in [0, 2**63 - 1] (torch.Generator, SQLite INTEGER)
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``dataclasses.asdict(config)`` is stored with every result."""

    dataset: str = "cifar10"  # a name known to odenet.data.load_dataset
    depth: int = 20  # 6n + 2 layers
    solver: str = "euler"  # a registry name (odenet solvers); "ode-*" = continuous mode
    block: str = "postact"  # "postact" | "preact"
    shortcut: str = "A"  # "A" (subsample + zero-pad) | "B" (1x1 conv + norm)
    width: int = 16  # channels of stage 1 (stages: width, 2w, 4w)
    epochs: int = 10  # full passes over the (possibly limited) training set
    lr: float = 0.1  # peak learning rate (the schedule multiplies it by a factor in [0, 1])
    batch_size: int = 128  # training batch size (evaluation uses the same)
    momentum: float = 0.9  # SGD momentum
    nesterov: bool = True  # Nesterov momentum
    weight_decay: float = 5e-4  # L2 on conv/linear weights only (not norm, bias, lm k)
    schedule: str = "onecycle"  # "onecycle" | "cosine" | "step" | "constant" (per step)
    warmup_epochs: float = 0.0  # linear warm-up from 0 over this many epochs (0: none)
    label_smoothing: float = 0.0  # cross-entropy label smoothing in [0, 1)
    seed: int = 0  # model init seed; the data order/augmentation seed is derived from it
    limit_train: int | None = None  # use a fixed subset of this many training images
    limit_test: int | None = None  # use a fixed subset of this many test images
    data_dir: str | None = None  # where datasets live (None: odenet.data's default)
    device: str = "auto"  # "auto" (cuda if available) | "cpu" | "cuda"
    amp: bool | None = None  # bf16 autocast; None: on for CUDA, off for CPU
    channels_last: bool | None = None  # NHWC memory format; None: on for CUDA, off for CPU
    augment: bool = True  # the dataset's default augmentation for training batches
    cuda_graphs: bool | None = None  # capture the training step with CUDA graphs
    # (torch.compile reduce-overhead; a last partial batch runs eagerly); None: on for CUDA
    pad: int = 4  # zero padding of the random crop (0: no crop)
    divergence_threshold: float = 1e4  # a training loss above this (or non-finite) = diverged
    log_every: int = 0  # log the loss every this many steps; 0: auto = max(1,
    # total_steps // 100), i.e. >= ~100 points per run and every step for short runs
    arch: str = "cifar"  # network family: cifar | single | resnet18 | ... | resnet152
    downsample: str = "stem"  # single arch: the stride-2 step in the "stem" or first "field"

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field, its value and what is valid.

        The dataset name is checked by ``odenet.data.load_dataset`` and the model fields
        (block, shortcut, depth, solver) by ``ModelConfig.validate``; both run in ``train``.
        """
        _positive_int("epochs", self.epochs)
        _positive_int("batch_size", self.batch_size)
        _positive_int("depth", self.depth)
        _positive_int("width", self.width)
        if not isinstance(self.pad, int) or isinstance(self.pad, bool) or self.pad < 0:
            raise ConfigError(f"pad must be a non-negative integer (0: no crop), got {self.pad!r}")
        _positive_float("lr", self.lr)
        _positive_float("divergence_threshold", self.divergence_threshold)
        _number_in("momentum", self.momentum, 0.0, 1.0, "in [0, 1)", upper_open=True)
        _number_in("weight_decay", self.weight_decay, 0.0, math.inf, ">= 0", upper_open=True)
        _number_in(
            "warmup_epochs", self.warmup_epochs, 0.0, self.epochs, f"in [0, epochs={self.epochs}]"
        )
        _number_in("label_smoothing", self.label_smoothing, 0.0, 1.0, "in [0, 1)", upper_open=True)
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov=True needs momentum > 0: set momentum or nesterov=False")
        if self.schedule not in SCHEDULES:
            raise ConfigError(
                f"unknown schedule {self.schedule!r}; expected one of: {', '.join(SCHEDULES)}"
            )
        if self.device not in DEVICES:
            valid = ", ".join(DEVICES)
            raise ConfigError(f"unknown device {self.device!r}; expected one of: {valid}")
        if not isinstance(self.log_every, int) or isinstance(self.log_every, bool):
            raise ConfigError(f"log_every must be an integer >= 0, got {self.log_every!r}")
        if self.log_every < 0:
            raise ConfigError(f"log_every must be an integer >= 0 (0: auto), got {self.log_every}")
        for name in ("limit_train", "limit_test"):
            value = getattr(self, name)
            if value is not None:
                _positive_int(name, value)
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if self.seed > MAX_SEED:  # torch.Generator seeds are 64-bit; the store's are int64
            raise ConfigError(
                f"seed {self.seed} is above 2**63 - 1 = {MAX_SEED}; use a smaller one"
            )
        for name in ("dataset", "solver", "block", "shortcut", "schedule", "device"):
            if not isinstance(getattr(self, name), str) or not getattr(self, name):
                raise ConfigError(f"{name} must be a name (a string), got {getattr(self, name)!r}")
        if self.data_dir is not None and not isinstance(self.data_dir, str):
            raise ConfigError(f"data_dir must be a path (a string), got {self.data_dir!r}")
        for name in ("nesterov", "augment"):
            if not isinstance(getattr(self, name), bool):
                raise ConfigError(f"{name} must be true or false, got {getattr(self, name)!r}")
        for name in ("amp", "channels_last", "cuda_graphs"):
            if getattr(self, name) not in (None, True, False):
                raise ConfigError(
                    f"{name} must be true, false or unset, got {getattr(self, name)!r}"
                )

        from odenet.nets.layout import check_arch  # names and the family's depth rule

        check_arch(self.arch, self.depth, self.downsample)

    def check_dataset(self, dataset) -> None:
        """ConfigError when this run cannot succeed on ``dataset`` (an ArrayDataset): a
        --limit-train/--limit-test beyond its splits, or a model whose training (at this
        batch size and the dataset's image size) cannot fit in memory. Writes nothing."""
        from odenet.nets.memory import check_fits

        for name, split in (
            ("limit_train", dataset.train_images),
            ("limit_test", dataset.test_images),
        ):
            limit = getattr(self, name)
            if limit is not None and limit > len(split):
                flag = "--" + name.replace("_", "-")
                raise ConfigError(
                    f"{flag} {limit} is more than the {len(split)} images of {dataset.name}'s "
                    f"{name[6:]} split; use {flag} {len(split)} or less, or omit it"
                )
        model = self.model_config(dataset.in_channels, dataset.num_classes)
        images = self.limit_train or len(dataset.train_images)  # no batch is larger
        check_fits(model, dataset.image_size, min(self.batch_size, images))

    def log_interval(self, steps_per_epoch: int) -> int:
        """Steps between logged losses: ``log_every``, or for 0 max(1, total_steps // 100)."""
        return self.log_every or max(1, steps_per_epoch * self.epochs // 100)

    def model_config(self, in_channels: int, num_classes: int) -> ModelConfig:
        """The nets-layer config of this run's model for a dataset of this shape."""
        from odenet.nets import ModelConfig

        return ModelConfig(
            depth=self.depth,
            solver=self.solver,
            block=self.block,
            shortcut=self.shortcut,
            in_channels=in_channels,
            num_classes=num_classes,
            width=self.width,
            arch=self.arch,
            downsample=self.downsample,
        )


def _positive_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ConfigError(f"{name} must be a positive integer, got {value!r}")


def _positive_float(name: str, value: object) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok or not math.isfinite(value) or value <= 0:
        raise ConfigError(f"{name} must be a positive finite number, got {value!r}")


def _number_in(
    name: str, value: object, lo: float, hi: float, text: str, upper_open: bool = False
) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and not math.isnan(value)
    if ok:
        ok = lo <= value and (value < hi if upper_open else value <= hi)
    if not ok:
        raise ConfigError(f"{name} must be {text}, got {value!r}")
