"""Numerical integrators. They know nothing about neural networks."""

from odenet.solvers.base import (
    Carry,
    SchemeCoefficients,
    Solver,
    StackedSolver,
    StepInput,
    StepPlan,
)
from odenet.solvers.continuous import ContinuousSolver, NFECounter
from odenet.solvers.learned import LearnedRungeKutta, RKCoefficients
from odenet.solvers.multistep import LMCoefficients, LMResNet, TwoStep
from odenet.solvers.plain import Plain
from odenet.solvers.registry import (
    ORDER_TO_SOLVER,
    aliases,
    available,
    for_order,
    get,
    register,
)
from odenet.solvers.runge_kutta import RungeKutta, rk_stacked_step, rk_step
from odenet.solvers.stability import (
    boundary_locus,
    imag_extent,
    in_region,
    real_extent,
    stability_function,
)
from odenet.solvers.tableau import ButcherTableau, TableauError


def solve(f, y0, t0: float, t1: float, steps: int, method: str | Solver = "rk4"):
    """Integrate y' = f(t, y) from t0 to t1 in ``steps`` equal steps with ``method``.

    f(t, y) -> dy/dt; y0 a tensor of any shape (float32/float64). Returns y(t1).
    """
    return get(method).solve(f, y0, t0, t1, steps)


__all__ = [
    "ButcherTableau",
    "Carry",
    "ContinuousSolver",
    "LMCoefficients",
    "LearnedRungeKutta",
    "LMResNet",
    "NFECounter",
    "ORDER_TO_SOLVER",
    "Plain",
    "RKCoefficients",
    "RungeKutta",
    "SchemeCoefficients",
    "Solver",
    "StackedSolver",
    "StepInput",
    "StepPlan",
    "TableauError",
    "TwoStep",
    "aliases",
    "available",
    "boundary_locus",
    "for_order",
    "get",
    "imag_extent",
    "in_region",
    "real_extent",
    "register",
    "rk_stacked_step",
    "rk_step",
    "solve",
    "stability_function",
]
