"""The solver interface shared by every integrator in the registry.

A solver has two uses:

* classic: ``solve(f, y0, t0, t1, steps)`` integrates y' = f(t, y) with a fixed step;
* stacked: ``plan(n)`` groups n distinct residual fields (h absorbed, each used exactly once)
  into steps, and ``step(StepInput)`` computes one step: its fields and their combination.
  The network (odenet.nets.stage.Stage) walks the plan and owns the rest of the wiring: the
  state s a step builds on (the input, its shortcut or its projection) and the activation.

Concrete solvers are final; this module holds only the abstract interface and the data that
passes between a stage and its solver.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import torch
from torch import Tensor, nn

from odenet.errors import ConfigError

VectorField = Callable[[Tensor, Tensor], Tensor]  # f(t, y) -> dy/dt
ResidualField = Callable[[Tensor], Tensor]  # F(x), h absorbed


@dataclass(frozen=True)
class StepPlan:
    """One step of a stacked stage: the scheme used and how many fields it consumes."""

    scheme: str
    fields: int


def check_steps(steps: int) -> None:
    if not isinstance(steps, int) or isinstance(steps, bool) or steps <= 0:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")


class Solver(ABC):
    """Abstract solver. Attributes: name, family, order, stages, description."""

    name: str
    family: str  # "runge-kutta" | "multistep" | "continuous" | "plain" | "learned-rk"
    order: int
    stages: int  # fields consumed (classic: evaluations of f) per step
    description: str
    # K networks wired by it fuse into one grouped network (odenet.nets.fused): each step is
    # elementwise with coefficients shared by all members (no per-network scheme coefficients,
    # no adaptive steps shared by a batch)
    fusable: ClassVar[bool]

    @abstractmethod
    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        """Integrate y' = f(t, y) from t0 to t1 in ``steps`` equal steps; return y(t1).

        y0: a tensor of any shape, float32 or float64; the result has its shape and dtype.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"


C = TypeVar("C", bound="SchemeCoefficients")


class SchemeCoefficients(nn.Module, ABC):
    """Learnable scheme coefficients of one stage (lm's k, a learned tableau): parameters
    counted apart from the weights (``extra_params``), never weight-decayed (all 1-D)."""

    @abstractmethod
    def report(self) -> dict[str, Any]:
        """Their current values as plain JSON data (lists of floats)."""

    @classmethod
    def carried(cls: type[C], step: StepInput, scheme: str) -> C:
        """The stage's coefficients that ``step`` carries, checked to be of this class."""
        if not isinstance(step.carry.coefficients, cls):
            raise ConfigError(
                f"{scheme} needs its learnable coefficients: a stage carries "
                "solver.make_coefficients(n)"
            )
        return step.carry.coefficients


@dataclass
class Carry:
    """What the steps of one pass through a stage share. The stage makes one per forward pass and
    hands the same object to each step; a two-step method keeps its previous step in it."""

    coefficients: SchemeCoefficients | None = None  # the stage's learnable scheme coefficients
    prev: Tensor | None = None  # two-step methods: the previous state u_{n-1}
    f_prev: Tensor | None = None  # two-step methods: the previous field output F(u_{n-1})


@dataclass(frozen=True)
class StepInput:
    """What a stage hands its solver for step ``index`` of ``plan(n)``.

    ``u`` is the step's input: the state (N, C, H, W), or for the first step of a downsampling
    stage the stage input, of another shape. The step's first field sees u (the downsampling
    field is k1 of the first step); ``start()`` gives s, the state in the output's shape that
    the step builds on (u itself, its shortcut or its projection: the network decides). A
    step calls ``start()`` once, where its scheme's operation order puts it (before k1 in a
    Runge-Kutta step, after it in a two-step update), so that outputs, gradients and their
    double-backward products stay bitwise those the results were recorded with.
    """

    index: int  # the step's position in plan(n); 0 is the stage's first step
    scheme: str  # plan(n)[index].scheme, e.g. a leftover "euler" step of a heun stage
    u: Tensor  # the step's input state
    start: Callable[[], Tensor]  # s, the state the step builds on (call once)
    fields: Sequence[ResidualField]  # the step's fields, in order (plan(n)[index].fields)
    carry: Carry  # the stage's pass: its coefficients, a two-step method's previous step


class StackedSolver(Solver):
    """A solver that can wire n distinct residual fields (the residual-network use)."""

    residual: bool = True  # False: no identity path (plain), so a stage builds no shortcut

    @abstractmethod
    def plan(self, n: int) -> tuple[StepPlan, ...]:
        """How n fields are grouped into steps (each field is used exactly once)."""

    def make_coefficients(
        self, n: int, generator: torch.Generator | None = None
    ) -> SchemeCoefficients | None:
        """Learnable scheme coefficients for a stage of n fields, or None (the default)."""
        return None

    @abstractmethod
    def step(self, step: StepInput) -> Tensor:
        """One step: its new state (before any activation), in s's shape.

        Runge-Kutta: s + sum_i b_i k_i with k_1 = F_1(u), k_i = F_i(s + sum_j a_ij k_j); a
        two-step method also reads (and updates) the previous step in ``step.carry``.
        """
