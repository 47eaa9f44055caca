"""Butcher tableaux of orders 5, 6 and 8 (the higher-order stackings of HO-ResNet, Luo et al.
2021), stored as exact fractions and sqrt(21) terms evaluated in float64 and validated as data
by ButcherTableau. Each is checked against every rooted-tree order condition of its order in
tests/test_solvers_order.py.

* NYSTROM5: Kutta's fifth-order method as corrected by Nystrom (1925); 6 stages. The order-5
  scheme of HO-ResNet.
* BUTCHER5: Butcher's fifth-order method (Butcher 1964; Butcher, Numerical Methods for
  ODEs, 2008); 6 stages.
* BUTCHER6: Butcher's sixth-order method in 7 stages, the fewest for order 6 (Butcher 1964).
* HUTA6: Huta's sixth-order method in 8 stages (Huta 1956/57; the coefficients as given by
  Sarafyan, J. Math. Anal. Appl. 40, 1972); its weights are Weddle's rule. HO-ResNet's
  order-6 scheme.
* COOPER_VERNER8: Cooper and Verner's eighth-order method in 11 stages (SIAM J. Numer. Anal.
  9(3), 1972), with sqrt(21) in its nodes and coefficients.
"""

from __future__ import annotations

import math

from odenet.solvers.tableau import ButcherTableau

NYSTROM5 = ButcherTableau(
    c=(0.0, 1 / 3, 2 / 5, 1.0, 2 / 3, 4 / 5),
    a=(
        (),
        (1 / 3,),
        (4 / 25, 6 / 25),
        (1 / 4, -3.0, 15 / 4),
        (2 / 27, 10 / 9, -50 / 81, 8 / 81),
        (2 / 25, 12 / 25, 2 / 15, 8 / 75, 0.0),
    ),
    b=(23 / 192, 0.0, 125 / 192, 0.0, -27 / 64, 125 / 192),
)

BUTCHER5 = ButcherTableau(
    c=(0.0, 1 / 4, 1 / 4, 1 / 2, 3 / 4, 1.0),
    a=(
        (),
        (1 / 4,),
        (1 / 8, 1 / 8),
        (0.0, -1 / 2, 1.0),
        (3 / 16, 0.0, 0.0, 9 / 16),
        (-3 / 7, 2 / 7, 12 / 7, -12 / 7, 8 / 7),
    ),
    b=(7 / 90, 0.0, 32 / 90, 12 / 90, 32 / 90, 7 / 90),
)

BUTCHER6 = ButcherTableau(
    c=(0.0, 1 / 3, 2 / 3, 1 / 3, 1 / 2, 1 / 2, 1.0),
    a=(
        (),
        (1 / 3,),
        (0.0, 2 / 3),
        (1 / 12, 1 / 3, -1 / 12),
        (-1 / 16, 9 / 8, -3 / 16, -3 / 8),
        (0.0, 9 / 8, -3 / 8, -3 / 4, 1 / 2),
        (9 / 44, -9 / 11, 63 / 44, 18 / 11, 0.0, -16 / 11),
    ),
    b=(11 / 120, 0.0, 27 / 40, 27 / 40, -4 / 15, -4 / 15, 11 / 120),
)

HUTA6 = ButcherTableau(
    c=(0.0, 1 / 9, 1 / 6, 1 / 3, 1 / 2, 2 / 3, 5 / 6, 1.0),
    a=(
        (),
        (1 / 9,),
        (1 / 24, 1 / 8),
        (1 / 6, -1 / 2, 2 / 3),
        (1 / 8, 0.0, 0.0, 3 / 8),
        (-4 / 3, -7.0, 46 / 3, -29 / 3, 10 / 3),
        (-1 / 9, 11 / 8, -7 / 6, 0.0, 11 / 18, 1 / 8),
        (107 / 82, -243 / 82, 0.0, 177 / 41, -86 / 41, -18 / 41, 36 / 41),
    ),
    b=(41 / 840, 0.0, 9 / 35, 9 / 280, 34 / 105, 9 / 280, 9 / 35, 41 / 840),
)

_R = math.sqrt(21.0)

COOPER_VERNER8 = ButcherTableau(
    c=(
        0.0, 1 / 2, 1 / 2, (7 + _R) / 14, (7 + _R) / 14, 1 / 2, (7 - _R) / 14, (7 - _R) / 14,
        1 / 2, (7 + _R) / 14, 1.0,
    ),
    a=(
        (),
        (1 / 2,),
        (1 / 4, 1 / 4),
        (1 / 7, (-7 - 3 * _R) / 98, (21 + 5 * _R) / 49),
        ((11 + _R) / 84, 0.0, (18 + 4 * _R) / 63, (21 - _R) / 252),
        ((5 + _R) / 48, 0.0, (9 + _R) / 36, (-231 + 14 * _R) / 360, (63 - 7 * _R) / 80),
        (
            (10 - _R) / 42, 0.0, (-432 + 92 * _R) / 315, (633 - 145 * _R) / 90,
            (-504 + 115 * _R) / 70, (63 - 13 * _R) / 35,
        ),
        (1 / 14, 0.0, 0.0, 0.0, (14 - 3 * _R) / 126, (13 - 3 * _R) / 63, 1 / 9),
        (
            1 / 32, 0.0, 0.0, 0.0, (91 - 21 * _R) / 576, 11 / 72, (-385 - 75 * _R) / 1152,
            (63 + 13 * _R) / 128,
        ),
        (
            1 / 14, 0.0, 0.0, 0.0, 1 / 9, (-733 - 147 * _R) / 2205, (515 + 111 * _R) / 504,
            (-51 - 11 * _R) / 56, (132 + 28 * _R) / 245,
        ),
        (
            0.0, 0.0, 0.0, 0.0, (-42 + 7 * _R) / 18, (-18 + 28 * _R) / 45, (-273 - 53 * _R) / 72,
            (301 + 53 * _R) / 72, (28 - 28 * _R) / 45, (49 - 7 * _R) / 18,
        ),
    ),
    b=(1 / 20, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 49 / 180, 16 / 45, 49 / 180, 1 / 20),
)  # fmt: skip
