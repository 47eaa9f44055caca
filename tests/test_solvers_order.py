"""Convergence orders of every registered solver, and agreement with torchdiffeq."""

import math

import pytest
import torch
import torchdiffeq

import odenet.solvers as S

A = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)  # damped rotation
Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
T1 = 1.0


def linear_field(t, y):
    return A @ y


# The order test problem: y1' = -2 t y1^2 (nonlinear and non-autonomous: every rooted-tree
# condition and the nodes c matter; y1 = 1 / (1 + t^2)) next to the damped rotation, on [0, 2].
ORDER_T1 = 2.0
ORDER_Y0 = torch.tensor([1.0, 1.0, 0.5], dtype=torch.float64)


def order_field(t, y):
    t = torch.as_tensor(t, dtype=torch.float64)
    return torch.cat([-2 * t * y[:1] ** 2, A @ y[1:]])


def order_exact():
    rot = torch.linalg.matrix_exp(A * ORDER_T1) @ ORDER_Y0[1:]
    return torch.cat([torch.tensor([1 / (1 + ORDER_T1**2)], dtype=torch.float64), rot])


STEPS = tuple(int(round(2 * 2 ** (k / 2))) for k in range(19))  # 2, 3, 4, 6, 8, ..., 1024
WINDOW = (1e-11, 1e-2)  # errors fitted: above float64 round-off, inside the asymptotic regime


def empirical_order(method: str, points: int = 4) -> tuple[float, int]:
    """(slope, points): least-squares slope of log(error) against log(h) over the ``points``
    finest step counts whose error lies in WINDOW. The finest grids are the asymptotic ones
    (coarse grids of orders 5-8 are not yet); stepping stops at round-off (errors below
    1e-11: order 8 gets there by n ~ 100) or at n = 1024."""
    y_exact = order_exact()
    logs_h, logs_e = [], []
    for n in STEPS:
        err = (S.solve(order_field, ORDER_Y0, 0.0, ORDER_T1, n, method) - y_exact).norm().item()
        if err < WINDOW[0]:
            break
        if err < WINDOW[1]:
            logs_h.append(math.log(ORDER_T1 / n))
            logs_e.append(math.log(err))
    logs_h, logs_e = logs_h[-points:], logs_e[-points:]
    mh, me = sum(logs_h) / len(logs_h), sum(logs_e) / len(logs_e)
    num = sum((h - mh) * (e - me) for h, e in zip(logs_h, logs_e))
    den = sum((h - mh) ** 2 for h in logs_h)
    return num / den, len(logs_h)


ODE_SCHEMES = [  # plain solves nothing; learn-<tableau> solves with its base (test_learned_*)
    pytest.param(n, marks=pytest.mark.slow) if n == "ode-bosh3" else n  # ~10 s: torchdiffeq
    for n in S.available()
    if S.get(n).family not in ("plain", "learned-rk")
]


@pytest.mark.parametrize("name", ODE_SCHEMES)
def test_convergence_order_matches_declared(name):
    solver = S.get(name)
    order, points = empirical_order(name)
    assert points >= 3, f"{name}: only {points} errors in {WINDOW}"
    assert abs(order - solver.order) < 0.15, (
        f"{name}: measured {order:.3f}, declared {solver.order}"
    )


def _grow(tree: tuple) -> set:
    """Every rooted tree with one node more than ``tree`` (a tree: sorted tuple of children)."""
    out = {tuple(sorted(tree + ((),)))}
    for i, child in enumerate(tree):
        for g in _grow(child):
            out.add(tuple(sorted(tree[:i] + (g,) + tree[i + 1 :])))
    return out


def rooted_trees(order: int) -> list[set]:
    """Rooted trees by number of nodes 1..order (1, 1, 2, 4, 9, 20, 48, 115 of them)."""
    levels = [{()}]
    while len(levels) < order:
        levels.append({g for t in levels[-1] for g in _grow(t)})
    return levels


