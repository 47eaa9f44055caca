"""Explicit two-step linear multistep methods, classic and stacked.

All three methods here have the form

    u_{n+1} = a1 u_n + a0 u_{n-1} + h (b1 f(u_n) + b0 f(u_{n-1}))

and take their first step with forward Euler (u_1 = u_0 + h f(u_0)), which keeps each
method's global order: Euler's local error O(h^2) is committed once.

* ``ab2``: Adams-Bashforth 2, a1=1, a0=0, b1=3/2, b0=-1/2. Order 2.
* ``leapfrog``: explicit midpoint two-step, a1=0, a0=1, b1=2, b0=0. Order 2 (weakly stable).
* ``lm``: LM-ResNet (Lu et al. 2018), a1=1-k_n, a0=k_n, b1=1, b0=0 with one learnable k_n per
  step, initialised uniformly in [-0.1, 0]. As a classic solver, a fixed k is used and the
  step is rescaled to h (1 + k) so the method is consistent; it is then order 1.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.solvers.base import (
    SchemeCoefficients,
    StackedSolver,
    StepInput,
    StepPlan,
    VectorField,
    check_steps,
)


class LMCoefficients(SchemeCoefficients):
    """The learnable k_n of one LM-ResNet stage: one scalar per two-step update."""

    def __init__(self, count: int, generator: torch.Generator | None = None) -> None:
        super().__init__()
        k = torch.empty(count)
        k.uniform_(-0.1, 0.0, generator=generator)
        self.k = nn.Parameter(k)

    def report(self) -> dict[str, list[float]]:
        return {"k": self.k.detach().cpu().tolist()}


@dataclass(frozen=True, repr=False)
class TwoStep(StackedSolver):
    """A fixed-coefficient explicit two-step method (ab2, leapfrog). Final."""

    name: str
    a1: float
    a0: float
    b1: float
    b0: float
    order: int
    description: str
    family: str = "multistep"
    stages: int = 1
    fusable: ClassVar[bool] = True

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        check_steps(steps)
        h = (t1 - t0) / steps
        prev, f_prev = y0, f(t0, y0)
        y = y0 + h * f_prev  # first step: forward Euler
        for n in range(1, steps):
            fn = f(t0 + n * h, y)
            y, prev = self.a1 * y + self.a0 * prev + h * (self.b1 * fn + self.b0 * f_prev), y
            f_prev = fn
        return y

    def plan(self, n: int) -> tuple[StepPlan, ...]:
        return _two_step_plan(self.name, n)

    def step(self, step: StepInput) -> Tensor:
        def update(s: Tensor, u_prev: Tensor, fu: Tensor, f_prev: Tensor) -> Tensor:
            return _linear(((self.a1, s), (self.a0, u_prev), (self.b1, fu), (self.b0, f_prev)))

        return _two_step(step, update)


@dataclass(frozen=True, repr=False)
class LMResNet(StackedSolver):
    """LM-ResNet's learnable two-step scheme. Order 1, 1 field per step. Final."""

    name: str = "lm"
    order: int = 1
    description: str = "LM-ResNet: u+ = (1-k) u + k u- + f(u), learnable k per step"
    classic_k: float = -0.05  # the k used by solve(): the middle of the init range
    family: str = "multistep"
    stages: int = 1
    fusable: ClassVar[bool] = False  # each member learns its own k

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        check_steps(steps)
        h = (t1 - t0) / steps
        k = self.classic_k
        prev, y = y0, y0 + h * f(t0, y0)  # first step: forward Euler
        for n in range(1, steps):
            y, prev = (1 - k) * y + k * prev + h * (1 + k) * f(t0 + n * h, y), y
        return y

    def plan(self, n: int) -> tuple[StepPlan, ...]:
        return _two_step_plan(self.name, n)

    def make_coefficients(self, n: int, generator: torch.Generator | None = None) -> LMCoefficients:
        return LMCoefficients(max(n - 1, 0), generator)

    def step(self, step: StepInput) -> Tensor:
        k = LMCoefficients.carried(step, self.name).k

        def update(s: Tensor, u_prev: Tensor, fu: Tensor, f_prev: Tensor) -> Tensor:
            ki = k[step.index - 1]
            return (1 - ki) * s + ki * u_prev + fu

        return _two_step(step, update)


def _linear(terms: Sequence[tuple[float, Tensor]]) -> Tensor:
    """sum of c * t over the terms with c != 0 (a multiply is skipped where c == 1)."""
    out: Tensor | None = None
    for c, t in terms:
        if c != 0.0:
            term = t if c == 1.0 else c * t
            out = term if out is None else out + term
    assert out is not None, "a two-step update needs at least one non-zero coefficient"
    return out


def _two_step_plan(name: str, n: int) -> tuple[StepPlan, ...]:
    if n <= 0:
        raise ConfigError(f"a stage needs at least one field, got {n}")
    return (StepPlan("euler", 1),) + (StepPlan(name, 1),) * (n - 1)


Update = Callable[[Tensor, Tensor, Tensor, Tensor], Tensor]  # (u_n, u_{n-1}, F(u_n), F(u_{n-1}))


def _two_step(step: StepInput, update: Update) -> Tensor:
    """The stacked two-step driver: step 0 is Euler (s + k1, s = shortcut(x) becoming u_{n-1}),
    step n >= 1 is update(s, u_{n-1}, F(u_n), F(u_{n-1})); ``step.carry`` keeps u_{n-1} and
    F(u_{n-1}). With shortcut C, s is step n's projection of u_n, while the older state u_{n-1}
    enters as it is (not projected again).

    Step 0 takes s before F(x), later steps F(u_n) before s: the operation order the results
    were recorded with (with C, lm's gradients depend on it in the last bit).
    """
    carry, field = step.carry, step.fields[0]
    if step.index == 0:
        s = step.start()
        fu = field(step.u)
        out = s + fu
        carry.prev = s
    else:
        assert carry.prev is not None and carry.f_prev is not None, "step 0 comes first"
        fu = field(step.u)
        out = update(step.start(), carry.prev, fu, carry.f_prev)
        carry.prev = step.u
    carry.f_prev = fu
    return out
