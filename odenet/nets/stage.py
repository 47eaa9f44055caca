"""Stage: n residual fields integrated by one stacked solver from the registry.

The grouping of fields into steps is the solver's ``plan(n)`` (the wiring lives in
odenet.solvers, never here):

* an s-stage Runge-Kutta method takes floor(n / s) full steps; the n mod s fields left over
  form one final step of the same-family default method with that many stages (1: euler,
  2: heun, 3: rk3). Depth 20 has n = 3: rk4 is one rk3 step, heun one heun step + one euler step.
* multistep methods (lm, ab2, leapfrog) start each stage with an Euler step, then take one
  two-step update per field; their previous state at the start is shortcut(x).

The downsampling field (stride 2, channels doubled) is k1 of the first step; every other field
sees the state built on s = shortcut(x) plus combinations of earlier k. Every field is used
exactly once, so the fields' parameters and convolution FLOPs do not depend on the solver.

Shortcut C puts a 1x1 conv + norm projection P_i on every step i of the plan: the step builds
on s = P_i(its input state) instead of the identity. That is one projection per step, not per
field: euler has n, an s-stage scheme about n / s, so with C the parameter count of a
multi-field scheme is lower than euler's (``describe`` says so; the budget check flags it).
``plain`` (no identity path) gets no shortcut and no projection at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.nets.fields import make_field, make_shortcut
from odenet.solvers import StackedSolver, StepPlan


class Stage(nn.Module):
    """n fields integrated by ``solver``.

    fields: n modules (N, C_in, H, W) -> (N, C_out, H', W'); only fields[0] may change shape.
    shortcut: maps the stage input to the state shape (None: identity).
    projections: shortcut C, one module per step of ``solver.plan(n)`` (replaces shortcut).
    post_relu: apply ReLU to the state after every step's sum (post-activation networks).
    coefficients: the solver's learnable scheme coefficients (lm's k), drawn from ``generator``.
    """

    def __init__(
        self,
        solver: StackedSolver,
        fields: Sequence[nn.Module],
        *,
        shortcut: nn.Module | None = None,
        projections: Sequence[nn.Module] | None = None,
        post_relu: bool = False,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(solver, StackedSolver):
            raise ConfigError(
                f"solver {solver.name!r} cannot stack distinct fields; a discrete stage needs a "
                "Runge-Kutta or multistep solver"
            )
        if len(fields) == 0:
            raise ConfigError("a stage needs at least one field")
        self.solver = solver
        self.fields = nn.ModuleList(fields)
        if shortcut is not None and projections is not None:
            raise ConfigError("a stage takes a shortcut or per-step projections, not both")
        steps = len(solver.plan(len(fields)))
        if projections is not None and len(projections) != steps:
            raise ConfigError(f"{len(projections)} projections for a stage of {steps} steps")
        if not solver.residual and (shortcut is not None or projections is not None):
            raise ConfigError(f"{solver.name} has no identity path: its stage takes no shortcut")
        self.shortcut = shortcut
        self.projections = nn.ModuleList(projections) if projections is not None else None
        self.post_relu = post_relu
        self.coefficients = solver.make_coefficients(len(fields), generator)

    def plan(self) -> tuple[StepPlan, ...]:
        """The steps this stage takes: (scheme, fields consumed) in order."""
        return self.solver.plan(len(self.fields))

    def forward(self, x: Tensor) -> Tensor:
        return self.solver.integrate(
            self.fields,
            x,
            shortcut=self.shortcut,
            post=F.relu if self.post_relu else None,
            coefficients=self.coefficients,
            projections=self.projections,
        )

    def coefficient_report(self) -> dict | None:
        """The learnable scheme coefficients' current values (plain data), None without any."""
        return self.coefficients.report() if self.coefficients is not None else None

    def extra_repr(self) -> str:
        return f"solver={self.solver.name}, fields={len(self.fields)}, post_relu={self.post_relu}"


def make_stage(
    solver: StackedSolver,
    n: int,
    in_channels: int,
    out_channels: int,
    stride: int,
    *,
    block: str,
    shortcut: str,
    norm: str,
    generator: torch.Generator | None = None,
) -> Stage:
    """n fields of ``block`` type; the first downsamples when stride != 1 or the channels change.

    shortcut "A" | "B": on the first step where the shape changes; "C": a projection on every
    step of the plan. A scheme without identity path (plain) gets none of them.
    """
    fields = [make_field(block, in_channels, out_channels, stride, norm)]
    fields += [make_field(block, out_channels, out_channels, 1, norm) for _ in range(n - 1)]
    first, projections = None, None
    if solver.residual and shortcut == "C":
        steps = len(solver.plan(n))
        projections = [make_shortcut("C", in_channels, out_channels, stride, norm)]
        projections += [
            make_shortcut("C", out_channels, out_channels, 1, norm) for _ in range(steps - 1)
        ]
    elif solver.residual:
        first = make_shortcut(shortcut, in_channels, out_channels, stride, norm)
    return Stage(
        solver,
        fields,
        shortcut=first,
        projections=projections,
        post_relu=block != "preact",  # postact and bottleneck: ReLU after each sum
        generator=generator,
    )


def scheme_coefficients(model: nn.Module) -> list[dict] | None:
    """The learned scheme coefficients of every stage of ``model``, in order, as JSON data:
    [{"stage": 1, "k": [...]}] (lm) or [{"stage": 1, "steps": [{"scheme", "a", "b"}]}]
    (learn-<tableau>); None for a scheme without learnable coefficients."""
    stages = [m for m in model.modules() if isinstance(m, Stage)]
    reports = [s.coefficient_report() for s in stages]
    if all(r is None for r in reports):
        return None
    return [{"stage": i + 1, **(r or {})} for i, r in enumerate(reports)]
