"""TrainConfig: everything that determines one training run, frozen and validated.

One config tree: a TrainConfig holds its network's ModelConfig whole (``config.model``); no
field is declared twice, and the model's ``in_channels`` / ``num_classes`` come from the
dataset when the model is built (``model_for``). At every boundary (command-line options,
``--set`` / ``--axis FIELD=...``, TOML keys, run ids, stored settings, report columns) a
field keeps its flat name (``depth``, ``norm``, ``weight_decay``): ``SETTINGS`` maps each
flat name to its place in the tree, with its type, default and help text, and
``TrainConfig.replace`` / ``value`` / ``settings`` read and write by those names.

The defaults are the one-cycle recipe of the acceptance command (peak lr 0.1, batch 128,
momentum 0.9 with Nesterov, weight decay 5e-4, 10 epochs): ``odenet train --dataset
fashion-mnist --depth 20 --solver euler`` with no other flags runs it.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field

from odenet.errors import ConfigError
from odenet.nets.config import ModelConfig, option
from odenet.nets.memory import check_fits

SCHEDULES = ("onecycle", "cosine", "step", "constant")
MAX_SEED = 2**63 - 1  # seeds are in [0, 2**63 - 1] (torch.Generator, SQLite INTEGER)
DEVICES = ("auto", "cpu", "cuda")
FROM_DATA = ("in_channels", "num_classes")  # ModelConfig fields a dataset decides, not a knob


@dataclass(frozen=True)
class TrainConfig:
    """One training run. ``dataclasses.asdict(config)`` (nested: ``"model": {...}``) is stored
    with every result; ``odenet.training.checkpoint.config_from_dict`` reads it back, and the
    flat dicts stored by earlier versions too."""

    dataset: str = option(
        "cifar10",
        "cifar10 | cifar100 | fashion-mnist | mnist | synthetic[:...] | imagefolder:PATH[,size=N].",
    )
    model: ModelConfig = field(default_factory=ModelConfig)  # the network (not its shape)
    epochs: int = option(10, "Passes over the (possibly limited) training set.")
    lr: float = option(
        0.1, "Peak learning rate (the schedule multiplies it by a factor in [0, 1])."
    )
    batch_size: int = option(128, "Training batch size (evaluation uses the same).")
    momentum: float = option(0.9, "SGD momentum.")
    nesterov: bool = option(True, "Nesterov momentum.")
    weight_decay: float = option(5e-4, "L2 on conv/linear weights only (not norms, biases, lm k).")
    schedule: str = option("onecycle", "onecycle | cosine | step | constant (per step).")
    warmup_epochs: float = option(0.0, "Linear lr warm-up from 0 over this many epochs.")
    label_smoothing: float = option(0.0, "Cross-entropy label smoothing, in [0, 1).")
    seed: int = option(0, "Model init seed (the data order/augmentation seed derives from it).")
    limit_train: int | None = option(None, "Use a fixed subset of N training images.")
    limit_test: int | None = option(None, "Use a fixed subset of N test images.")
    data_dir: str | None = option(None, "Where datasets live (default: odenet.data's).")
    device: str = option("auto", "auto (cuda if available) | cpu | cuda.")
    amp: bool | None = option(None, "bf16 autocast (default: on for CUDA, off for CPU).")
    channels_last: bool | None = option(None, "NHWC memory format (default: on for CUDA).")
    augment: bool = option(True, "The dataset's default augmentation of training batches.")
    # capture the training step with CUDA graphs (torch.compile reduce-overhead; a last partial
    # batch runs eagerly); None: on for CUDA
    cuda_graphs: bool | None = option(None, "Capture the step as CUDA graphs (CUDA: on).")
    pad: int = option(4, "Zero padding of the random crop (0: no crop).")
    divergence_threshold: float = option(
        1e4, "A training loss above this (or non-finite) is a divergence."
    )
    log_every: int = option(0, "Log the loss every N steps (0: about 100 points a run).")

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field, its value and what is valid.

        The model's fields are checked by ``ModelConfig.validate``; the dataset name by
        ``odenet.data.load_dataset`` and the fit on the data by ``check_dataset``.
        """
        if not isinstance(self.model, ModelConfig):
            raise ConfigError(f"model must be a ModelConfig, got {self.model!r}")
        for name in FROM_DATA:
            if getattr(self.model, name) is not None:
                raise ConfigError(
                    f"{name} comes from the dataset: leave TrainConfig.model.{name} unset, "
                    f"got {getattr(self.model, name)!r}"
                )
        for name in _CHECKS:
            check_value(name, getattr(self, name))
        if self.warmup_epochs > self.epochs:
            raise ConfigError(
                f"warmup_epochs must be in [0, epochs={self.epochs}], got {self.warmup_epochs!r}"
            )
        if self.nesterov and self.momentum == 0:
            raise ConfigError("nesterov=True needs momentum > 0: set momentum or nesterov=False")
        self.model.validate()

    def model_for(self, dataset) -> ModelConfig:
        """The network of this run for ``dataset`` (an ArrayDataset): its channels and classes."""
        return self.model.for_data(dataset.in_channels, dataset.num_classes)

    def check_dataset(self, dataset) -> None:
        """ConfigError when this run cannot succeed on ``dataset`` (an ArrayDataset): a
        --limit-train/--limit-test beyond its splits, or a model whose training (at this
        batch size and the dataset's image size) cannot fit in memory. Writes nothing."""
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
        images = self.limit_train or len(dataset.train_images)  # no batch is larger
        check_fits(self.model_for(dataset), dataset.image_size, min(self.batch_size, images))

    def log_interval(self, steps_per_epoch: int) -> int:
        """Steps between logged losses: ``log_every``, or for 0 max(1, total_steps // 100)."""
        return self.log_every or max(1, steps_per_epoch * self.epochs // 100)

    # ---- flat names (the boundary's view of the tree) ---------------------------------------
    def value(self, name: str) -> object:
        """The value of setting ``name`` (a flat name: ``depth`` is ``model.depth``)."""
        owner = self.model if _setting(name).in_model else self
        return getattr(owner, name)

    def settings(self) -> dict[str, object]:
        """Every setting by flat name, in ``SETTINGS`` order."""
        return {name: self.value(name) for name in SETTINGS}

    def replace(self, **values: object) -> TrainConfig:
        """``dataclasses.replace`` by flat names: ``config.replace(depth=8, epochs=2)`` sets
        ``model.depth`` and ``epochs``. ConfigError for a name that is no setting."""
        mine = {k: v for k, v in values.items() if not _setting(k).in_model}
        model = {k: v for k, v in values.items() if k not in mine}
        if model:
            mine["model"] = dataclasses.replace(self.model, **model)
        return dataclasses.replace(self, **mine)


@dataclass(frozen=True)
class Setting:
    """One field of the config tree under its flat name, as the command line sees it."""

    name: str  # flat name: the field's own (unique across TrainConfig and ModelConfig)
    in_model: bool  # a ModelConfig field (config.model.<name>) or TrainConfig's own
    kind: type  # its scalar type: int | float | bool | str
    optional: bool  # None allowed (an optional field's None means "default"/"auto")
    default: object
    help: str


def _settings() -> dict[str, Setting]:
    """TrainConfig's fields in order, ``model`` replaced by ModelConfig's (minus FROM_DATA)."""
    out: list[Setting] = []
    for f in dataclasses.fields(TrainConfig):
        if f.name != "model":
            out.append(_describe(f, TrainConfig, in_model=False))
            continue
        out += [
            _describe(g, ModelConfig, in_model=True)
            for g in dataclasses.fields(ModelConfig)
            if g.name not in FROM_DATA
        ]
    names = [s.name for s in out]
    if len(set(names)) < len(names):  # a flat name must say where it lives
        raise TypeError(f"TrainConfig and ModelConfig share a field name: {sorted(names)}")
    return {s.name: s for s in out}


def model_settings() -> dict[str, Setting]:
    """Every ModelConfig field as a Setting, ``FROM_DATA`` too (for a network on its own)."""
    return {
        f.name: _describe(f, ModelConfig, in_model=True) for f in dataclasses.fields(ModelConfig)
    }


def _describe(f: dataclasses.Field, cls: type, in_model: bool) -> Setting:
    hint = typing.get_type_hints(cls)[f.name]
    args = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    kinds = [a for a in args if a is not type(None)]
    kind = kinds[0] if len(kinds) == 1 else str
    return Setting(f.name, in_model, kind, len(kinds) < len(args), f.default, f.metadata["help"])


def _setting(name: str) -> Setting:
    try:
        return SETTINGS[name]
    except KeyError:
        valid = ", ".join(SETTINGS)
        raise ConfigError(f"unknown setting {name!r}; TrainConfig settings: {valid}") from None


SETTINGS = _settings()  # flat name -> Setting, for every knob of a run


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


def _non_negative_int(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        what = {"pad": " (0: no crop)", "log_every": " (0: auto)"}.get(name, "")
        raise ConfigError(f"{name} must be a non-negative integer{what}, got {value!r}")


def _seed(name: str, value: object) -> None:
    _non_negative_int(name, value)
    if value > MAX_SEED:  # torch.Generator seeds are 64-bit; the store's are int64
        raise ConfigError(f"{name} {value} is above 2**63 - 1 = {MAX_SEED}; use a smaller one")


def _choice(choices: tuple[str, ...]) -> Callable[[str, object], None]:
    def check(name: str, value: object) -> None:
        if value not in choices:
            valid = ", ".join(choices)
            raise ConfigError(f"unknown {name} {value!r}; expected one of: {valid}")

    return check


def _name(name: str, value: object) -> None:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{name} must be a name (a string), got {value!r}")


def _path(name: str, value: object) -> None:
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"{name} must be a path (a string), got {value!r}")


def _limit(name: str, value: object) -> None:
    if value is not None:
        _positive_int(name, value)


def _flag(name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{name} must be true or false, got {value!r}")


def _flag_or_auto(name: str, value: object) -> None:
    if value not in (None, True, False):
        raise ConfigError(f"{name} must be true, false or unset, got {value!r}")


def _fraction(name: str, value: object) -> None:
    _number_in(name, value, 0.0, 1.0, "in [0, 1)", upper_open=True)


def _non_negative(name: str, value: object) -> None:
    _number_in(name, value, 0.0, math.inf, ">= 0", upper_open=True)


# How each of TrainConfig's own fields is checked on its own (ModelConfig.validate checks the
# model's); what involves two fields (warm-up within the epochs, Nesterov needing momentum)
# is TrainConfig.validate's.
_CHECKS: dict[str, Callable[[str, object], None]] = {
    "dataset": _name,
    "epochs": _positive_int,
    "lr": _positive_float,
    "batch_size": _positive_int,
    "momentum": _fraction,
    "nesterov": _flag,
    "weight_decay": _non_negative,
    "schedule": _choice(SCHEDULES),
    "warmup_epochs": _non_negative,
    "label_smoothing": _fraction,
    "seed": _seed,
    "limit_train": _limit,
    "limit_test": _limit,
    "data_dir": _path,
    "device": _choice(DEVICES),
    "amp": _flag_or_auto,
    "channels_last": _flag_or_auto,
    "augment": _flag,
    "cuda_graphs": _flag_or_auto,
    "pad": _non_negative_int,
    "divergence_threshold": _positive_float,
    "log_every": _non_negative_int,
}
if set(_CHECKS) != {s.name for s in SETTINGS.values() if not s.in_model}:
    raise TypeError("every TrainConfig field needs its check in _CHECKS")


def check_value(name: str, value: object) -> None:
    """ConfigError when ``value`` cannot be TrainConfig field ``name`` (one of its own, not
    the model's), whatever the other fields are: what a study checks its list options with."""
    _CHECKS[name](name, value)
