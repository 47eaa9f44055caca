"""Stage: n residual fields integrated by one stacked solver from the registry.

The grouping of fields into steps is the solver's ``plan(n)`` and each step (its fields and
their combination) the solver's ``step`` (the numerics live in odenet.solvers); the stage
walks the plan and owns the network's wiring around it:

* an s-stage Runge-Kutta method takes floor(n / s) full steps; the n mod s fields left over
  form one final step of the same-family default method with that many stages (1: euler,
  2: heun, 3: rk3). Depth 20 has n = 3: rk4 is one rk3 step, heun one heun step + one euler step.
* multistep methods (lm, ab2, leapfrog) start each stage with an Euler step, then take one
  two-step update per field; their previous state at the start is shortcut(x).

Each step from its input u: the solver evaluates the step's fields (the first sees u: the
downsampling field, stride 2 and channels doubled, is k1 of the first step) and combines them
with s, the state the step builds on, which the stage gives it: shortcut(u) on the first step
(identity where the shape is unchanged), u on the others; then the stage applies the ReLU of
post-activation networks. Every field is used exactly once, so the fields' parameters and
convolution FLOPs do not depend on the solver.

Shortcut C puts a 1x1 conv + norm projection P_i on every step i of the plan: the step builds
on s = P_i(its input state) instead of the identity. That is one projection per step, not per
field: euler has n, an s-stage scheme about n / s, so with C the parameter count of a
multi-field scheme is lower than euler's (``describe`` says so; the budget check flags it).
``plain`` (no identity path) gets no shortcut and no projection at all.

Refinement (``substeps`` m > 1, built by odenet.nets.refine): every step is taken m times
through the same fields, each field's output scaled by 1/m (h is absorbed into the fields, so
that is the step h/m), and the ReLU of a post-activation network follows the m sub-steps once
(it is a map between the trained steps, not part of the vector field). The first step of a
downsampling stage (the one with a shortcut) is the transition between resolutions: its first
field cannot be applied to its own output, so that step is taken once, as trained, and the
shortcut applies once. m = 1 is the trained stage, bitwise.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.nets.fields import make_field, make_shortcut
from odenet.solvers import Carry, SchemeCoefficients, StackedSolver, StepInput, StepPlan
from odenet.solvers.base import ResidualField


class Stage(nn.Module):
    """n fields integrated by ``solver``.

    fields: n modules (N, C_in, H, W) -> (N, C_out, H', W'); only fields[0] may change shape.
    shortcut: maps the stage input to the state shape (None: identity).
    projections: shortcut C, one module per step of ``solver.plan(n)`` (replaces shortcut).
    post_relu: apply ReLU to the state after every step's sum (post-activation networks).
    coefficients: the solver's learnable scheme coefficients (lm's k); None: the stage makes
    them with ``solver.make_coefficients(n, generator)`` (a solver without any gets none).
    substeps: m, a power of two; m > 1 refines the stage (module docstring): one-step schemes
    with an identity path and no projections only.
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
        coefficients: SchemeCoefficients | None = None,
        substeps: int = 1,
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
        self.steps = solver.plan(len(fields))
        if shortcut is not None and projections is not None:
            raise ConfigError("a stage takes a shortcut or per-step projections, not both")
        if projections is not None and len(projections) != len(self.steps):
            raise ConfigError(
                f"{len(projections)} projections for a stage of {len(self.steps)} steps; "
                "shortcut C needs one per step of plan(n)"
            )
        if not solver.residual and (shortcut is not None or projections is not None):
            raise ConfigError(f"{solver.name} has no identity path: its stage takes no shortcut")
        _check_substeps(solver, substeps, projections is not None)
        self.shortcut = shortcut
        self.projections = nn.ModuleList(projections) if projections is not None else None
        self.post_relu = post_relu
        self.substeps = substeps
        if coefficients is None:
            coefficients = solver.make_coefficients(len(fields), generator)
        self.coefficients = coefficients

    def plan(self) -> tuple[StepPlan, ...]:
        """The steps this stage takes: (scheme, fields consumed) in order."""
        return self.steps

    def forward(self, x: Tensor) -> Tensor:
        fields = list(self.fields)
        carry = Carry(self.coefficients)
        state, used = x, 0
        for i, plan in enumerate(self.steps):
            step_fields = fields[used : used + plan.fields]
            used += plan.fields
            m = 1 if i == 0 and self.shortcut is not None else self.substeps
            for _ in range(m):
                state = self._step(i, plan.scheme, state, step_fields, carry, m)
            if self.post_relu:
                state = F.relu(state)
        return state

    def _step(
        self,
        i: int,
        scheme: str,
        u: Tensor,
        fields: list[nn.Module],
        carry: Carry,
        m: int,
    ) -> Tensor:
        """One (sub-)step of step i from u, its fields' outputs scaled by 1/m."""
        step_fields: Sequence[ResidualField] = (
            fields if m == 1 else [_scaled(f, 1.0 / m) for f in fields]
        )
        start = partial(self._start, i, u)  # the solver calls it where its order puts it
        return self.solver.step(StepInput(i, scheme, u, start, step_fields, carry))

    def _start(self, i: int, u: Tensor) -> Tensor:
        """s of step i: its projection (C), the shortcut on the first step, else u itself."""
        if self.projections is not None:
            return self.projections[i](u)
        if i == 0 and self.shortcut is not None:
            return self.shortcut(u)
        return u

    def coefficient_report(self) -> dict | None:
        """The learnable scheme coefficients' current values (plain data), None without any."""
        return self.coefficients.report() if self.coefficients is not None else None

    def extra_repr(self) -> str:
        text = f"solver={self.solver.name}, fields={len(self.fields)}, post_relu={self.post_relu}"
        return text + (f", substeps={self.substeps}" if self.substeps != 1 else "")


def _scaled(field: nn.Module, scale: float) -> ResidualField:
    """``field``'s output times ``scale`` (exact: refinement scales by powers of two)."""
    return lambda y: field(y) * scale


def _check_substeps(solver: StackedSolver, m: object, projections: bool) -> None:
    """Refinement m: a power of two; m > 1 only where a step of h/m has a meaning."""
    if not isinstance(m, int) or isinstance(m, bool) or m < 1 or m & (m - 1):
        raise ConfigError(f"refinement m must be a power of two (1, 2, 4, 8, ...), got {m!r}")
    if m == 1:
        return
    if not solver.residual:
        raise ConfigError(
            f"{solver.name} has no identity path (x <- F(x)): there is no step x + F(x) to refine"
        )
    if solver.family == "multistep":
        raise ConfigError(
            f"{solver.name} is a two-step method: its steps chain through the previous state "
            "(and lm's k is learned per step), so repeating a step at h/m is not that scheme; "
            "refine a Runge-Kutta scheme (euler, heun, rk4, ..., learn-*)"
        )
    if projections:
        raise ConfigError(
            "shortcut C projects every step's state (s = P(u), not u): its steps are no "
            "x + F(x) to refine; refine a network with shortcut A or B"
        )


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
