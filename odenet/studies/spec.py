"""StudySpec: a study = a base TrainConfig + sweep axes + execution settings.

Every run of a study is the base TrainConfig with its grid point's values: depth, scheme, lr
and seed (the familiar axes, always present) and any other TrainConfig field that is swept
(``sweep``, e.g. weight_decay over (0.0, 5e-4)). Nothing here mirrors TrainConfig: the
settable and sweepable fields are ``dataclasses.fields(TrainConfig)``, so a field added to
TrainConfig is a study option at once. Values are checked by ``TrainConfig.validate`` for
every run config (``validate`` builds the grid) before anything is written.

Sources (``spec_from_sources``): a TOML file (top-level keys or a ``[study]`` table), then
explicit options. In TOML a TrainConfig field given a list is an axis, a scalar sets it for
the whole study; from the command line ``--set FIELD=VALUE`` sets one and ``--axis
FIELD=V1,V2`` sweeps one. Reading the sources is ``spec_sources.py``, typed values
``spec_values.py``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, fields

from odenet.errors import ConfigError
from odenet.studies.executors.base import DEFAULT_FUSE_MAX, check_executor, check_fuse_max
from odenet.studies.spec_values import FAMILIAR, TRAIN_FIELDS, parse_list
from odenet.training.config import TrainConfig

__all__ = ["LISTS", "StudySpec", "parse_list"]

SPEC_FORMAT = 2  # 1 (implicit): the flat spec of odenet <= this change; see from_dict
# TrainConfig fields that only say how a run executes: a study may change them between
# invocations (as the checkpoint's resume check allows), and they cannot be swept.
EXECUTION_TRAIN_FIELDS = ("cuda_graphs",)
# TrainConfig fields that hold one value per study (one dataset is loaded, one executor
# is made per device): settable, not sweepable.
ONE_PER_STUDY = ("dataset", "data_dir", "device", "cuda_graphs")
LISTS = {"orders": int, "solvers": str, "depths": int, "lrs": float, "seeds": int}


@dataclass(frozen=True, init=False)
class StudySpec:
    """A study: every (depth, scheme, lr, swept values..., seed) is one training run.

    Frozen; stored with the study as ``to_dict()``. Keyword arguments that are TrainConfig
    fields (``epochs=2``, ``dataset="synthetic"``) set them on ``base``; ``sweep`` may be
    given as a dict ``{"weight_decay": (0.0, 5e-4)}``; a one-value sweep is a base setting.
    """

    base: TrainConfig = TrainConfig()  # every run's settings (depth/solver/lr/seed: the axes)
    orders: tuple[int, ...] = (1, 2, 4)  # RK orders; each adds for_order(o) (euler, heun, rk4)
    solvers: tuple[str, ...] = ()  # extra registry names (e.g. "lm", "ralston"), after the orders
    depths: tuple[int, ...] = (20, 56, 110)  # 6n + 2 layers each
    lrs: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # peak learning rates, > 0
    seeds: tuple[int, ...] = (0,)  # model-init / data-order seeds, >= 0
    sweep: tuple[tuple[str, tuple], ...] = ()  # other swept TrainConfig fields: (name, values)
    # in TrainConfig field order, each with >= 2 values
    executor: str = "auto"  # auto (fused on CUDA, sequential on CPU) | sequential | fused
    fuse_max: int = DEFAULT_FUSE_MAX  # most runs trained together as one fused network

    def __init__(self, **options: object) -> None:
        own = {f.name: f.default for f in fields(StudySpec)}
        settings = {}
        for key, value in options.items():
            if key in own:
                own[key] = value
            elif key in TRAIN_FIELDS:
                settings[key] = value
            else:
                raise TypeError(f"StudySpec() got an unexpected keyword argument {key!r}")
        for name in LISTS:  # lists given from Python (a notebook) become tuples
            if isinstance(own[name], list):
                own[name] = tuple(own[name])
        sweep = own["sweep"]
        pairs = sweep.items() if isinstance(sweep, dict) else sweep
        swept = {}
        for name, values in pairs:
            values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            if len(values) == 1:  # one value: the same for every run
                settings[name] = values[0]
            else:
                swept[name] = values
        order = list(TRAIN_FIELDS)
        own["sweep"] = tuple(sorted(swept.items(), key=lambda kv: _order(order, kv[0])))
        if settings:
            own["base"] = dataclasses.replace(own["base"], **settings)
        for key, value in own.items():
            object.__setattr__(self, key, value)

    @property
    def schemes(self) -> tuple[str, ...]:
        """``[for_order(o) for o in orders] + solvers``, canonical names, deduplicated in order."""
        from odenet import solvers

        names = [solvers.for_order(o) for o in self.orders]
        names += [solvers.get(s).name for s in self.solvers]
        return tuple(dict.fromkeys(names))

    @property
    def axes(self) -> tuple[tuple[str, tuple], ...]:
        """Every axis as (TrainConfig field, values), in grid nesting order (depth outermost)."""
        return (
            ("depth", self.depths),
            ("solver", self.schemes),
            ("lr", self.lrs),
            *self.sweep,
            ("seed", self.seeds),
        )

    @property
    def swept(self) -> tuple[str, ...]:
        """The swept fields besides depth, scheme, lr and seed (e.g. ("weight_decay",))."""
        return tuple(name for name, _ in self.sweep)

    def validate(self) -> None:
        """Raise ConfigError naming the first bad option, its value and what is valid; then
        build the grid, which validates every run's TrainConfig."""
        from odenet import solvers
        from odenet.studies.grid import build_grid

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
        swept = dict(self.sweep)
        arches = swept.get("arch", (self.base.arch,))
        for d in self.depths:
            _check_depth(d, arches)
        for lr in self.lrs:
            ok = isinstance(lr, (int, float)) and not isinstance(lr, bool)
            if not ok or not math.isfinite(lr) or lr <= 0:
                raise ConfigError(f"--lrs: learning rate {lr!r} must be a positive finite number")
        for s in self.seeds:
            if isinstance(s, bool) or not isinstance(s, int) or s < 0:
                raise ConfigError(f"--seeds: seed {s!r} must be a non-negative integer")
        for name in ("depths", "lrs", "seeds", "orders", "solvers"):
            _no_duplicates(name, getattr(self, name))
        for name, values in self.sweep:
            _check_sweepable(name)
            _non_empty(f"axis {name}", values)
            _no_duplicates(f"axis {name}", values)
        default = TrainConfig()
        for name, plural in FAMILIAR.items():
            if getattr(self.base, name) != getattr(default, name):
                raise ConfigError(f"{name} is an axis of every study: set it with {plural}")
        check_executor(self.executor)
        check_fuse_max(self.fuse_max)
        if not isinstance(self.base.dataset, str) or not self.base.dataset.strip():
            raise ConfigError(f"--dataset must be a dataset name, got {self.base.dataset!r}")
        build_grid(self)  # every run's TrainConfig.validate(); the dataset name: load_dataset

    def to_dict(self) -> dict:
        """Plain JSON-able dict: ``{"format": 2, "base": asdict(base), ..., "sweep": {}}``."""
        out: dict = {"format": SPEC_FORMAT, "base": dataclasses.asdict(self.base)}
        for name in LISTS:
            out[name] = list(getattr(self, name))
        out["sweep"] = {name: list(values) for name, values in self.sweep}
        out["executor"], out["fuse_max"] = self.executor, self.fuse_max
        return out

    @classmethod
    def from_dict(cls, data: dict) -> StudySpec:
        """Inverse of ``to_dict``. Also reads the flat spec stored by earlier versions (no
        "base": every TrainConfig field among its keys, the rest TrainConfig's defaults), which
        builds the same grid with the same run ids. Unknown keys raise ConfigError."""
        from odenet.training.checkpoint import config_from_dict

        data = dict(data)
        if "base" not in data:  # format 1: orders..seeds, executor, fuse_max + train fields
            base = {k: data.pop(k) for k in list(data) if k in TRAIN_FIELDS}
            data["base"] = base
        data.pop("format", None)
        valid = [f.name for f in fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"stored study config has unknown keys {unknown}; valid: {valid}")
        data["base"] = config_from_dict(data["base"])
        for name in LISTS:
            if name in data:
                data[name] = tuple(data[name])
        data["sweep"] = {k: tuple(v) for k, v in (data.get("sweep") or {}).items()}
        return cls(**data)

    def settings(self) -> dict[str, object]:
        """What defines the runs, by option name: the familiar axes, then every TrainConfig
        field (a swept one as its tuple of values) except the axes' own and execution ones."""
        out: dict[str, object] = {name: getattr(self, name) for name in LISTS}
        swept = dict(self.sweep)
        for name in TRAIN_FIELDS:
            if name not in FAMILIAR and name not in EXECUTION_TRAIN_FIELDS:
                out[name] = swept.get(name, getattr(self.base, name))
        return out

    def differences(self, other: StudySpec) -> list[str]:
        """Human-readable 'field: a -> b' lines for the settings that define the runs."""
        mine, theirs = self.settings(), other.settings()
        return [
            f"{k}: {_show(mine[k])} -> {_show(theirs[k])}" for k in mine if mine[k] != theirs[k]
        ]


def _check_sweepable(name: str) -> None:
    if name not in TRAIN_FIELDS:
        raise ConfigError(f"cannot sweep {name!r}: not a TrainConfig field")
    if name in FAMILIAR:
        raise ConfigError(f"{name} is an axis of every study: set it with {FAMILIAR[name]}")
    if name in ONE_PER_STUDY:
        raise ConfigError(f"{name} holds one value per study: give one value (or run two studies)")


def _order(order: list[str], name: str) -> int:
    return order.index(name) if name in order else len(order)


def _check_depth(d: object, arches: tuple) -> None:
    """The depth rule of every architecture in the study (cifar: 6n + 2; see odenet.nets)."""
    from odenet.nets.layout import ARCHS, check_arch

    if all(a == "cifar" for a in arches):
        if isinstance(d, bool) or not isinstance(d, int) or d < 8 or (d - 2) % 6:
            raise ConfigError(
                f"--depths: depth {d!r} is not 6n+2 with n >= 1; e.g. 8, 14, 20, 32, 44, 56, 110"
            )
        return
    for arch in arches:
        if arch in ARCHS:  # an unknown name is reported by the run's own validation
            _prefixed("depths", lambda v, a=arch: check_arch(a, v, "stem"), d)


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


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    return repr(value)
