"""Explicit Runge-Kutta methods: one generic step, driven by a ButcherTableau.

Classic use:  y <- y + h * sum_i b_i k_i,   k_i = f(t + c_i h, y + h * sum_j a_ij k_j).
Stacked use:  x <- s + sum_i b_i k_i,       k_i = F_i(s + sum_j a_ij k_j)   (h absorbed in F_i),
where each k_i comes from its own field F_i, and k_1 = F_1(x) sees the raw stage input (it may
downsample) while s = shortcut(x) is the state the other stages are built from.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.solvers.base import (
    ResidualField,
    StackedSolver,
    StepPlan,
    VectorField,
    check_projections,
    check_steps,
    step_start,
)
from odenet.solvers.tableau import EULER, HEUN, RK3, RK4, ButcherTableau
from odenet.solvers.tableau_high import HUTA6, NYSTROM5


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
    tableau: ButcherTableau, fields: Sequence[ResidualField], x: Tensor, s: Tensor
) -> Tensor:
    """One stacked RK step: ``len(fields) == tableau.stages``; k_1 = F_1(x), state built on s."""
    if len(fields) != tableau.stages:
        raise ConfigError(
            f"a {tableau.stages}-stage step needs {tableau.stages} fields, got {len(fields)}"
        )
    ks = [fields[0](x)]
    for i in range(1, tableau.stages):
        ks.append(fields[i](_combine(s, tableau.a[i], ks)))
    return _combine(s, tableau.b, ks)


# The steps that take the r = n mod s fields left over after the full steps: the registry's
# default method (the CLI's --orders mapping) with the most stages <= r, repeated greedily on
# what is left (r = 5: rk4 + euler; r = 7: nystrom5 + euler; r = 10: huta6 + heun).
_REMAINDER: dict[int, tuple[str, ButcherTableau]] = {
    8: ("huta6", HUTA6),
    6: ("nystrom5", NYSTROM5),
    4: ("rk4", RK4),
    3: ("rk3", RK3),
    2: ("heun", HEUN),
    1: ("euler", EULER),
}


def remainder_steps(rest: int) -> list[tuple[str, ButcherTableau]]:
    """The steps (name, tableau) that consume ``rest`` leftover fields, largest first."""
    steps = []
    while rest > 0:
        stages = max(k for k in _REMAINDER if k <= rest)
        steps.append(_REMAINDER[stages])
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

    def integrate(
        self,
        fields: Sequence[ResidualField],
        x: Tensor,
        *,
        shortcut: ResidualField | None = None,
        post: ResidualField | None = None,
        coefficients: nn.Module | None = None,
        projections: Sequence[ResidualField] | None = None,
    ) -> Tensor:
        steps = self.steps(len(fields))
        check_projections(projections, len(steps), self.name)
        state = x
        used = 0
        for i, (_, tab) in enumerate(steps):
            s = step_start(i, state, shortcut, projections)
            state = rk_stacked_step(tab, fields[used : used + tab.stages], state, s)
            if post is not None:
                state = post(state)
            used += tab.stages
        return state
