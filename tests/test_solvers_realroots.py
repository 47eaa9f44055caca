"""Exact real roots and sign conditions (odenet.solvers.realroots) on constructed polynomials."""

from fractions import Fraction as F

import numpy as np
import pytest

from odenet.solvers import realroots as rr


def _from_roots(*roots) -> rr.Poly:
    p: rr.Poly = (F(1),)
    for r in roots:
        p = rr.mul(p, (-F(r), F(1)))
    return p


def _contains(root: rr.Root, x: F) -> bool:
    lo, hi = root
    return lo == hi == x or lo < x < hi


def test_arithmetic():
    p, q = rr.poly([1, 2, 0, 0]), rr.poly([-1, 0, 3])
    assert p == (1, 2) and rr.poly([0, 0]) == ()
    assert rr.add(p, q) == (0, 2, 3) and rr.mul(p, q) == (-1, -2, 3, 6)
    assert rr.evaluate(rr.mul(p, q), F(1, 3)) == rr.evaluate(p, F(1, 3)) * rr.evaluate(q, F(1, 3))
    assert rr.gcd(_from_roots(1, 2, 3), _from_roots(2, 3, 5)) == _from_roots(2, 3)
    assert rr.squarefree(_from_roots(1, 1, 1, 2, F(1, 3), F(1, 3))) == _from_roots(1, 2, F(1, 3))


def test_positive_roots_isolate_close_and_irrational_roots():
    close = [F(1, 3), F(1, 3) + F(1, 10**15), F(2), F(7, 2)]
    g = rr.mul(_from_roots(-5, *close), (F(-2), F(0), F(1)))  # and +-sqrt 2
    roots = rr.positive_roots(g)
    assert len(roots) == 5  # -5 and -sqrt 2 are not positive
    for root, x in zip(roots[:2], close[:2]):
        assert _contains(root, x)
    lo, hi = rr.refine(g, roots[2], F(1, 10**30))
    assert lo * lo < 2 < hi * hi and hi - lo <= F(1, 10**30)  # sqrt 2, exactly bracketed
    for root, x in zip(roots[3:], close[2:]):
        assert _contains(root, x)
    # Cauchy bound 4: the first bisection point 2 is itself a root, kept as (2, 2)
    two = rr.positive_roots(_from_roots(1, 2))
    assert two[1] == (2, 2) and _contains(two[0], F(1)) and len(two) == 2
    with pytest.raises(ValueError, match="g\\(0\\) != 0"):
        rr.positive_roots(_from_roots(0, 1))


def test_sign_at_a_root_of_another_polynomial():
    g = rr.squarefree(rr.mul(_from_roots(1, 3), (F(-2), F(0), F(1))))  # 1, sqrt 2, 3
    roots = rr.positive_roots(g)
    sqrt2 = roots[1]
    assert rr.sign_at((F(-2), F(0), F(1)), g, sqrt2) == 0  # shares the root
    assert rr.sign_at(_from_roots(F(141421, 100000)), g, sqrt2) == 1  # sqrt 2 > 1.41421
    assert rr.sign_at(_from_roots(F(141422, 100000)), g, sqrt2) == -1
    assert rr.sign_at((), g, sqrt2) == 0 and rr.sign_at((F(-3),), g, sqrt2) == -1


def test_reach_passes_a_touching_root_and_stops_at_a_crossing():
    """h <= 0 on [0, 2] with h(1) = 0 touched from below: the interval goes on to 2."""
    h = rr.scale(rr.mul(_from_roots(0, 1, 1), (F(2), F(-1))), -1)  # -t (t-1)^2 (2-t)
    assert rr.reach([h], lambda s: s[0] <= 0) == 2.0
    assert rr.reach([rr.scale(h, -1)], lambda s: s[0] <= 0) == 0.0  # fails right after 0


def test_reach_sees_an_interval_shorter_than_any_scan():
    h = _from_roots(0, F(1, 10**9))  # t (t - 1e-9) <= 0 on [0, 1e-9]
    assert rr.reach([h], lambda s: s[0] <= 0) == 1e-9
    assert rr.reach([(F(-1),)], lambda s: s[0] <= 0) == float("inf")
    assert rr.reach([_from_roots(F(1, 3))], lambda s: s[0] < 0) == pytest.approx(1 / 3, rel=1e-16)


def test_reach_of_two_conditions_ends_at_the_first_failure():
    """t <= 3 and t^2 <= 2: sqrt 2."""
    polys = [_from_roots(3), (F(-2), F(0), F(1))]
    assert rr.reach(polys, lambda s: s[0] <= 0 and s[1] <= 0) == pytest.approx(2**0.5, rel=1e-16)


def test_along_is_the_polynomial_on_the_ray():
    coeffs = [F(1), F(-2), F(1, 2), F(3)]
    for d in ((-1, 0), (0, 1), (1, 1)):
        re, im = rr.along(coeffs, d)
        t = F(7, 5)
        z = complex(*d) * float(t)
        want = sum(float(c) * z**k for k, c in enumerate(coeffs))
        got = complex(float(rr.evaluate(re, t)), float(rr.evaluate(im, t)))
        assert abs(got - want) < 1e-12


@pytest.mark.parametrize("seed", range(6))
def test_quadratic_in_disc_agrees_with_numpy_roots(seed):
    """zeta^2 + p(t) zeta + q(t), p and q complex-linear in t: the sign condition against
    numpy's root moduli at points where no root is within 1e-6 of the circle."""
    rng = np.random.default_rng(seed)
    p0, p1, q0, q1 = (complex(*np.round(rng.uniform(-1, 1, 2), 3)) for _ in range(4))

    def cpoly(c0: complex, c1: complex) -> rr.Complex:
        return rr.poly([F(c0.real), F(c1.real)]), rr.poly([F(c0.imag), F(c1.imag)])

    polys, holds = rr.quadratic_in_disc(cpoly(p0, p1), cpoly(q0, q1))
    checked = 0
    for t in np.linspace(0, 3, 301):
        moduli = np.abs(np.roots([1, p0 + p1 * t, q0 + q1 * t]))
        if np.min(np.abs(moduli - 1)) < 1e-6:
            continue
        signs = tuple(rr.sign(rr.evaluate(p, F(t))) for p in polys)
        assert holds(signs) == bool(np.all(moduli < 1)), t
        checked += 1
    assert checked > 250


def test_quadratic_in_disc_on_the_circle():
    """Leapfrog on the imaginary axis: zeta^2 - 2iy zeta - 1 has both roots on the circle,
    simple for y < 1, double at y = 1, one outside beyond."""
    p = ((), (F(0), F(-2)))  # -2 i t
    q = ((F(-1),), ())
    polys, holds = rr.quadratic_in_disc(p, q)
    assert rr.reach(polys, holds) == 1.0
    signs = [tuple(rr.sign(rr.evaluate(f, F(t))) for f in polys) for t in (F(1, 2), 1, 2)]
    assert [holds(s) for s in signs] == [True, False, False]
