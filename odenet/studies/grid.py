"""The grid: a study's axes -> one RunSpec per grid point, each with a stable id.

The id is readable and depends only on the run's coordinates: ``d20-rk4-lr0.1-s0``, with
every swept field between lr and seed (``d20-rk4-lr0.1-wd0.0005-s0``, keys from ``SHORT``,
else the field name). A study without swept fields keeps the ids of earlier versions. The
rest of the configuration is the same for every run of a study and is checked by the store.
``StudySpec`` builds its runs here once, when it is made (``StudySpec.runs``).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from itertools import product

from odenet.errors import ConfigError
from odenet.studies.spec_values import FAMILIAR
from odenet.training.config import SETTINGS, TrainConfig

# Short id keys of the swept fields (others: the field name). A string value with key ""
# stands for itself (``d20-rk4-lr0.1-cosine-s0``); a bool is the key or "no" + key. The order
# is the order in which swept fields nest in the grid and appear in ids: the field order of
# the versions whose ids must not change, then the fields added since (``sweep_position``).
SHORT = {
    "block": "",
    "shortcut": "sc",
    "width": "w",
    "epochs": "ep",
    "batch_size": "bs",
    "momentum": "mom",
    "nesterov": "nesterov",
    "weight_decay": "wd",
    "schedule": "",
    "warmup_epochs": "wu",
    "label_smoothing": "ls",
    "limit_train": "ntrain",
    "limit_test": "ntest",
    "amp": "amp",
    "channels_last": "nhwc",
    "augment": "aug",
    "pad": "pad",
    "divergence_threshold": "div",
    "log_every": "log",
    "arch": "",
    "downsample": "ds",
    "norm": "norm",
    "ode_t1": "t",
    "ode_rtol": "rtol",
    "ode_atol": "atol",
    "ode_step_size": "h",
    "ode_adjoint": "adjoint",
}

# TrainConfig fields that only say how a run executes: a study may change them between
# invocations (as the checkpoint's resume check allows), and they cannot be swept. A run's
# stored config leaves them to the executor (which applies the study's current setting):
# TrainConfig's defaults there.
EXECUTION_SETTINGS = ("cuda_graphs",)
_EXECUTION_DEFAULTS = {name: SETTINGS[name].default for name in EXECUTION_SETTINGS}


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


def sweep_position(name: str) -> int:
    """Where swept field ``name`` nests in the grid and stands in run ids (``SHORT``'s order,
    then the other settings in their order)."""
    order = [*SHORT, *(n for n in SETTINGS if n not in SHORT)]
    return order.index(name) if name in order else len(order)


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


def grid_runs(base: TrainConfig, axes: tuple[tuple[str, tuple], ...]) -> tuple[RunSpec, ...]:
    """Every grid point of ``axes`` ((setting, values) in nesting order: depth outermost, then
    scheme, lr, the swept fields, seed) applied to ``base``, each TrainConfig validated
    (ConfigError naming the run). Execution settings (cuda_graphs) keep TrainConfig's default:
    the executor applies the study's setting."""
    names = [name for name, _ in axes]
    swept = [name for name in names if name not in FAMILIAR]
    runs: list[RunSpec] = []
    seen: dict[str, tuple] = {}
    for i, point in enumerate(product(*(values for _, values in axes))):
        values = dict(zip(names, point))
        values["lr"] = float(values["lr"])
        config = base.replace(**values, **_EXECUTION_DEFAULTS)
        m = config.model
        rid = run_id(
            m.depth, m.solver, config.lr, config.seed, tuple((n, values[n]) for n in swept)
        )
        try:
            config.validate()
        except ConfigError as err:
            raise ConfigError(f"{err} (run {rid})") from None
        if rid in seen:
            raise ConfigError(f"runs {seen[rid]} and {point} both get the id {rid!r}")
        seen[rid] = point
        runs.append(RunSpec(rid, i, m.depth, m.solver, config.lr, config.seed, config))
    return tuple(runs)