def _size(t: tuple) -> int:
    return 1 + sum(_size(c) for c in t)


def _density(t: tuple) -> int:
    """gamma(t) = |t| * prod gamma(children): the condition is b^T Phi(t) = 1 / gamma(t)."""
    return _size(t) * math.prod(_density(c) for c in t)


def order_residuals(tableau, max_order: int) -> list[float]:
    """max over the trees with k nodes of |b^T Phi(t) - 1/gamma(t)|, for k = 1..max_order."""
    s = tableau.stages
    a = torch.zeros(s, s, dtype=torch.float64)
    for i, row in enumerate(tableau.a):
        a[i, : len(row)] = torch.tensor(row, dtype=torch.float64)
    b = torch.tensor(tableau.b, dtype=torch.float64)

    def phi(t):
        v = torch.ones(s, dtype=torch.float64)
        for c in t:
            v = v * (a @ phi(c))
        return v

    return [
        max(abs((b @ phi(t)).item() - 1 / _density(t)) for t in level)
        for level in rooted_trees(max_order)
    ]


def test_rooted_tree_counts():
    assert [len(level) for level in rooted_trees(8)] == [1, 1, 2, 4, 9, 20, 48, 115]


RK_SCHEMES = [n for n in S.available() if isinstance(S.get(n), S.RungeKutta)]


@pytest.mark.parametrize("name", RK_SCHEMES)
def test_tableau_satisfies_exactly_its_order_conditions(name):
    """Every rooted-tree condition up to the declared order p holds (to float64 rounding of
    the stored coefficients), and some condition of order p + 1 fails."""
    solver = S.get(name)
    p = solver.order
    res = order_residuals(solver.tableau, p + 1)
    assert max(res[:p]) < 1e-14, f"{name}: residuals {res}"
    assert res[p] > 1e-6, f"{name}: order {p + 1} conditions hold too: {res}"


def test_orders_5_6_8_are_registered():
    assert [S.for_order(o) for o in (5, 6, 8)] == ["nystrom5", "huta6", "cv8"]
    for name, order, stages in [
        ("nystrom5", 5, 6),
        ("butcher5", 5, 6),
        ("butcher6", 6, 7),
        ("huta6", 6, 8),
        ("cv8", 8, 11),
    ]:
        s = S.get(name)
        assert (s.order, s.stages, s.family) == (order, stages, "runge-kutta")


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("euler", "euler"),
        ("midpoint", "midpoint"),
        ("heun", "heun2"),
        ("heun3", "heun3"),
        ("rk38", "rk4"),
    ],
)
@pytest.mark.parametrize("steps", [1, 7, 32])
def test_agrees_with_torchdiffeq(ours, theirs, steps):
    h = T1 / steps
    t = torch.tensor([0.0, T1], dtype=torch.float64)
    ref = torchdiffeq.odeint(linear_field, Y0, t, method=theirs, options={"step_size": h})[-1]
    got = S.solve(linear_field, Y0, 0.0, T1, steps, ours)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=1e-14)


def test_float32_and_shape_preserved():
    y0 = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    out = S.solve(lambda t, y: -y, y0, 0.0, 1.0, 20, "rk4")
    assert out.shape == y0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, y0 * math.exp(-1.0), rtol=1e-5, atol=1e-6)


def test_nonautonomous_uses_the_stage_times():
    # y' = t^3 has y(1) = 1/4 exactly for any method of order >= 4 (quadrature of a cubic)
    y0 = torch.zeros((), dtype=torch.float64)
    for name in ("rk4", "rk38", "gill", "ode-rk4", "ode-dopri5"):
        y = S.solve(
            lambda t, y: torch.as_tensor(t, dtype=torch.float64) ** 3, y0, 0.0, 1.0, 3, name
        )
        assert abs(y.item() - 0.25) < 1e-13, name
