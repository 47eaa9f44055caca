"""The plain network of He et al. 2015 (their Fig. 6 baseline): x <- F(x), no identity path.

It is no discretisation of an ODE (there is no x + ... term), so it has no order, no classic
``solve`` and no stability region; it is registered so that the degradation experiment (plain
vs residual at the same depth, parameters and FLOPs) runs through the same stages, training
and studies. With post-activation fields each step is relu(F(x)): the conv-BN-ReLU-conv-BN-ReLU
stack of He et al.'s plain-20/32/44/56/110. The first field of a stage downsamples by itself
(stride 2, channels doubled); there is no shortcut at all, so no projection parameters.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from odenet.errors import ConfigError
from odenet.solvers.base import StackedSolver, StepInput, StepPlan, VectorField


@dataclass(frozen=True, repr=False)
class Plain(StackedSolver):
    """x <- F(x) (post-act: relu(F(x))). No ODE order (0), 1 field per step. Final."""

    name: str = "plain"
    order: int = 0  # no ODE order: `odenet solvers` shows '-'
    description: str = "Plain network (He et al. Fig. 6): x <- F(x), no identity path"
    family: str = "plain"
    stages: int = 1
    residual: bool = False  # no identity path: a stage builds no shortcut for it
    fusable: ClassVar[bool] = True

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        raise ConfigError(
            "plain has no ODE to solve: x <- F(x) drops the identity path, so it integrates "
            "nothing; use a Runge-Kutta or multistep scheme (e.g. euler, rk4)"
        )

    def plan(self, n: int) -> tuple[StepPlan, ...]:
        if n <= 0:
            raise ConfigError(f"a stage needs at least one field, got {n}")
        return (StepPlan(self.name, 1),) * n

    def step(self, step: StepInput) -> Tensor:
        return step.fields[0](step.u)  # x <- F(x): no identity path (s is not used)
