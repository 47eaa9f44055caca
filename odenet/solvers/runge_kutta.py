"""Explicit Runge-Kutta methods: one generic step, driven by a ButcherTableau.

Classic use:  y <- y + h * sum_i b_i k_i,   k_i = f(t + c_i h, y + h * sum_j a_ij k_j).
Stacked use:  x <- s + sum_i b_i k_i,       k_i = F_i(s + sum_j a_ij k_j)   (h absorbed in F_i),
where each k_i comes from its own field F_i, k_1 = F_1(x) sees the raw step input (it may
downsample) and s (the stage's business: x, shortcut(x) or a projection) is the state the
other stages are built from.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from torch import Tensor

from odenet.errors import ConfigError
from odenet.solvers.base import (
    ResidualField,
    StackedSolver,
    StepInput,
    StepPlan,
    VectorField,
    check_steps,
)
from odenet.solvers.tableau import EULER, HEUN, RK3, RK4, ButcherTableau
from odenet.solvers.tableau_high import COOPER_VERNER8, HUTA6, NYSTROM5

Combine = Callable[[Tensor, Sequence, Sequence[Tensor]], Tensor]  # (base, coeffs, ks) -> Tensor


def _combine(base: Tensor, coeffs: Sequence[float], ks: Sequence[Tensor]) -> Tensor:
    """base + sum_j coeffs[j] * ks[j], skipping exact zeros (they cost an op and nothing else)."""
    out = base
    for a, k in zip(coeffs, ks):
        if a != 0.0:
            out = out + (k if a == 1.0 else a * k)
    return out


def rk_step(tableau: ButcherTableau, f: VectorField, t: float, y: Tensor, h: float) -> Tensor:
    """One classic explicit RK step of size h from (t, y)."""
    ks: list[Tensor] = []
    for i in range(tableau.stages):
        yi = _combine(y, [h * a for a in tableau.a[i]], ks)
        ks.append(f(t + tableau.c[i] * h, yi))
    return _combine(y, [h * b for b in tableau.b], ks)


def rk_stacked_step(
    a: Sequence[Sequence],
    b: Sequence,
    x: Tensor,
    s: Tensor,
    fields: Sequence[ResidualField],
    combine: Combine = _combine,
) -> Tensor:
    """One stacked RK step: s + sum_i b_i k_i, k_1 = F_1(x), k_i = F_i(s + sum_j a_ij k_j).

    a: the rows of A (row i holds a_i0..a_i(i-1)); b: the weights; fields: F_1..F_s.
    ``combine(base, coeffs, ks)`` adds the terms: floats skipping exact zeros (a fixed
    tableau), or tensors (learned coefficients).
    """
    ks = [fields[0](x)]
    for row, field in zip(a[1:], fields[1:], strict=True):
        ks.append(field(combine(s, row, ks)))
    return combine(s, b, ks)


# The default method of each order (HO-ResNet's choice where it has one): ``for_order``'s
# table (the CLI's --orders) and the methods that take a stage's leftover fields.
DEFAULT_METHODS: dict[int, tuple[str, ButcherTableau]] = {
    1: ("euler", EULER),
    2: ("heun", HEUN),
    3: ("rk3", RK3),
    4: ("rk4", RK4),
    5: ("nystrom5", NYSTROM5),
    6: ("huta6", HUTA6),
    8: ("cv8", COOPER_VERNER8),
}
_BY_STAGES = {tab.stages: (name, tab) for name, tab in DEFAULT_METHODS.values()}
_TABLEAUX = dict(DEFAULT_METHODS.values())


def remainder_steps(rest: int) -> list[tuple[str, ButcherTableau]]:
    """The steps (name, tableau) that consume ``rest`` leftover fields: the default method with
    the most stages <= rest, repeated greedily on what is left (5: rk4 + euler; 7: nystrom5 +
    euler; 10: huta6 + heun)."""
    steps = []
    while rest > 0:
        stages = max(k for k in _BY_STAGES if k <= rest)
        steps.append(_BY_STAGES[stages])
        rest -= stages
    return steps


@dataclass(frozen=True, repr=False)
class RungeKutta(StackedSolver):
    """An explicit Runge-Kutta method given by its tableau. Final."""

    name: str
    tableau: ButcherTableau
    order: int
    description: str
    family: str = "runge-kutta"
    fusable: ClassVar[bool] = True

    @property
    def stages(self) -> int:  # type: ignore[override]
        return self.tableau.stages

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        check_steps(steps)
        h = (t1 - t0) / steps
        y = y0
        for n in range(steps):
            y = rk_step(self.tableau, f, t0 + n * h, y, h)
        return y

    def steps(self, n: int) -> list[tuple[str, ButcherTableau]]:
        """The (name, tableau) of each step a stage of n fields takes: full steps, leftovers."""
        if n <= 0:
            raise ConfigError(f"a stage needs at least one field, got {n}")
        full, rest = divmod(n, self.stages)
        return [(self.name, self.tableau)] * full + remainder_steps(rest)

    def plan(self, n: int) -> tuple[StepPlan, ...]:
        return tuple(StepPlan(name, tab.stages) for name, tab in self.steps(n))

    def step(self, step: StepInput) -> Tensor:
        tab = self.tableau if step.scheme == self.name else _TABLEAUX[step.scheme]
        s = step.start()  # before k1: the operation order the results were recorded with
        return rk_stacked_step(tab.a, tab.b, step.u, s, step.fields)
