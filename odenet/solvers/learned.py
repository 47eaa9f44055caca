"""Runge-Kutta stackings with learned coefficients: ``learn-<tableau>`` (e.g. ``learn-rk4``).

The "adaptive coefficients" of the higher-order write-up (Luo et al. 2021): every step of a
stage has its own A (strictly lower part) and b, initialised from the named tableau (the
leftover steps from theirs: learn-rk4 at n = 3 is one learned rk3 step) and trained with the
weights. They are scheme coefficients, like lm's k: 1-D parameters counted in
``extra_params``, never weight-decayed, reported after training (``report()``). c is not
stored: a residual field is autonomous, so only A and b enter the stacked step.

At initialisation the network equals the fixed-tableau network bitwise: each k_j enters as
``state + a_ij * k_j`` in the same order as the fixed step (an exact 0 adds nothing, an exact
1 multiplies exactly), and building the coefficients draws nothing from the generator. The
classic ``solve`` uses the initial tableau (there is no training there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from odenet.solvers.base import (
    SchemeCoefficients,
    StackedSolver,
    StepInput,
    StepPlan,
    VectorField,
)
from odenet.solvers.runge_kutta import RungeKutta, rk_stacked_step
from odenet.solvers.tableau import ButcherTableau

PREFIX = "learn-"


class RKCoefficients(SchemeCoefficients):
    """A and b of every step of one stage. ``a[str(i)]``: the strictly lower part of step i's
    A, row by row (a_10, a_20, a_21, a_30, ...), 1-D (absent for a one-stage step, which has
    none); ``b[i]``: its weights, 1-D."""

    def __init__(self, steps: Sequence[tuple[str, ButcherTableau]]) -> None:
        super().__init__()
        self.schemes = [name for name, _ in steps]
        self.a = nn.ParameterDict(
            {
                str(i): nn.Parameter(torch.tensor([v for row in tab.a for v in row]))
                for i, (_, tab) in enumerate(steps)
                if tab.stages > 1
            }
        )
        self.b = nn.ParameterList(nn.Parameter(torch.tensor(tab.b)) for _, tab in steps)

    def step(self, i: int) -> tuple[list[list[Tensor]], list[Tensor]]:
        """Step i's rows of A (row r has r 0-dim tensors) and its weights, as 0-dim tensors."""
        b = list(self.b[i].unbind())
        flat = list(self.a[str(i)].unbind()) if str(i) in self.a else []
        return [flat[r * (r - 1) // 2 : r * (r + 1) // 2] for r in range(len(b))], b

    def report(self) -> dict[str, Any]:
        steps = []
        for i, scheme in enumerate(self.schemes):
            b = self.b[i].detach().cpu().tolist()
            flat = self.a[str(i)].detach().cpu().tolist() if str(i) in self.a else []
            rows = [flat[r * (r - 1) // 2 : r * (r + 1) // 2] for r in range(len(b))]
            steps.append({"scheme": scheme, "a": rows, "b": b})
        return {"steps": steps}


def _combine_all(base: Tensor, coeffs: Sequence[Tensor], ks: Sequence[Tensor]) -> Tensor:
    """base + sum_j coeffs[j] * ks[j], every term (a learnable 0 still gets a gradient)."""
    out = base
    for a, k in zip(coeffs, ks):
        out = out + a * k
    return out


@dataclass(frozen=True, repr=False)
class LearnedRungeKutta(StackedSolver):
    """``base``'s stacking with A and b learned per step. Final.

    order: the base tableau's (that of the initialisation; training may leave it).
    """

    base: RungeKutta
    family: str = "learned-rk"
    fusable: ClassVar[bool] = False  # each member learns its own A and b

    @property
    def name(self) -> str:  # type: ignore[override]
        return PREFIX + self.base.name

    @property
    def order(self) -> int:  # type: ignore[override]
        return self.base.order

    @property
    def stages(self) -> int:  # type: ignore[override]
        return self.base.stages

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"{self.base.name} with A and b learned per step (init: its tableau)"

    @property
    def tableau(self) -> ButcherTableau:
        """The initial tableau (the classic solve's and the stability region's)."""
        return self.base.tableau

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        return self.base.solve(f, y0, t0, t1, steps)

    def plan(self, n: int) -> tuple[StepPlan, ...]:
        return tuple(StepPlan(PREFIX + p.scheme, p.fields) for p in self.base.plan(n))

    def make_coefficients(self, n: int, generator: torch.Generator | None = None) -> RKCoefficients:
        return RKCoefficients(self.base.steps(n))

    def step(self, step: StepInput) -> Tensor:
        s = step.start()  # s, the coefficients, then k1: the recorded operation order
        rows, b = RKCoefficients.carried(step, self.name).step(step.index)
        return rk_stacked_step(rows, b, step.u, s, step.fields, _combine_all)
