"""Linear stability of every stacked scheme: pure math on complex numbers (numpy only).

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

``plain`` (no identity path) and the continuous schemes have no such region: ConfigError.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from odenet.errors import ConfigError
from odenet.solvers.base import Solver
from odenet.solvers.learned import LearnedRungeKutta
from odenet.solvers.registry import get
from odenet.solvers.runge_kutta import RungeKutta
from odenet.solvers.tableau import ButcherTableau

_TOL = 1e-12  # |R(z)| <= 1 + _TOL and |zeta| <= 1 + _TOL count as stable
_DOUBLE = 1e-6  # two roots on the unit circle closer than this are a double root (sqrt(_TOL))
_SCAN_STEP = 1e-2  # extents: scan resolution along the axis before bisecting
_SCAN_LENGTH = 50.0  # extents: how far along the axis the scan looks


def _tableau(solver: Solver) -> ButcherTableau | None:
    """The tableau of a Runge-Kutta scheme (its initial one when learnable); None otherwise."""
    return solver.tableau if isinstance(solver, (RungeKutta, LearnedRungeKutta)) else None


def _two_step(solver: Solver, k: float) -> tuple[float, float, float, float] | None:
    """(a1, a0, b1, b0) of a two-step scheme; lm at the fixed ``k``; None for other families."""
    from odenet.solvers.multistep import LMResNet, TwoStep

    if isinstance(solver, TwoStep):
        return solver.a1, solver.a0, solver.b1, solver.b0
    if isinstance(solver, LMResNet):
        return 1.0 - k, k, 1.0, 0.0
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
    r1, r2 = _two_step_roots(coeffs, zz)
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
    a1, a0, b1, b0 = coeffs2
    return (w * w - a1 * w - a0) / (b1 * w + b0)


def _extent(name: str, direction: complex, k: float) -> float:
    """Largest t >= 0 with direction * [0, t] inside the region (scan, then bisection)."""
    t = np.arange(0.0, _SCAN_LENGTH + _SCAN_STEP / 2, _SCAN_STEP)
    ok = in_region(name, direction * t, k=k)
    if not ok[0]:
        return 0.0
    bad = np.flatnonzero(~ok)
    if bad.size == 0:
        return float("inf")
    j = int(bad[0])
    if j == 1:
        return 0.0  # unstable at the first step of the scan: no interval to speak of
    lo, hi = float(t[j - 1]), float(t[j])
    while hi - lo > 1e-13:
        mid = 0.5 * (lo + hi)
        if in_region(name, np.array([direction * mid]), k=k)[0]:
            lo = mid
        else:
            hi = mid
    return lo


def real_extent(name: str, *, k: float = 0.0) -> float:
    """The left end of the stable real interval [x, 0] (rk4: -2.7853); 0.0 when none.

    Found by a scan of step 0.01 over [-50, 0] then bisection to 1e-13; an interval shorter
    than the scan step is reported as 0.0, one longer than 50 as -inf.
    """
    return -_extent(name, -1.0 + 0j, k) + 0.0  # + 0.0 turns -0.0 into 0.0


def imag_extent(name: str, *, k: float = 0.0) -> float:
    """The largest y with i [0, y] stable (rk4: 2.8284); 0.0 for euler and heun (as above)."""
    return _extent(name, 1j, k)


def extents(name: str) -> tuple[float, float] | None:
    """(real_extent, imag_extent) of a scheme with a region (lm at k = 0); None otherwise."""
    solver = get(name)
    if _tableau(solver) is None and _two_step(solver, 0.0) is None:
        return None
    return real_extent(name), imag_extent(name)
