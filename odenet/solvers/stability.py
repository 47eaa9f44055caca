"""Linear stability of every stacked scheme: pure math (numpy; exact rationals for extents).

For the test equation y' = lambda y and a step h, z = h lambda:

* a Runge-Kutta step (learn-<tableau>: at its initial tableau) maps y to R(z) y with
  R(z) = 1 + z b^T (I - z A)^{-1} 1. A is strictly lower triangular (nilpotent), so R is the
  polynomial 1 + sum_{k=1..s} (b^T A^{k-1} 1) z^k; the region of absolute stability is |R(z)| <= 1;
* a two-step method u+ = a1 u + a0 u- + z (b1 u + b0 u-) is stable where the roots of its
  characteristic polynomial zeta^2 - (a1 + z b1) zeta - (a0 + z b0) satisfy the root condition
  (all |zeta| <= 1, those on the unit circle simple). Its boundary locus is
  z(theta) = rho(e^{i theta}) / sigma(e^{i theta}) with rho(zeta) = zeta^2 - a1 zeta - a0 and
  sigma(zeta) = b1 zeta + b0. LM-ResNet at a fixed k is a1 = 1 - k, a0 = k, b1 = 1, b0 = 0
  (in the network the field is the step: z is the eigenvalue of the field itself).

The extents (how far the region reaches along the negative real and the imaginary axis) are
decided exactly, not by sampling |R| against a tolerance: along the axis |R|^2 - 1 (for
two-step schemes the Schur-Cohn polynomials of the root condition) is a polynomial in t with
rational coefficients, and Sturm sequences (``odenet.solvers.realroots``) find where the
condition first fails. On the imaginary axis the sign of the first nonzero coefficient of
|R(iy)|^2 - 1 decides whether there is any interval at all (nystrom5, butcher6 and huta6
have none).

``plain`` (no identity path) and the continuous schemes have no such region: ConfigError.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from fractions import Fraction

import numpy as np

from odenet.errors import ConfigError
from odenet.solvers import realroots as rr
from odenet.solvers.base import Solver
from odenet.solvers.learned import LearnedRungeKutta
from odenet.solvers.multistep import LMResNet, TwoStep
from odenet.solvers.registry import get
from odenet.solvers.runge_kutta import RungeKutta
from odenet.solvers.tableau import ButcherTableau

_TOL = 1e-12  # |R(z)| <= 1 + _TOL and |zeta| <= 1 + _TOL count as stable
_DOUBLE = 1e-6  # two roots on the unit circle closer than this are a double root (sqrt(_TOL))
# Every float64 tableau entry lies within a relative _ENTRY_EPS (256 units of 2^-53) of the
# exact number it stands for: rational entries are correctly rounded (1/2 unit); the sqrt
# entries of gill and cv8 are a few float64 operations whose cancellation costs up to ~31
# units (cv8's (-504 + 115 sqrt 21)/70), so the budget has a margin of 8.
# tests/test_solvers_extents.py checks every tableau against 50-digit evaluations of its own
# source expressions.
_ENTRY_EPS = Fraction(256, 2**53)


def _tableau(solver: Solver) -> ButcherTableau | None:
    """The tableau of a Runge-Kutta scheme (its initial one when learnable); None otherwise."""
    return solver.tableau if isinstance(solver, (RungeKutta, LearnedRungeKutta)) else None


def _two_step(solver: Solver, k: float) -> tuple[Fraction, ...] | None:
    """(a1, a0, b1, b0) of a two-step scheme, exactly; lm at the fixed ``k`` (a1 = 1 - k
    exactly, so that zeta = 1 stays a root at z = 0); None for other families."""
    if isinstance(solver, TwoStep):
        return tuple(Fraction(x) for x in (solver.a1, solver.a0, solver.b1, solver.b0))
    if isinstance(solver, LMResNet):
        return 1 - Fraction(k), Fraction(k), Fraction(1), Fraction(0)
    return None


def _refuse(solver: Solver) -> ConfigError:
    if solver.family == "plain":
        why = "it has no identity path, so x <- F(x) is no discretisation of an ODE"
    elif solver.family == "continuous":
        why = "it is a continuous (torchdiffeq) scheme whose steps are chosen adaptively"
    else:
        why = f"its family {solver.family!r} has no linear-stability model here"
    return ConfigError(
        f"scheme {solver.name!r} has no stability region: {why}; use a Runge-Kutta or "
        "multistep scheme (see `odenet solvers`)"
    )


def polynomial(tableau: ButcherTableau) -> np.ndarray:
    """Coefficients of R(z), lowest degree first: [1, b^T 1, b^T A 1, ..., b^T A^{s-1} 1]."""
    s = tableau.stages
    a = np.zeros((s, s))
    for i, row in enumerate(tableau.a):
        a[i, : len(row)] = row
    b = np.asarray(tableau.b, dtype=np.float64)
    coeffs = [1.0]
    v = np.ones(s)
    for _ in range(s):
        coeffs.append(float(b @ v))
        v = a @ v
    return np.asarray(coeffs)


def _rk_polynomial(name: str) -> np.ndarray:
    solver = get(name)
    tab = _tableau(solver)
    if tab is None:
        if _two_step(solver, 0.0) is not None:
            raise ConfigError(
                f"scheme {solver.name!r} is a multistep method: it has no one-step stability "
                "function R(z); use in_region() or boundary_locus() (root condition)"
            )
        raise _refuse(solver)
    return polynomial(tab)


def stability_function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """R(z) of a Runge-Kutta scheme of the registry, as a callable on complex arrays.

    The callable maps an array of any shape to complex128 of the same shape. Multistep,
    plain and continuous schemes raise ConfigError.
    """
    coeffs = _rk_polynomial(name)[::-1].copy()  # highest degree first for np.polyval

    def R(z: np.ndarray) -> np.ndarray:
        return np.polyval(coeffs, np.asarray(z, dtype=np.complex128))

    return R


def _two_step_roots(coeffs: tuple[float, float, float, float], z: np.ndarray):
    """The two roots of zeta^2 - (a1 + z b1) zeta - (a0 + z b0), elementwise."""
    a1, a0, b1, b0 = coeffs
    p = a1 + z * b1
    q = a0 + z * b0
    d = np.sqrt(p * p + 4.0 * q)
    return (p + d) / 2.0, (p - d) / 2.0


def in_region(name: str, z: np.ndarray, *, k: float = 0.0) -> np.ndarray:
    """Whether each z = h lambda lies in the scheme's region of absolute stability.

    Runge-Kutta: |R(z)| <= 1 + 1e-12. Two-step (ab2, leapfrog, lm at ``k``): the root
    condition, with roots on the unit circle closer than 1e-6 treated as a double root.
    Returns a bool array of z's shape. plain and continuous schemes raise ConfigError.
    """
    solver = get(name)
    zz = np.asarray(z, dtype=np.complex128)
    if _tableau(solver) is not None:
        return np.abs(stability_function(name)(zz)) <= 1.0 + _TOL
    coeffs = _two_step(solver, float(k))
    if coeffs is None:
        raise _refuse(solver)
    r1, r2 = _two_step_roots(tuple(map(float, coeffs)), zz)
    m1, m2 = np.abs(r1), np.abs(r2)
    inside = (m1 <= 1.0 + _TOL) & (m2 <= 1.0 + _TOL)
    double_on_circle = (m1 >= 1.0 - _DOUBLE) & (np.abs(r1 - r2) <= _DOUBLE)
    return inside & ~double_on_circle


def _track(roots: list[np.ndarray]) -> list[np.ndarray]:
    """Order each theta's roots so that branch j moves continuously (greedy nearest match)."""
    branches = [roots[0]]
    for r in roots[1:]:
        prev = branches[-1]
        left = list(range(len(r)))
        order = []
        for p in prev:
            j = min(left, key=lambda i: abs(r[i] - p))
            left.remove(j)
            order.append(j)
        branches.append(r[order])
    return [np.asarray(b) for b in np.asarray(branches).T]


