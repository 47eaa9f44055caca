"""StudySpec: the frozen description of a study (a grid of training runs), its validation,
the parsing of comma-separated option lists and the loading of a TOML study file.

Everything is validated here, before anything is written: depths (6n + 2), scheme names
(the solver registry), lists (non-empty, well-formed, no duplicates), learning rates (> 0).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields
from pathlib import Path

from odenet.errors import ConfigError

SCHEDULES = ("onecycle", "cosine", "step", "constant")
DEVICES = ("auto", "cpu", "cuda")
EXECUTORS = ("auto", "sequential", "fused", "ray")  # see odenet.studies.fused_executor
BLOCKS = ("postact", "preact")
SHORTCUTS = ("A", "B")

# Fields of StudySpec that may change between invocations on one study directory: they do
# not change what a run computes, only how it is executed.
EXECUTION_FIELDS = ("executor", "fuse_max", "cuda_graphs")


@dataclass(frozen=True)
class StudySpec:
    """A study: every (depth, scheme, lr, seed) is one training run. Frozen; stored with the
    study as ``dataclasses.asdict(spec)`` (see ``to_dict``)."""

    orders: tuple[int, ...] = (
        1,
        2,
        4,
    )  # RK orders; each adds for_order(o) (1 euler, 2 heun, 4 rk4)
    solvers: tuple[str, ...] = ()  # extra registry names (e.g. "lm", "ralston"), after the orders
    depths: tuple[int, ...] = (20, 56, 110)  # 6n + 2 layers each
    lrs: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # peak learning rates, > 0
    seeds: tuple[int, ...] = (0,)  # model-init / data-order seeds, >= 0
    epochs: int = 10  # epochs per run
    dataset: str = "cifar10"  # a name known to odenet.data.load_dataset (the paper's: cifar10)
    limit_train: int | None = None  # fixed subset of this many training images (None: all)
    limit_test: int | None = None  # fixed subset of this many test images (None: all)
    batch_size: int = 128  # training batch size
    schedule: str = "onecycle"  # learning-rate schedule: onecycle | cosine | step | constant
    device: str = "auto"  # auto (cuda if available) | cpu | cuda
    width: int = 16  # channels of stage 1 (stages: width, 2w, 4w)
    block: str = "postact"  # residual block: postact | preact
    shortcut: str = "A"  # downsampling shortcut: A (zero-pad) | B (1x1 conv)
    data_dir: str | None = None  # where datasets live (None: odenet.data's default)
    executor: str = "auto"  # auto (fused on CUDA, sequential on CPU) | sequential | fused
    fuse_max: int = 8  # most runs trained together as one fused network
    cuda_graphs: bool | None = None  # capture training steps as CUDA graphs (None: on for CUDA)

    def __post_init__(self) -> None:
        # Lists given from Python (a notebook) become tuples: hashable, comparable, stored alike.
        for name in ("orders", "solvers", "depths", "lrs", "seeds"):
            value = getattr(self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, tuple(value))

    @property
    def schemes(self) -> tuple[str, ...]:
        """``[for_order(o) for o in orders] + solvers``, canonical names, deduplicated in order."""
        from odenet import solvers

        names = [solvers.for_order(o) for o in self.orders]
        names += [solvers.get(s).name for s in self.solvers]
        return tuple(dict.fromkeys(names))

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option, its value and what is valid."""
        from odenet import solvers

        for name in ("depths", "lrs", "seeds"):
            _non_empty(name, getattr(self, name))
        if not self.orders and not self.solvers:
            raise ConfigError("--orders and --solvers are both empty: give at least one scheme")
        for o in self.orders:
            if isinstance(o, bool) or not isinstance(o, int):
                raise ConfigError(f"--orders: {o!r} is not an integer")
            _prefixed("orders", solvers.for_order, o)  # ConfigError listing the valid orders
        for s in self.solvers:
            _prefixed("solvers", solvers.get, s)  # ConfigError listing the valid names
        for d in self.depths:
            _check_depth(d)
        for lr in self.lrs:
            ok = isinstance(lr, (int, float)) and not isinstance(lr, bool)
            if not ok or not math.isfinite(lr) or lr <= 0:
                raise ConfigError(f"--lrs: learning rate {lr!r} must be a positive finite number")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ConfigError(f"--seeds: seed {s!r} must be a non-negative integer")
        for name in ("depths", "lrs", "seeds", "orders", "solvers"):
            _no_duplicates(name, getattr(self, name))
        _positive_int("epochs", self.epochs)
        _positive_int("batch-size", self.batch_size)
        _positive_int("width", self.width)
        _positive_int("fuse-max", self.fuse_max)
        for name in ("limit_train", "limit_test"):
            if getattr(self, name) is not None:
                _positive_int(name.replace("_", "-"), getattr(self, name))
        _one_of("schedule", self.schedule, SCHEDULES)
        _one_of("device", self.device, DEVICES)
        _one_of("executor", self.executor, EXECUTORS)
        if self.cuda_graphs not in (None, True, False):
            raise ConfigError(f"cuda_graphs must be true or false, got {self.cuda_graphs!r}")
        _one_of("block", self.block, BLOCKS)
        _one_of("shortcut", self.shortcut, SHORTCUTS)
        if not isinstance(self.dataset, str) or not self.dataset.strip():
            raise ConfigError(f"--dataset must be a dataset name, got {self.dataset!r}")
        # The name itself is checked by odenet.data.load_dataset, before anything is written.

    def to_dict(self) -> dict:
        """Plain JSON-able dict (tuples become lists)."""
        return {
            k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()
        }

    @classmethod
    def from_dict(cls, data: dict) -> StudySpec:
        """Inverse of ``to_dict``; unknown keys raise ConfigError listing the valid ones."""
        return cls(**_coerce(data, source="study config"))

    def differences(self, other: StudySpec) -> list[str]:
        """Human-readable 'field: a -> b' lines for the fields that define the runs."""
        out = []
        for f in fields(self):
            if f.name in EXECUTION_FIELDS:
                continue
            a, b = getattr(self, f.name), getattr(other, f.name)
            if a != b:
                out.append(f"{f.name}: {_show(a)} -> {_show(b)}")
        return out


