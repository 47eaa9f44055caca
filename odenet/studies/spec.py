"""StudySpec: a study = a base TrainConfig + sweep axes + execution settings.

Every run of a study is the base TrainConfig with its grid point's values: depth, scheme, lr
and seed (the familiar axes, always present) and any other TrainConfig setting that is swept
(``sweep``, e.g. weight_decay over (0.0, 5e-4), or a model field such as width or norm).
Nothing here mirrors TrainConfig: the settable and sweepable names are its settings
(``odenet.training.config.SETTINGS``: the fields of TrainConfig and of its ModelConfig, by
flat name), so a field added there is a study option at once.

A StudySpec is checked once, when it is made: its own options first (each error names the
option: ``--depths: depth 9 is not 6n+2 ...``), then every run's TrainConfig while its runs
are built (``runs``, computed here once, in grid order). Nothing else validates it again.

Sources (``spec_from_sources``): a TOML file, then explicit options, ``--set FIELD=VALUE``
and ``--axis FIELD=V1,V2``; reading them is ``spec_sources.py``, typed values
``spec_values.py``.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass, field

from odenet import solvers
from odenet.errors import ConfigError
from odenet.nets.layout import ARCHS, check_arch
from odenet.sizes import check_count
from odenet.studies.executors.base import DEFAULT_FUSE_MAX, check_executor, check_fuse_max
from odenet.studies.grace import DEFAULT_GRACE, check_grace
from odenet.studies.grid import EXECUTION_SETTINGS, RunSpec, grid_runs, sweep_position
from odenet.studies.spec_values import FAMILIAR, parse_list
from odenet.training.checkpoint import config_from_dict
from odenet.training.config import SETTINGS, TrainConfig, check_value

__all__ = ["EXECUTION", "LISTS", "StudySpec", "check_sweepable", "parse_list"]

# 1 (implicit): flat, every TrainConfig field a key; 2: {"base": flat TrainConfig, ...};
# 3: {"base": nested TrainConfig ("model": {...}), ...}. from_dict reads all three.
SPEC_FORMAT = 3
# Settings that hold one value per study (one dataset is loaded, one executor is made per
# device): settable, not sweepable.
ONE_PER_STUDY = ("dataset", "data_dir", "device", "cuda_graphs")
LISTS = {"orders": int, "solvers": str, "depths": int, "lrs": float, "seeds": int}
# How a study runs, not what its runs are: a resume may change them.
EXECUTION = ("executor", "fuse_max", "tensorboard", "lease_grace")
# Most runs in one study: its grid is built (and every run checked) when the spec is made,
# and stored as one row per run; a study beyond this is a typo (or needs splitting).
MAX_RUNS = 100_000


@dataclass(frozen=True)
class StudySpec:
    """A study: every (depth, scheme, lr, swept values..., seed) is one training run.

    Frozen and valid: made only from values that pass every check (ConfigError otherwise).
    Stored with the study as ``to_dict()``. ``sweep`` may be given as a dict
    ``{"weight_decay": (0.0, 5e-4)}``; a one-value sweep is a base setting.
    """

    # every run's settings; its depth, solver, lr and seed stay at their defaults (the axes)
    base: TrainConfig = field(default_factory=TrainConfig)
    orders: tuple[int, ...] = (1, 2, 4)  # RK orders; each adds for_order(o) (euler, heun, rk4)
    solvers: tuple[str, ...] = ()  # extra registry names (e.g. "lm", "ralston"), after the orders
    depths: tuple[int, ...] = (20, 56, 110)  # 6n + 2 layers each
    lrs: tuple[float, ...] = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)  # peak learning rates, > 0
    seeds: tuple[int, ...] = (0,)  # model-init / data-order seeds, >= 0
    sweep: tuple[tuple[str, tuple], ...] = ()  # other swept settings: (name, values), in
    # grid order (odenet.studies.grid.sweep_position), each with >= 2 values
    executor: str = "auto"  # auto (fused on CUDA, sequential on CPU) | sequential | fused | ray
    fuse_max: int = DEFAULT_FUSE_MAX  # most runs trained together as one fused network
    tensorboard: bool = False  # write each run's TensorBoard event files while it trains
    # (odenet.studies.tensorboard); like executor and fuse_max, not part of the study's identity
    lease_grace: float = DEFAULT_GRACE  # seconds without a heartbeat after which another
    # process may take over this process's runs (odenet.studies.store.leases); execution too

    def __post_init__(self) -> None:
        if not isinstance(self.base, TrainConfig):
            raise ConfigError(f"a study's base must be a TrainConfig, got {self.base!r}")
        for name in LISTS:  # lists given from Python (a notebook) become tuples
            if isinstance(getattr(self, name), list):
                object.__setattr__(self, name, tuple(getattr(self, name)))
        pairs = self.sweep.items() if isinstance(self.sweep, dict) else self.sweep
        swept, settings = {}, {}
        for name, values in pairs:
            check_sweepable(name)
            values = tuple(values) if isinstance(values, (list, tuple)) else (values,)
            _non_empty(f"axis {name}", values)
            if len(values) == 1:  # one value: the same for every run
                settings[name] = values[0]
            else:
                swept[name] = values
        object.__setattr__(self, "sweep", tuple(sorted(swept.items(), key=_position)))
        base = self.base.replace(**settings) if settings else self.base
        if isinstance(base.dataset, str) and base.dataset != base.dataset.strip():
            # the name load_dataset gives the data it loads: the runs' configs must name it
            base = dataclasses.replace(base, dataset=base.dataset.strip())
        object.__setattr__(self, "base", base)
        self._check()
        sizes = [f"{len(values)} {name}" for name, values in self.axes]
        check_count(  # decided from the axes' lengths, before the grid is enumerated
            math.prod(len(values) for _, values in self.axes),
            MAX_RUNS,
            f"the number of runs ({' x '.join(sizes)})",
            "sweep fewer values, or split the grid into several studies",
        )
        object.__setattr__(self, "_runs", grid_runs(self.base, self.axes))

    @property
    def runs(self) -> tuple[RunSpec, ...]:
        """Every run of the study in grid order (built, and validated, when it was made)."""
        return self._runs

    @property
    def schemes(self) -> tuple[str, ...]:
        """``[for_order(o) for o in orders] + solvers``, canonical names, deduplicated in order."""
        names = [solvers.for_order(o) for o in self.orders]
        names += [solvers.get(s).name for s in self.solvers]
        return tuple(dict.fromkeys(names))

    @property
    def axes(self) -> tuple[tuple[str, tuple], ...]:
        """Every axis as (setting, values), in grid nesting order (depth outermost)."""
        return (
            ("depth", self.depths),
            ("solver", self.schemes),
            ("lr", self.lrs),
            *self.sweep,
            ("seed", self.seeds),
        )

    @property
    def swept(self) -> tuple[str, ...]:
        """The swept settings besides depth, scheme, lr and seed (e.g. ("weight_decay",))."""
        return tuple(name for name, _ in self.sweep)

    def _check(self) -> None:
        """ConfigError naming the first bad option, its value and what is valid. The values
        of the list options are checked as TrainConfig checks them (``check_value``, the
        message prefixed by the option); each run's whole TrainConfig is checked while the
        runs are built."""
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
        arches = dict(self.sweep).get("arch", (self.base.model.arch,))
        for d in self.depths:
            _check_depth(d, arches)
        for option, name in (("lrs", "lr"), ("seeds", "seed")):  # TrainConfig's own checks
            for value in getattr(self, option):
                _prefixed(option, functools.partial(check_value, name), value)
        for name in ("depths", "lrs", "seeds", "orders", "solvers"):
            _no_duplicates(name, getattr(self, name))
        for name, values in self.sweep:
            _no_duplicates(f"axis {name}", values)
        for name, plural in FAMILIAR.items():
            if self.base.value(name) != SETTINGS[name].default:
                raise ConfigError(f"{name} is an axis of every study: set it with {plural}")
        check_executor(self.executor)
        check_fuse_max(self.fuse_max)
        if not isinstance(self.tensorboard, bool):
            raise ConfigError(f"--tensorboard: expected true or false, got {self.tensorboard!r}")
        check_grace(self.lease_grace)

    def check_runs_differ(self) -> None:
        """ConfigError when two runs would train the same network under two names: an axis
        with several values that a run's network does not use (``ModelConfig.unused``: the
        depth of the ImageNet family or of a continuous scheme, ...). Checked for a new study
        (``run_study``, ``plan_study``); a stored study made before this check still opens."""
        axes = dict(self.axes)
        for run in self.runs:
            for name, why in run.config.model.unused().items():
                values = axes.get(name, ())
                if len(values) > 1:
                    option = "--depths" if name == "depth" else f"--axis {name}="
                    raise ConfigError(
                        f"{option}{' ' if name == 'depth' else ''}{_show(values)}: {why}, so "
                        f"run {run.id} and its copies at the other {name} values would train "
                        f"the same network; give one {name} (or study these runs apart)"
                    )

    def to_dict(self) -> dict:
        """Plain JSON-able dict: ``{"format": 3, "base": asdict(base), ..., "sweep": {}}``."""
        out: dict = {"format": SPEC_FORMAT, "base": dataclasses.asdict(self.base)}
        for name in LISTS:
            out[name] = list(getattr(self, name))
        out["sweep"] = {name: list(values) for name, values in self.sweep}
        out["executor"], out["fuse_max"] = self.executor, self.fuse_max
        out["tensorboard"], out["lease_grace"] = self.tensorboard, self.lease_grace
        return out

    @classmethod
    def from_dict(cls, data: dict) -> StudySpec:
        """Inverse of ``to_dict``, for every format: also the flat spec stored by earlier
        versions (no "base": every setting among its keys, the rest TrainConfig's defaults)
        and a flat "base" (``config_from_dict``); each builds the same grid with the same run
        ids. Unknown keys raise ConfigError."""
        data = dict(data)
        if "base" not in data:  # format 1: orders..seeds, executor, fuse_max + train fields
            data["base"] = {k: data.pop(k) for k in list(data) if k in SETTINGS}
        data.pop("format", None)
        valid = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(data) - set(valid))
        if unknown:
            raise ConfigError(f"stored study config has unknown keys {unknown}; valid: {valid}")
        return cls(
            base=config_from_dict(data["base"]),
            **{name: tuple(data[name]) for name in LISTS if name in data},
            sweep={k: tuple(v) for k, v in (data.get("sweep") or {}).items()},
            **{name: data[name] for name in EXECUTION if name in data},
        )

    @staticmethod
    def swept_in(data: dict) -> tuple[str, ...]:
        """``swept`` of a stored spec (``to_dict``, any format) without building it, as
        ``from_dict`` does (with every run): the names the store gives each run it reads."""
        sweep = data.get("sweep") or {}
        names = [k for k, v in sweep.items() if isinstance(v, (list, tuple)) and len(v) > 1]
        return tuple(sorted(names, key=sweep_position))

    def settings(self) -> dict[str, object]:
        """What defines the runs, by option name: the familiar axes, then every setting (a
        swept one as its tuple of values) except the axes' own and execution ones."""
        out: dict[str, object] = {name: getattr(self, name) for name in LISTS}
        swept = dict(self.sweep)
        for name, value in self.base.settings().items():
            if name not in FAMILIAR and name not in EXECUTION_SETTINGS:
                out[name] = swept.get(name, value)
        return out

    def differences(self, other: StudySpec) -> list[str]:
        """Human-readable 'field: a -> b' lines for the settings that define the runs. The
        values of an axis in another order are the same axis: the same runs, the same ids
        (the stored study keeps its grid order)."""
        mine, theirs = self.settings(), other.settings()
        return [
            f"{k}: {_show(mine[k])} -> {_show(theirs[k])}"
            for k in mine
            if not _same_values(mine[k], theirs[k])
        ]


def check_sweepable(name: str) -> None:
    if name not in SETTINGS:
        raise ConfigError(f"cannot sweep {name!r}: not a TrainConfig field")
    if name in FAMILIAR:
        raise ConfigError(f"{name} is an axis of every study: set it with {FAMILIAR[name]}")
    if name in ONE_PER_STUDY:
        raise ConfigError(f"{name} holds one value per study: give one value (or run two studies)")


def _position(item: tuple[str, tuple]) -> int:
    return sweep_position(item[0])


def _check_depth(d: object, arches: tuple) -> None:
    """The depth rule of every architecture in the study (cifar: 6n + 2; see odenet.nets)."""
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


def _same_values(a: object, b: object) -> bool:
    """Equal settings; two axes (tuples, each value once) are equal in any order."""
    if isinstance(a, tuple) and isinstance(b, tuple):
        return len(a) == len(b) and all(v in b for v in a)
    return a == b


def _show(value: object) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(none)"
    return repr(value)
