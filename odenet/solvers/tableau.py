"""Butcher tableaux for explicit Runge-Kutta methods: frozen, validated data.

A tableau (c, A, b) defines one step of an explicit RK method. For y' = f(t, y) and step h:

    k_i = f(t + c_i h, y + h * sum_{j<i} a_ij k_j),    y_next = y + h * sum_i b_i k_i.

Building a tableau checks it is a consistent explicit method; the standard ones below are
module constants, never rebuilt inside a step.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from odenet.errors import ConfigError

_TOL = 1e-12


class TableauError(ConfigError):
    """A Butcher tableau that is not a consistent explicit Runge-Kutta method."""


@dataclass(frozen=True)
class ButcherTableau:
    """Explicit Runge-Kutta coefficients.

    c: nodes, length s.  a: s rows, row i holding a_i0..a_i(i-1) (strictly lower triangular,
    so row i has exactly i entries).  b: weights, length s.
    """

    c: tuple[float, ...]
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]

    def __post_init__(self) -> None:
        s = len(self.b)
        if s == 0:
            raise TableauError("tableau has no stages: b is empty")
        if len(self.c) != s or len(self.a) != s:
            raise TableauError(
                f"tableau sizes disagree: len(c)={len(self.c)}, len(a)={len(self.a)}, "
                f"len(b)={s}; all three must equal the number of stages"
            )
        for i, row in enumerate(self.a):
            if len(row) != i:
                raise TableauError(
                    f"row {i} of A has {len(row)} entries; an explicit method needs exactly {i} "
                    "(A strictly lower triangular)"
                )
            if abs(math.fsum(row) - self.c[i]) > _TOL:
                raise TableauError(
                    f"row {i} of A sums to {math.fsum(row)!r} but c[{i}] = {self.c[i]!r}; "
                    "each row of A must sum to its node"
                )
        if abs(math.fsum(self.b) - 1.0) > _TOL:
            raise TableauError(f"weights b sum to {math.fsum(self.b)!r}; they must sum to 1")

    @property
    def stages(self) -> int:
        return len(self.b)


_S2 = math.sqrt(2.0)

EULER = ButcherTableau(c=(0.0,), a=((),), b=(1.0,))
MIDPOINT = ButcherTableau(c=(0.0, 0.5), a=((), (0.5,)), b=(0.0, 1.0))
HEUN = ButcherTableau(c=(0.0, 1.0), a=((), (1.0,)), b=(0.5, 0.5))
RALSTON = ButcherTableau(c=(0.0, 2 / 3), a=((), (2 / 3,)), b=(0.25, 0.75))
RK3 = ButcherTableau(  # Kutta's third-order method
    c=(0.0, 0.5, 1.0), a=((), (0.5,), (-1.0, 2.0)), b=(1 / 6, 4 / 6, 1 / 6)
)
HEUN3 = ButcherTableau(c=(0.0, 1 / 3, 2 / 3), a=((), (1 / 3,), (0.0, 2 / 3)), b=(0.25, 0.0, 0.75))
RK4 = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), (0.0, 0.5), (0.0, 0.0, 1.0)),
    b=(1 / 6, 1 / 3, 1 / 3, 1 / 6),
)
RK38 = ButcherTableau(  # Kutta's 3/8 rule (torchdiffeq's "rk4")
    c=(0.0, 1 / 3, 2 / 3, 1.0),
    a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
    b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
)
GILL = ButcherTableau(
    c=(0.0, 0.5, 0.5, 1.0),
    a=((), (0.5,), ((_S2 - 1) / 2, (2 - _S2) / 2), (0.0, -_S2 / 2, 1 + _S2 / 2)),
    b=(1 / 6, (2 - _S2) / 6, (2 + _S2) / 6, 1 / 6),
)
