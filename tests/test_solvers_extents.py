"""Stability extents against closed forms and a 50-digit computation from the tableau sources.

The extents are decided exactly (odenet.solvers.realroots); here they are checked against
numbers computed another way: the tableaux re-evaluated at 50 digits (tests/tableau_digits.py),
|R(iy)|^2 - 1 and R(-t) evaluated in decimal arithmetic, and for the two-step schemes the root
moduli from numpy's companion matrices.
"""

import math
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import pytest
from tableau_digits import CONTEXT, digits_of

import odenet.solvers as S
from odenet.solvers.catalog import solver_table
from odenet.solvers.stability import (
    _ENTRY_EPS,
    _rk_imag_gain,
    _tableau,
    imag_extent,
    real_extent,
)

RK = [n for n in S.available() if _tableau(S.get(n)) is not None]  # learn-* included
ULP = 2.0**-52  # float64 spacing at 1


def _c(name: str) -> list[Decimal]:
    """c_k = b^T A^{k-1} 1, k = 0..s, from the 50-digit tableau."""
    d = digits_of(_tableau(S.get(name)))
    s = len(d["b"])
    a = [list(row) + [Decimal(0)] * (s - len(row)) for row in d["a"]]
    with localcontext(CONTEXT):
        out, v = [Decimal(1)], [Decimal(1)] * s
        for _ in range(s):
            out.append(sum(w * x for w, x in zip(d["b"], v)))
            v = [sum(x * y for x, y in zip(row, v)) for row in a]
    return out