def boundary_locus(name: str, points: int = 400, *, k: float = 0.0) -> np.ndarray:
    """The boundary of the stability region as complex points, ready to draw as a line.

    Runge-Kutta: the curves |R(z)| = 1, i.e. every root z of R(z) = e^{i theta} for
    ``points`` angles in [0, 2 pi], tracked into s arcs joined by NaN (a break in a drawn
    line). Two-step: z(theta) = rho(e^{i theta}) / sigma(e^{i theta}), one closed curve.
    """
    if not isinstance(points, int) or isinstance(points, bool) or points < 8:
        raise ConfigError(f"points must be an integer >= 8, got {points!r}")
    solver = get(name)
    theta = np.linspace(0.0, 2.0 * np.pi, points)
    w = np.exp(1j * theta)
    if _tableau(solver) is not None:
        coeffs = _rk_polynomial(name)
        scale = np.abs(coeffs).max()
        deg = max(i for i, c in enumerate(coeffs) if abs(c) > _TOL * scale)
        high_first = coeffs[: deg + 1][::-1].astype(np.complex128)
        roots = []
        for wi in w:
            c = high_first.copy()
            c[-1] -= wi
            roots.append(np.roots(c))
        arcs = _track(roots)
        out: list[np.ndarray] = []
        for arc in arcs:
            out += [arc, np.array([np.nan + 1j * np.nan])]
        return np.concatenate(out[:-1])
    coeffs2 = _two_step(solver, float(k))
    if coeffs2 is None:
        raise _refuse(solver)
    a1, a0, b1, b0 = map(float, coeffs2)
    return (w * w - a1 * w - a0) / (b1 * w + b0)


def _exact_coefficients(tableau: ButcherTableau) -> tuple[list[Fraction], list[Fraction]]:
    """The coefficients c_k = b^T A^{k-1} 1 of R(z) from the float64 entries, exactly, and
    their majorants |b|^T |A|^{k-1} 1 (for the rounding bound)."""
    a = [[Fraction(x) for x in row] for row in tableau.a]
    b = [Fraction(x) for x in tableau.b]
    out = []
    for entries, weights in ((a, b), ([[abs(x) for x in r] for r in a], [abs(x) for x in b])):
        coeffs, v = [Fraction(1)], [Fraction(1)] * len(weights)
        for _ in weights:
            coeffs.append(sum((w * x for w, x in zip(weights, v)), Fraction(0)))
            v = [sum((x * y for x, y in zip(row, v)), Fraction(0)) for row in entries]
        out.append(coeffs)
    return out[0], out[1]


