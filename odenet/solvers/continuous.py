"""Continuous mode: one shared vector field integrated by torchdiffeq.

``ContinuousSolver`` names a torchdiffeq method (``ode-dopri5`` -> "dopri5") and offers

* ``solve(f, y0, t0, t1, steps)``: the classic use, with ``steps`` equal steps. Fixed-grid
  methods get ``step_size``; adaptive ones are forced onto the same grid (every step is
  accepted: tolerances are set out of reach and ``step_t`` pins the step ends), so their
  convergence order can be measured like any fixed-step method's.
* ``integrate(field, y0, ...)``: the network use, over [0, t1] with tolerances or a step size,
  through ``odeint`` or ``odeint_adjoint``.

``NFECounter`` wraps a field and counts its evaluations in the forward and the backward pass.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torchdiffeq
from torch import Tensor, nn

from odenet.solvers.base import Solver, VectorField, check_steps


class _BackwardCounter(torch.autograd.Function):
    """Identity whose backward bumps the counter (direct backprop: one backward per call)."""

    @staticmethod
    def forward(ctx, y: Tensor, counter: NFECounter) -> Tensor:  # type: ignore[override]
        ctx.counter = counter
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad: Tensor):  # type: ignore[override]
        ctx.counter.nfe_backward += 1
        return grad, None


class NFECounter(nn.Module):
    """Wraps a field f(t, y) and counts its evaluations.

    ``nfe_forward``: calls between ``start_forward()`` and ``end_forward()``.
    ``nfe_backward``: with the adjoint, the calls made after ``end_forward()`` (the adjoint
    solve); with direct backprop, the backward passes through the recorded calls.
    """

    def __init__(self, field: nn.Module) -> None:
        super().__init__()
        self.field = field
        self.nfe_forward = 0
        self.nfe_backward = 0
        self._in_backward = False

    def start_forward(self) -> None:
        self.nfe_forward = 0
        self.nfe_backward = 0
        self._in_backward = False

    def end_forward(self) -> None:
        self._in_backward = True

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if self._in_backward:
            self.nfe_backward += 1
            return self.field(t, y)
        self.nfe_forward += 1
        out = self.field(t, y)
        if out.requires_grad:
            out = _BackwardCounter.apply(out, self)
        return out


@dataclass(frozen=True, repr=False)
class ContinuousSolver(Solver):
    """A torchdiffeq method behind the solver interface. Final."""

    name: str
    method: str  # torchdiffeq's name
    order: int
    stages: int  # evaluations of f per step (FSAL counted once)
    adaptive: bool
    description: str
    family: str = "continuous"
    fusable: ClassVar[bool] = False  # adaptive steps are shared by the whole batch

    def solve(self, f: VectorField, y0: Tensor, t0: float, t1: float, steps: int) -> Tensor:
        check_steps(steps)
        h = (t1 - t0) / steps
        t = torch.tensor([t0, t1], dtype=y0.dtype, device=y0.device)
        if self.adaptive:
            # torchdiffeq clips a step to the next step_t point only when that point lies
            # strictly inside it, so every trial step is made longer than h (growth x10 after
            # each accepted step) and the clip lands it exactly on the grid.
            grid = torch.linspace(t0, t1, steps + 1, dtype=y0.dtype, device=y0.device)[1:]
            options = {"step_t": grid, "first_step": 2 * h}
            ys = torchdiffeq.odeint(
                f, y0, t, rtol=1e30, atol=1e30, method=self.method, options=options
            )
        else:
            ys = torchdiffeq.odeint(f, y0, t, method=self.method, options={"step_size": h})
        return ys[-1]

    def integrate(
        self,
        field: nn.Module,
        y0: Tensor,
        *,
        t1: float = 1.0,
        rtol: float = 1e-3,
        atol: float = 1e-4,
        step_size: float | None = None,
        adjoint: bool = False,
    ) -> Tensor:
        """Integrate dy/dt = field(t, y) over [0, t1]; return y(t1) with y0's shape.

        Fixed-grid methods need ``step_size`` (default t1 / 4 when None); adaptive methods use
        rtol/atol. With ``adjoint`` the backward pass solves the adjoint ODE (O(1) memory)
        using the seminorm of Kidger et al. (2021).
        """
        t = torch.tensor([0.0, t1], dtype=y0.dtype, device=y0.device)
        options = None
        if not self.adaptive:
            options = {"step_size": step_size if step_size is not None else t1 / 4}
        if adjoint:
            # The seminorm (Kidger et al. 2021) skips the parameter adjoint in step-size control.
            extra = {"adjoint_options": {"norm": "seminorm"}} if self.adaptive else {}
            ys = torchdiffeq.odeint_adjoint(
                field, y0, t, rtol=rtol, atol=atol, method=self.method, options=options, **extra
            )
        else:
            ys = torchdiffeq.odeint(
                field, y0, t, rtol=rtol, atol=atol, method=self.method, options=options
            )
        return ys[-1]