def spec_from_sources(config: str | Path | None = None, **options: object) -> StudySpec:
    """A validated StudySpec from an optional TOML file overlaid with explicit options.

    ``options`` are StudySpec fields; a value of None means "not given" (the TOML file's value,
    else the default). List fields may be strings ("0.1,0.2") or sequences. Raises ConfigError.
    """
    values: dict = {}
    if config is not None:
        values.update(load_toml(config))
    values.update(_coerce({k: v for k, v in options.items() if v is not None}, source="options"))
    spec = StudySpec(**values)
    spec.validate()
    return spec


def load_toml(path: str | Path) -> dict:
    """StudySpec fields from a TOML file: top-level keys or a ``[study]`` table.

    Keys are field names (dashes allowed: ``limit-train``); lists may be TOML arrays or
    comma-separated strings. Raises ConfigError for a missing, unreadable or malformed file.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10: the same parser, packaged as tomli
        import tomli as tomllib

    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file {str(path)!r}") from None
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ConfigError(f"--config: cannot read {str(path)!r} as TOML: {err}") from None
    if isinstance(data.get("study"), dict):
        data = data["study"]
    return _coerce({k.replace("-", "_"): v for k, v in data.items()}, source=f"--config {path}")


_INT_LISTS = ("orders", "depths", "seeds")
_FLOAT_LISTS = ("lrs",)
_STR_LISTS = ("solvers",)
_INTS = ("epochs", "batch_size", "width", "limit_train", "limit_test", "fuse_max")


def parse_list(text: str, kind: type, option: str) -> tuple:
    """Parse a comma-separated option value ("0.1,0.2") into a tuple of ``kind``.

    An empty list, an empty item ("0.1,,0.2") or an item that is not a ``kind`` raises a
    ConfigError naming the option.
    """
    items = [item.strip() for item in str(text).split(",")]
    if items == [""]:
        raise ConfigError(f"--{option}: empty list; give comma-separated values, e.g. 1,2")
    out = []
    for item in items:
        if not item:
            raise ConfigError(f"--{option}: empty item in {text!r}; write e.g. 0.1,0.2")
        out.append(_scalar(item, kind, option))
    return tuple(out)


def _scalar(value: object, kind: type, option: str) -> object:
    what = {int: "an integer", float: "a number", str: "a name"}[kind]
    if isinstance(value, bool):
        raise ConfigError(f"--{option}: {value!r} is not {what}")
    try:
        if kind is int and isinstance(value, float):
            if not value.is_integer():
                raise ValueError
            return int(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"--{option}: {value!r} is not {what}") from None


def _coerce(data: dict, source: str) -> dict:
    valid = [f.name for f in fields(StudySpec)]
    out: dict = {}
    for key, value in data.items():
        if key not in valid:
            raise ConfigError(f"{source}: unknown key {key!r}; valid keys: {', '.join(valid)}")
        option = key.replace("_", "-")
        kind = int if key in _INT_LISTS else float if key in _FLOAT_LISTS else str
        if key in _INT_LISTS + _FLOAT_LISTS + _STR_LISTS:
            if isinstance(value, str):
                value = parse_list(value, kind, option) if value.strip() or key != "solvers" else ()
            elif isinstance(value, (list, tuple)):
                value = tuple(_scalar(v, kind, option) for v in value)
            else:
                raise ConfigError(f"--{option}: expected a list, got {value!r}")
        elif key in _INTS and value is not None:
            value = _scalar(value, int, option)
        out[key] = value
    return out


def _check_depth(d: object) -> None:
    if isinstance(d, bool) or not isinstance(d, int) or d < 8 or (d - 2) % 6:
        raise ConfigError(
            f"--depths: depth {d!r} is not 6n+2 with n >= 1; e.g. 8, 14, 20, 32, 44, 56, 110"
        )


def _prefixed(option: str, check, value: object) -> None:
    try:
        check(value)
    except ConfigError as err:
        raise ConfigError(f"--{option}: {err}") from None


def _non_empty(name: str, values: tuple) -> None:
    if not isinstance(values, tuple) or not values:
        raise ConfigError(f"--{name}: empty list; give at least one value")


def _no_duplicates(name: str, values: tuple) -> None:
    seen = set()
    for v in values:
        if v in seen:
            raise ConfigError(f"--{name}: {v!r} appears twice; list each value once")
        seen.add(v)


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"--{name} must be a positive integer, got {value!r}")


def _one_of(name: str, value: object, valid: tuple[str, ...]) -> None:
    if value not in valid:
        raise ConfigError(f"--{name}: unknown value {value!r}; expected one of: {', '.join(valid)}")


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    return repr(value)
