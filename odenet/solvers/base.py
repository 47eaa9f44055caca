"""The solver interface shared by every integrator in the registry.

A solver has two uses:

* classic: ``solve(f, y0, t0, t1, steps)`` integrates y' = f(t, y) with a fixed step;
* stacked: ``integrate(fields, x, ...)`` wires n distinct residual fields, each used exactly
  once with h absorbed into the field (this is how a residual stage uses it).

Concrete solvers are final; this module holds only the abstract interface and the data that
describes how a stage of n fields is split into steps.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

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

    @abstractmethod
    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        """Integrate y' = f(t, y) from t0 to t1 in ``steps`` equal steps; return y(t1).

        y0: a tensor of any shape, float32 or float64; the result has its shape and dtype.
        """

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, order={self.order})"


class SchemeCoefficients(nn.Module, ABC):
    """Learnable scheme coefficients of one stage (lm's k, a learned tableau): parameters
    counted apart from the weights (``extra_params``), never weight-decayed (all 1-D)."""

    @abstractmethod
    def report(self) -> dict[str, Any]:
        """Their current values as plain JSON data (lists of floats)."""


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
        """Run a stage: ``fields`` in order, each once.

        x: the stage input. The state starts at s = shortcut(x) (identity when None); the first
        field of the first step sees the raw x (it may downsample), every later field sees a
        state built from s and earlier field outputs. ``post`` (e.g. ReLU) is applied to the
        state after every step's sum. ``projections`` (shortcut C): one per step of
        ``plan(n)``; step i starts from s = projections[i](its input state) instead of the
        identity (replaces ``shortcut``).
        """


def step_start(
    i: int,
    state: Tensor,
    shortcut: ResidualField | None,
    projections: Sequence[ResidualField] | None,
) -> Tensor:
    """s, the state step i builds on: its projection (C), else shortcut(x) for step 0."""
    if projections is not None:
        return projections[i](state)
    if i == 0 and shortcut is not None:
        return shortcut(state)
    return state


def check_projections(projections: Sequence[ResidualField] | None, steps: int, name: str) -> None:
    if projections is not None and len(projections) != steps:
        raise ConfigError(
            f"{name}: {len(projections)} projections for {steps} steps; shortcut C needs one "
            "per step of plan(n)"
        )
