"""The grid: a StudySpec -> one RunSpec per grid point, each with a stable id.

The id is readable and depends only on the run's coordinates: ``d20-rk4-lr0.1-s0``, with
every swept field between lr and seed (``d20-rk4-lr0.1-wd0.0005-s0``, keys from ``SHORT``,
else the field name). A study without swept fields keeps the ids of earlier versions. The
rest of the configuration is the same for every run of a study and is checked by the store.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from itertools import product

from odenet.errors import ConfigError
from odenet.studies.spec import EXECUTION_TRAIN_FIELDS, StudySpec
from odenet.training.config import TrainConfig

# Short id keys of common swept fields (others: the field name). A string value with key ""
# stands for itself (``d20-rk4-lr0.1-cosine-s0``); a bool is the key or "no" + key.
SHORT = {
    "weight_decay": "wd",
    "momentum": "mom",
    "nesterov": "nesterov",
    "batch_size": "bs",
    "warmup_epochs": "wu",
    "label_smoothing": "ls",
    "epochs": "ep",
    "width": "w",
    "pad": "pad",
    "augment": "aug",
    "schedule": "",
    "block": "",
    "shortcut": "sc",
    "limit_train": "ntrain",
    "limit_test": "ntest",
    "amp": "amp",
    "channels_last": "nhwc",
    "divergence_threshold": "div",
    "arch": "",
    "downsample": "ds",
    "log_every": "log",
}


# A run's stored config leaves how it executes to the executor (which applies the study's
# current setting), so a resumed study may change it: TrainConfig's defaults there.
_EXECUTION_DEFAULTS = {
    f.name: f.default for f in dataclasses.fields(TrainConfig) if f.name in EXECUTION_TRAIN_FIELDS
}


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study."""

    id: str  # stable, readable: d{depth}-{scheme}-lr{lr}[-{swept fields}]-s{seed}
    index: int  # position in the grid (execution order)
    depth: int  # 6n + 2
    solver: str  # canonical registry name of the scheme
    lr: float  # peak learning rate
    seed: int  # the run's seed
    config: TrainConfig  # everything train() needs

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def run_id(
    depth: int, solver: str, lr: float, seed: int, swept: tuple[tuple[str, object], ...] = ()
) -> str:
    """``d20-rk4-lr0.1-s0``; lr (and float fields) printed as Python's shortest round-trip
    repr; ``swept``: (field, value) of the swept fields, named between lr and seed."""
    parts = [f"d{depth}", solver, f"lr{float(lr)!r}"]
    parts += [_part(name, value) for name, value in swept]
    return "-".join([*parts, f"s{seed}"])


def _part(name: str, value: object) -> str:
    key = SHORT.get(name, name)
    if isinstance(value, bool):
        return key if value else f"no{key}"
    text = "none" if value is None else repr(value) if isinstance(value, float) else str(value)
    return key + re.sub(r"[^A-Za-z0-9.+_]", "_", text)


def build_grid(spec: StudySpec) -> list[RunSpec]:
    """Every grid point of ``spec`` in the nesting order of ``spec.axes`` (depth outermost,
    then scheme, lr, the swept fields, seed), each TrainConfig validated (ConfigError naming
    the run). Execution fields (cuda_graphs) keep TrainConfig's default: the executor applies
    the study's setting. The spec's own checks are ``spec.validate()``."""
    names = [name for name, _ in spec.axes]
    runs: list[RunSpec] = []
    seen: dict[str, tuple] = {}
    for i, point in enumerate(product(*(values for _, values in spec.axes))):
        values = dict(zip(names, point))
        values["lr"] = float(values["lr"])
        config = dataclasses.replace(spec.base, **values, **_EXECUTION_DEFAULTS)
        swept = tuple((name, values[name]) for name in spec.swept)
        rid = run_id(config.depth, config.solver, config.lr, config.seed, swept)
        try:
            config.validate()
        except ConfigError as err:
            raise ConfigError(f"{err} (run {rid})") from None
        if rid in seen:
            raise ConfigError(f"runs {seen[rid]} and {point} both get the id {rid!r}")
        seen[rid] = point
        runs.append(RunSpec(rid, i, config.depth, config.solver, config.lr, config.seed, config))
    return runs


def first_config(spec: StudySpec, depth: int, solver: str) -> TrainConfig:
    """The TrainConfig of the first run of (depth, scheme): for budgets and model checks."""
    first = {name: values[0] for name, values in spec.axes}
    return dataclasses.replace(spec.base, **{**first, "depth": depth, "solver": solver})