def _imag_gain_coefficients(c: list[Decimal]) -> list[Decimal]:
    """|R(iy)|^2 - 1 = E(y)^2 + O(y)^2 - 1 with R(iy) = E + i O, coefficients of y^n."""
    sign = [(-1) ** (k // 2) for k in range(len(c))]  # i^k = sign (k even), i sign (k odd)
    out = [Decimal(0)] * (2 * len(c) - 1)
    with localcontext(CONTEXT):
        even = [c[k] * sign[k] if k % 2 == 0 else Decimal(0) for k in range(len(c))]
        odd = [c[k] * sign[k] if k % 2 == 1 else Decimal(0) for k in range(len(c))]
        for i in range(len(c)):
            for j in range(len(c)):
                out[i + j] += even[i] * even[j] + odd[i] * odd[j]
        out[0] -= 1
    return out


def _horner(coeffs: list[Decimal], x: Decimal) -> Decimal:
    with localcontext(CONTEXT):
        acc = Decimal(0)
        for a in reversed(coeffs):
            acc = acc * x + a
    return acc


def test_tableau_entries_within_the_stated_rounding_budget():
    """The premise of the zero test in _rk_imag_gain: every float entry is within a relative
    _ENTRY_EPS of the exact number its source expression stands for."""
    worst = Fraction(0)
    for name in RK:
        tab, d = _tableau(S.get(name)), digits_of(_tableau(S.get(name)))
        floats = [*tab.c, *(x for row in tab.a for x in row), *tab.b]
        exact = [*d["c"], *(x for row in d["a"] for x in row), *d["b"]]
        for x, e in zip(floats, exact, strict=True):
            if e == 0:
                assert x == 0.0, name
                continue
            worst = max(worst, abs((Fraction(x) - Fraction(e)) / Fraction(e)))
    assert worst <= _ENTRY_EPS
    assert worst > 2.0**-53  # the sqrt tableaux do lose more than correct rounding


@pytest.mark.parametrize("name", ["rk4", "learn-rk4", "rk38", "gill"])
def test_imag_extent_of_order_4_is_2_sqrt_2(name):
    """|R(iy)|^2 = 1 - y^6/72 + y^8/576: the interval ends at y^2 = 8."""
    assert abs(imag_extent(name) - 2 * math.sqrt(2)) <= 2 * ULP * 2 * math.sqrt(2)


@pytest.mark.parametrize("name", ["rk3", "learn-rk3", "heun3"])
def test_imag_extent_of_order_3_is_sqrt_3(name):
    """|R(iy)|^2 = 1 - y^4/12 + y^6/36: the interval ends at y^2 = 3."""
    assert abs(imag_extent(name) - math.sqrt(3)) <= 2 * ULP * math.sqrt(3)


@pytest.mark.parametrize(
    "name", ["euler", "heun", "midpoint", "ralston", "learn-euler", "learn-heun"]
)
def test_order_1_and_2_have_no_imaginary_interval(name):
    """|R(iy)|^2 = 1 + y^2 (euler), 1 + y^4/4 (order 2 in two stages): exactly 0."""
    assert imag_extent(name) == 0.0
    assert real_extent(name) == -2.0


@pytest.mark.parametrize(
    "name, power, leading",
    [
        ("nystrom5", 6, Fraction(1, 360)),
        ("huta6", 8, Fraction(31, 120960)),
        ("butcher6", 8, None),  # ~1.27e-3 (irrational-looking: taken from the 50 digits)
    ],
)
def test_empty_imaginary_interval_decided_by_the_leading_coefficient(name, power, leading):
    """The first nonzero coefficient of |R(iy)|^2 - 1 is positive: no interval, for the
    scheme and its learn-* copy (the scan used to report 0.0299 / 0.0970 / 0.0794)."""
    exact = _imag_gain_coefficients(_c(name))
    first = next(n for n, g in enumerate(exact) if abs(g) > Decimal("1e-40"))
    assert first == power and exact[first] > 0
    if leading is not None:
        assert abs(Fraction(exact[first]) - leading) < Fraction(1, 10**40)
    gain = _rk_imag_gain(_tableau(S.get(name)))  # in w = y^2, after the zero test
    assert gain[: power // 2] == (0,) * (power // 2)
    assert abs(gain[power // 2] / Fraction(exact[first]) - 1) < 1e-13
    assert imag_extent(name) == 0.0 and imag_extent("learn-" + name) == 0.0


@pytest.mark.parametrize("name", RK)
def test_imag_extent_against_50_digits(name):
    """Zero exactly when the first nonzero 50-digit coefficient is positive; otherwise
    |R(iy)|^2 <= 1 on (0, Y] and > 1 just beyond, and Y is that root to float64 accuracy."""
    y_ext = imag_extent(name)
    coeffs = _imag_gain_coefficients(_c(name))
    first = next(n for n, g in enumerate(coeffs) if abs(g) > Decimal("1e-40"))
    assert first >= S.get(name).order + 1  # |R(iy)|^2 - 1 = O(y^{p+1})
    if coeffs[first] > 0:
        assert y_ext == 0.0
        return
    assert y_ext > 0.5  # no tolerance-sized interval
    for y in np.linspace(0, y_ext * (1 - 1e-12), 1001)[1:]:
        assert _horner(coeffs, Decimal(float(y))) <= 0, y
    lo, hi = Decimal(y_ext * (1 - 1e-12)), Decimal(y_ext * (1 + 1e-12))
    assert _horner(coeffs, hi) > 0
    with localcontext(CONTEXT):
        for _ in range(80):
            mid = (lo + hi) / 2
            lo, hi = (mid, hi) if _horner(coeffs, mid) <= 0 else (lo, mid)
    # the float tableau is the exact one to _ENTRY_EPS; the root moves less than 10x that
    assert abs(Fraction(lo) - Fraction(y_ext)) <= 10 * _ENTRY_EPS * Fraction(y_ext)


@pytest.mark.parametrize("name", RK)
def test_real_extent_against_50_digits(name):
    """|R(-t)| <= 1 on (0, X] and > 1 just beyond, at 50 digits."""
    x_ext = -real_extent(name)
    c = _c(name)
    real = [ck if k % 2 == 0 else -ck for k, ck in enumerate(c)]  # R(-t)
    for t in np.linspace(0, x_ext * (1 - 1e-12), 1001)[1:]:
        assert abs(_horner(real, Decimal(float(t)))) <= 1, t
    assert abs(_horner(real, Decimal(x_ext * (1 + 1e-12)))) > 1


def test_real_extents_closed_forms():
    assert real_extent("rk4") == pytest.approx(-2.785293563405282, rel=4 * ULP)
    assert real_extent("rk3") == pytest.approx(-2.5127453266183286, rel=4 * ULP)
    for name in ("euler", "heun", "midpoint", "ralston", "lm"):
        assert real_extent(name) == -2.0
    assert (real_extent("ab2"), imag_extent("ab2")) == (-1.0, 0.0)
    assert (real_extent("leapfrog"), imag_extent("leapfrog")) == (0.0, 1.0)


def _max_root(coeffs, z: complex) -> float:
    a1, a0, b1, b0 = coeffs
    return float(np.max(np.abs(np.roots([1.0, -(a1 + z * b1), -(a0 + z * b0)]))))


@pytest.mark.parametrize(
    "name, k, coeffs",
    [
        ("ab2", 0.0, (1.0, 0.0, 1.5, -0.5)),
        ("leapfrog", 0.0, (0.0, 1.0, 2.0, 0.0)),
        *[("lm", k, (1 - k, k, 1.0, 0.0)) for k in (-0.3, -0.1, 0.0, 0.2, 0.5, 0.9)],
    ],
)
def test_two_step_extents_against_root_moduli(name, k, coeffs):
    """Below the extent numpy's roots stay in the disc; just beyond one leaves it."""
    for direction, ext in ((-1.0, -real_extent(name, k=k)), (1j, imag_extent(name, k=k))):
        if ext == 0.0:
            assert _max_root(coeffs, direction * 1e-2) > 1 + 1e-12, (direction, k)
            continue
        for t in np.linspace(0, ext * (1 - 1e-6), 500)[1:]:
            assert _max_root(coeffs, direction * t) <= 1 + 1e-9, (direction, t)
        assert _max_root(coeffs, direction * ext * (1 + 1e-6)) > 1 + 1e-12, (direction, k)
    if name == "lm" and -1 < k < 1:
        # zeta = -1 at z = -2 + 2k ends the real interval
        assert real_extent("lm", k=k) == pytest.approx(-2 + 2 * k, rel=4 * ULP, abs=4 * ULP)


def test_listing_has_no_tolerance_sized_extent():
    """Every extent in `odenet solvers` is 0.0 exactly or a real interval (the old scan
    reported tolerance-sized ones, 0.03-0.1)."""
    for row in solver_table():
        for key in ("real_extent", "imag_extent"):
            value = row[key]
            assert value is None or value == 0.0 or abs(value) > 0.5, (row["name"], key, value)
