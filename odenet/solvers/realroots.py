"""Real roots and signs of polynomials with rational coefficients, decided exactly.

A polynomial is a tuple of ``fractions.Fraction``, lowest degree first, without trailing
zeros; the zero polynomial is ``()``. Every float64 is a dyadic rational, so a polynomial
built from float data converts exactly (``Fraction(x)``) and everything below is exact:
Sturm's theorem counts the distinct real roots of a square-free polynomial in (a, b], which
isolates each root in an interval with rational ends; bisection on the sign then narrows it
as far as asked; the sign of another polynomial at such a root is zero exactly when the two
share that root (their gcd vanishes there) and otherwise is read on an isolating interval
narrowed until it holds none of the other polynomial's roots.

On top of that: complex polynomials in a real t (pairs of real ones), ``reach``, the sup of
the interval [0, t] on which a condition on the signs of some polynomials holds throughout,
and ``quadratic_in_disc``, the root condition of a quadratic as such a sign condition. Used by
``odenet.solvers.stability`` for the extents of the stability regions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from fractions import Fraction

Poly = tuple[Fraction, ...]
Root = tuple[Fraction, Fraction]  # (lo, hi): one root in (lo, hi), neither end a root;
# lo == hi when the root is that rational number
Complex = tuple[Poly, Poly]  # a complex polynomial in a real t: (real part, imaginary part)
Signs = tuple[int, ...]  # the signs (-1, 0, 1) of a list of polynomials at one point


def poly(coeffs: Iterable[Fraction | float | int]) -> Poly:
    """The polynomial with these coefficients (lowest degree first), exactly."""
    out = [Fraction(c) for c in coeffs]
    while out and out[-1] == 0:
        out.pop()
    return tuple(out)


def add(p: Poly, q: Poly) -> Poly:
    n = max(len(p), len(q))
    return poly((p[i] if i < len(p) else 0) + (q[i] if i < len(q) else 0) for i in range(n))


def mul(p: Poly, q: Poly) -> Poly:
    if not p or not q:
        return ()
    out = [Fraction(0)] * (len(p) + len(q) - 1)
    for i, a in enumerate(p):
        for j, b in enumerate(q):
            out[i + j] += a * b
    return poly(out)


def scale(p: Poly, c: Fraction | int) -> Poly:
    return poly(c * a for a in p)


def evaluate(p: Poly, x: Fraction) -> Fraction:
    acc = Fraction(0)
    for a in reversed(p):
        acc = acc * x + a
    return acc


def sign(x: Fraction) -> int:
    return (x > 0) - (x < 0)


def _divmod(p: Poly, q: Poly) -> tuple[Poly, Poly]:
    """Quotient and remainder of p / q (q nonzero)."""
    rem = list(p)
    quot = [Fraction(0)] * max(len(p) - len(q) + 1, 0)
    for i in range(len(quot) - 1, -1, -1):
        c = rem[i + len(q) - 1] / q[-1]
        quot[i] = c
        for j, b in enumerate(q):
            rem[i + j] -= c * b
    return poly(quot), poly(rem[: len(q) - 1])


def _monic(p: Poly) -> Poly:
    return scale(p, 1 / p[-1])


def gcd(p: Poly, q: Poly) -> Poly:
    """Monic greatest common divisor (``()`` when both are zero)."""
    while q:
        rem = _divmod(p, q)[1]
        p, q = q, _monic(rem) if rem else ()
    return _monic(p) if p else ()


def squarefree(p: Poly) -> Poly:
    """p divided by gcd(p, p'): the same distinct roots, each simple."""
    derivative = poly(i * a for i, a in enumerate(p))[1:] if len(p) > 1 else ()
    if not derivative:
        return _monic(p) if p else ()
    return _monic(_divmod(p, gcd(p, derivative))[0])


def _chain(g: Poly) -> list[Poly]:
    """The Sturm sequence of g: g, g', then minus each remainder, to the last nonzero one."""
    out = [g, poly(i * a for i, a in enumerate(g))[1:]]
    while out[-1]:
        out.append(scale(_divmod(out[-2], out[-1])[1], -1))
    return out[:-1]


def _variations(chain: list[Poly], x: Fraction) -> int:
    signs = [s for s in (sign(evaluate(p, x)) for p in chain) if s]
    return sum(a != b for a, b in zip(signs, signs[1:]))


def _count(chain: list[Poly], a: Fraction, b: Fraction) -> int:
    """Distinct roots of the square-free chain[0] in (a, b], a and b not roots."""
    return _variations(chain, a) - _variations(chain, b)


def positive_roots(g: Poly) -> list[Root]:
    """Isolating intervals of the distinct roots of g in (0, inf), in increasing order.

    g square-free with g(0) != 0. Each root is (lo, hi) with exactly that root in (lo, hi)
    and g(lo), g(hi) nonzero, or (r, r) for a rational root r met on the way.
    """
    if not g or g[0] == 0:
        raise ValueError("positive_roots needs g(0) != 0: divide out the factor x first")
    if len(g) < 2:
        return []
    chain = _chain(g)
    bound = 1 + max(abs(a / g[-1]) for a in g[:-1])  # Cauchy: every root has |x| < bound
    roots: list[Root] = []
    stack = [(Fraction(0), bound)]
    while stack:
        a, b = stack.pop()
        n = _count(chain, a, b)
        if n == 0:
            continue
        if n == 1:
            roots.append((a, b))
            continue
        mid = (a + b) / 2
        if evaluate(g, mid) == 0:
            roots.append((mid, mid))
            mid_left, mid_right = _step_off(g, chain, a, mid, b)
            stack += [(a, mid_left), (mid_right, b)]
        else:
            stack += [(a, mid), (mid, b)]
    return sorted(roots)


def _step_off(g: Poly, chain: list[Poly], a: Fraction, r: Fraction, b: Fraction):
    """Points left and right of the root r of g, no root between them but r."""
    width = min(r - a, b - r) / 2
    while True:
        left, right = r - width, r + width
        if evaluate(g, left) and evaluate(g, right) and _count(chain, left, right) == 1:
            return left, right
        width /= 2


def refine(g: Poly, root: Root, width: Fraction) -> Root:
    """Narrow an isolating interval of the square-free g to at most ``width`` by bisection."""
    lo, hi = root
    s_lo = sign(evaluate(g, lo))
    while hi - lo > width:
        mid = (lo + hi) / 2
        s = sign(evaluate(g, mid))
        if s == 0:
            return mid, mid
        if s == s_lo:
            lo = mid
        else:
            hi = mid
    return lo, hi


def sign_at(p: Poly, g: Poly, root: Root) -> int:
    """The sign of p at the root of the square-free g isolated by ``root``."""
    lo, hi = root
    if lo == hi or not p:
        return sign(evaluate(p, lo)) if p else 0
    common = gcd(p, g)
    if len(common) > 1 and _count(_chain(common), lo, hi) == 1:
        return 0
    own = _chain(squarefree(p))
    while evaluate(p, lo) == 0 or evaluate(p, hi) == 0 or _count(own, lo, hi) > 0:
        lo, hi = refine(g, (lo, hi), (hi - lo) / 2)
        if lo == hi:
            return sign(evaluate(p, lo))
    return sign(evaluate(p, hi))


def _above(a: Fraction, g: Poly, root: Root) -> Fraction:
    """A rational strictly between a and the root of g isolated by ``root`` (a below it)."""
    while root[0] == a and root[0] != root[1]:
        root = refine(g, root, (root[1] - root[0]) / 2)
    return (a + root[0]) / 2


def reach(polys: list[Poly], holds: Callable[[Signs], bool]) -> float:
    """sup of the interval [0, t] on which ``holds(signs of polys at t)`` is true throughout,
    rounded once to float64; 0.0 when it fails at 0, inf when it never fails.

    The signs change only at roots of the polynomials: each positive root is isolated
    exactly, the open pieces between them are judged at a rational point inside and the roots
    themselves by the exact signs there.
    """

    def at(x: Fraction) -> bool:
        return holds(tuple(sign(evaluate(p, x)) for p in polys))

    if not at(Fraction(0)):
        return 0.0
    g: Poly = (Fraction(1),)
    for p in polys:
        g = mul(g, p) if p else g
    g = squarefree(g)
    while g[0] == 0:
        g = g[1:]
    last, right = Fraction(0), Fraction(0)  # the last point that holds; no root in (last, right]
    for root in positive_roots(g):
        if not at(_above(right, g, root)):
            return float(last)
        while root[1] - root[0] > root[0] / 2**64:  # relative width: float64 rounds it once
            root = refine(g, root, (root[1] - root[0]) / 2)
        last, right = (root[0] + root[1]) / 2, root[1]
        if not holds(tuple(sign_at(p, g, root) for p in polys)):
            return float(last)
    return float("inf") if at(right + 1) else float(last)


def along(coeffs: Iterable[Fraction], d: tuple[int, int]) -> Complex:
    """sum_k coeffs[k] (d t)^k for the Gaussian integer d = d[0] + i d[1], as a complex
    polynomial in t."""
    re, im, power = [], [], (1, 0)
    for c in coeffs:
        re.append(c * power[0])
        im.append(c * power[1])
        power = (power[0] * d[0] - power[1] * d[1], power[0] * d[1] + power[1] * d[0])
    return poly(re), poly(im)


def cmul(a: Complex, b: Complex) -> Complex:
    re = add(mul(a[0], b[0]), scale(mul(a[1], b[1]), -1))
    return re, add(mul(a[0], b[1]), mul(a[1], b[0]))


def csub(a: Complex, b: Complex) -> Complex:
    return add(a[0], scale(b[0], -1)), add(a[1], scale(b[1], -1))


def abs2(a: Complex) -> Poly:
    """|a(t)|^2 for real t."""
    return add(mul(a[0], a[0]), mul(a[1], a[1]))


def quadratic_in_disc(p: Complex, q: Complex) -> tuple[list[Poly], Callable[[Signs], bool]]:
    """The root condition of zeta^2 + p(t) zeta + q(t) (both roots in the closed unit disc,
    those on the circle simple) as polynomials in t and a condition on their signs.

    Schur-Cohn: with |q| < 1 both roots lie in the closed disc iff |p - conj(p) q| <=
    1 - |q|^2, and when equal one is on the circle, the other inside (so simple). With
    |q| = 1 both lie on the circle iff the quadratic is self-inversive (p = conj(p) q) and the
    root -p/2 of its derivative is in the closed disc (Cohn); they are simple iff p^2 != 4q.
    |q| > 1 puts a root outside.
    """
    inside = add((Fraction(1),), scale(abs2(q), -1))  # 1 - |q|^2
    skew = abs2(csub(p, cmul((p[0], scale(p[1], -1)), q)))  # |p - conj(p) q|^2
    schur = add(mul(inside, inside), scale(skew, -1))
    middle = add(abs2(p), (Fraction(-4),))  # |p|^2 - 4
    disc = abs2(csub(cmul(p, p), (scale(q[0], 4), scale(q[1], 4))))  # |p^2 - 4q|^2

    def holds(s: Signs) -> bool:
        return (s[0] > 0 and s[1] >= 0) or (s[0] == 0 and s[2] == 0 and s[3] <= 0 and s[4] != 0)

    return [inside, schur, skew, middle, disc], holds