def _settle(coeffs: rr.Poly, bounds: rr.Poly) -> rr.Poly:
    """Coefficients within their rounding bound set to exactly zero, the others rounded to
    float64 (they are only known to _ENTRY_EPS, and short fractions keep Sturm cheap)."""
    return rr.poly(
        0 if abs(c) <= bound else Fraction(float(c))
        for c, bound in zip(coeffs, bounds + (Fraction(0),) * len(coeffs))
    )


def _rk_real(tableau: ButcherTableau) -> rr.Poly:
    """R(-t) as a polynomial in t. Entries within a relative _ENTRY_EPS of their exact values
    move c_k by at most ((1 + eps)^k - 1) cbar_k <= 2 k eps cbar_k."""
    c, cbar = _exact_coefficients(tableau)
    bounds = rr.poly(2 * k * _ENTRY_EPS * m for k, m in enumerate(cbar))
    return _settle(rr.along(c, (-1, 0))[0], bounds)


def _rk_imag_gain(tableau: ButcherTableau) -> rr.Poly:
    """|R(iy)|^2 - 1 as a polynomial in w = y^2 (it is even in y).

    The coefficient of y^n is sum_{k+l=n} c_k c_l Re(i^k conj(i^l)); the rounding of the
    entries moves it by at most 2 n eps sum_{k+l=n} cbar_k cbar_l (first order, doubled for
    the rest), and a coefficient within that bound is zero. The order conditions make the low
    ones exactly zero (|R(iy)|^2 - 1 = O(y^{p+1})), so the sign of the first nonzero one
    decides whether the axis leaves the region at once.
    """
    c, cbar = _exact_coefficients(tableau)
    gain = rr.add(rr.abs2(rr.along(c, (0, 1))), (Fraction(-1),))
    size = rr.mul(rr.poly(cbar), rr.poly(cbar))
    bounds = rr.poly(2 * n * _ENTRY_EPS * m for n, m in enumerate(size))
    assert not any(gain[1::2]), "|R(iy)|^2 is even in y"
    return _settle(gain, bounds)[::2]


@functools.cache
def _rk_extent(tableau: ButcherTableau, d: tuple[int, int]) -> float:
    if d == (-1, 0):  # -1 <= R(-t) <= 1: two conditions of degree s
        r = _rk_real(tableau)
        below = rr.reach([rr.add(r, (Fraction(-1),))], lambda s: s[0] <= 0)
        return min(below, rr.reach([rr.add(r, (Fraction(1),))], lambda s: s[0] >= 0))
    return math.sqrt(rr.reach([_rk_imag_gain(tableau)], lambda s: s[0] <= 0))  # in w = y^2


@functools.cache
def _two_step_extent(coeffs: tuple[Fraction, ...], d: tuple[int, int]) -> float:
    a1, a0, b1, b0 = coeffs
    # zeta^2 - (a1 + z b1) zeta - (a0 + z b0) at z = d t
    return rr.reach(*rr.quadratic_in_disc(rr.along((-a1, -b1), d), rr.along((-a0, -b0), d)))


def _extent(name: str, d: tuple[int, int], k: float) -> float:
    """Largest t >= 0 with d * [0, t] inside the region of ``name`` (d = -1 or i), exactly."""
    solver = get(name)
    tab = _tableau(solver)
    if tab is not None:
        return _rk_extent(tab, d)
    coeffs = _two_step(solver, k)
    if coeffs is None:
        raise _refuse(solver)
    return _two_step_extent(coeffs, d)


def real_extent(name: str, *, k: float = 0.0) -> float:
    """The left end x of the stable real interval [x, 0] (rk4: -2.7853); 0.0 when none.

    Exact: the first root of |R(-t)|^2 - 1 (or of the root-condition polynomials of a
    two-step scheme) beyond which the interval leaves the region, isolated by Sturm
    sequences over the exact float64 coefficients and rounded once to float64.
    """
    return -_extent(name, (-1, 0), float(k)) + 0.0  # + 0.0 turns -0.0 into 0.0


def imag_extent(name: str, *, k: float = 0.0) -> float:
    """The largest y with i [0, y] stable (rk4: 2 sqrt 2, rk3: sqrt 3); 0.0 when the first
    nonzero coefficient of |R(iy)|^2 - 1 is positive (euler, heun, nystrom5, butcher6, huta6).
    Exact as real_extent."""
    return _extent(name, (0, 1), float(k))


def extents(name: str) -> tuple[float, float] | None:
    """(real_extent, imag_extent) of a scheme with a region (lm at k = 0); None otherwise."""
    solver = get(name)
    if _tableau(solver) is None and _two_step(solver, 0.0) is None:
        return None
    return real_extent(name), imag_extent(name)
