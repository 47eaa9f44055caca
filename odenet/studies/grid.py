"""The grid: a StudySpec -> one RunSpec per (depth, scheme, lr, seed), each with a stable id.

The id is readable and depends only on the run's coordinates, e.g. ``d20-rk4-lr0.1-s0``: the
rest of the configuration is the same for every run of a study and is checked by the store.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from itertools import product

from odenet.studies.spec import StudySpec
from odenet.training.config import TrainConfig


@dataclass(frozen=True)
class RunSpec:
    """One training run of a study."""

    id: str  # stable, readable: d{depth}-{scheme}-lr{lr}-s{seed}
    index: int  # position in the grid (execution order)
    depth: int  # 6n + 2
    solver: str  # canonical registry name of the scheme
    lr: float  # peak learning rate
    seed: int  # the run's seed
    config: TrainConfig  # everything train() needs

    def config_dict(self) -> dict:
        return dataclasses.asdict(self.config)


def run_id(depth: int, solver: str, lr: float, seed: int) -> str:
    """``d20-rk4-lr0.1-s0``; lr printed as Python's shortest round-trip repr."""
    return f"d{depth}-{solver}-lr{float(lr)!r}-s{seed}"


def train_config(spec: StudySpec, depth: int, solver: str, lr: float, seed: int) -> TrainConfig:
    """The TrainConfig of one grid point: the spec's shared settings plus its coordinates."""
    return TrainConfig(
        dataset=spec.dataset,
        depth=depth,
        solver=solver,
        block=spec.block,
        shortcut=spec.shortcut,
        width=spec.width,
        epochs=spec.epochs,
        lr=float(lr),
        batch_size=spec.batch_size,
        schedule=spec.schedule,
        seed=seed,
        limit_train=spec.limit_train,
        limit_test=spec.limit_test,
        data_dir=spec.data_dir,
        device=spec.device,
    )


def build_grid(spec: StudySpec) -> list[RunSpec]:
    """Every (depth, scheme, lr, seed) of ``spec`` in that nesting order (depth outermost).

    The spec must be valid (``spec.validate()``); each TrainConfig is validated here too.
    """
    runs = []
    for i, (depth, solver, lr, seed) in enumerate(
        product(spec.depths, spec.schemes, spec.lrs, spec.seeds)
    ):
        config = train_config(spec, depth, solver, lr, seed)
        config.validate()
        runs.append(
            RunSpec(run_id(depth, solver, lr, seed), i, depth, solver, float(lr), seed, config)
        )
    return runs
