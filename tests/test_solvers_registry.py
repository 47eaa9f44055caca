"""Registry behaviour, tableau validation and the stacked (residual-network) use."""

import json
import subprocess
import sys

import pytest
import torch
from torch import nn

import odenet.solvers as S
from odenet.errors import ConfigError
from odenet.solvers.tableau import ButcherTableau, TableauError


def test_names_are_case_insensitive_and_alias_resolves():
    assert S.get("RK4") is S.get("rk4")
    assert S.get("rk2") is S.get("heun")
    assert S.get(S.get("euler")) is S.get("euler")


@pytest.mark.parametrize("name", S.available())
def test_solver_exposes_its_facts(name):
    s = S.get(name)
    assert s.name == name
    assert s.family in {"runge-kutta", "multistep", "continuous", "plain", "learned-rk"}
    # plain (x <- F(x)) is no ODE discretisation: order 0, shown as '-'
    assert isinstance(s.order, int) and (s.order >= 1 or (s.family, s.order) == ("plain", 0))
    assert isinstance(s.stages, int) and s.stages >= 1


def test_unknown_name_lists_valid_ones():
    with pytest.raises(ConfigError) as err:
        S.get("rk5")
    msg = str(err.value)
    assert "\n" not in msg and "'rk5'" in msg
    for name in ("euler", "rk4", "lm", "ode-dopri5", "rk2"):
        assert name in msg


def test_duplicate_registration_raises():
    with pytest.raises(ConfigError, match="already registered"):
        S.register(S.RungeKutta("Euler", S.get("euler").tableau, 1, "dup"))
    with pytest.raises(ConfigError, match="already registered"):
        S.register(S.RungeKutta("newname", S.get("euler").tableau, 1, "dup"), "RK2")


def test_order_mapping():
    assert [S.for_order(o) for o in (1, 2, 3, 4, 5, 6, 8)] == [
        "euler", "heun", "rk3", "rk4", "nystrom5", "huta6", "cv8",
    ]  # fmt: skip
    assert all(S.get(S.for_order(o)).order == o for o in (1, 2, 3, 4, 5, 6, 8))
    with pytest.raises(ConfigError, match="unknown order 7"):
        S.for_order(7)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"c": (0.0, 0.5), "a": ((), (0.4,)), "b": (0.5, 0.5)}, "row 1 of A sums to"),
        ({"c": (0.0, 1.0), "a": ((), (1.0,)), "b": (0.5, 0.6)}, "weights b sum to"),
        ({"c": (0.0, 1.0), "a": ((0.0,), (1.0,)), "b": (0.5, 0.5)}, "strictly lower triangular"),
        ({"c": (0.0,), "a": ((), ()), "b": (1.0,)}, "sizes disagree"),
        ({"c": (), "a": (), "b": ()}, "no stages"),
    ],
)
def test_broken_tableau_fails_with_one_line(kwargs, fragment):
    with pytest.raises(TableauError) as err:
        ButcherTableau(**kwargs)
    assert fragment in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True])
def test_non_positive_steps_fail(steps):
    with pytest.raises(ConfigError, match="steps must be a positive integer"):
        S.solve(lambda t, y: y, torch.ones(2), 0.0, 1.0, steps, "euler")


def test_remainder_rule():
    plan = lambda name, n: [(p.scheme, p.fields) for p in S.get(name).plan(n)]  # noqa: E731
    assert plan("rk4", 3) == [("rk3", 3)]
    assert plan("heun", 3) == [("heun", 2), ("euler", 1)]
    assert plan("rk4", 9) == [("rk4", 4), ("rk4", 4), ("euler", 1)]
    assert plan("rk3", 18) == [("rk3", 3)] * 6
    assert plan("lm", 3) == [("euler", 1), ("lm", 1), ("lm", 1)]
    # leftovers of more than 4 fields: the default methods with the most stages that fit
    assert plan("nystrom5", 9) == [("nystrom5", 6), ("rk3", 3)]
    assert plan("nystrom5", 11) == [("nystrom5", 6), ("rk4", 4), ("euler", 1)]
    assert plan("huta6", 9) == [("huta6", 8), ("euler", 1)]
    assert plan("cv8", 9) == [("huta6", 8), ("euler", 1)]
    assert plan("cv8", 18) == [("cv8", 11), ("nystrom5", 6), ("euler", 1)]
    assert plan("butcher6", 13) == [("butcher6", 7), ("nystrom5", 6)]
    for name in ("euler", "heun", "rk3", "rk4", "rk38", "ab2", "lm", "nystrom5", "huta6", "cv8"):
        for n in range(1, 20):
            assert sum(f for _, f in plan(name, n)) == n


@pytest.mark.parametrize("name", [n for n in S.available() if isinstance(S.get(n), S.RungeKutta)])
def test_stacked_equals_classic_for_linear_fields(name):
    """n copies of F(x) = h L x, stacked, equal the classic solve of y' = L y with step h."""
    solver = S.get(name)
    g = torch.Generator().manual_seed(1)
    L = torch.randn(4, 4, generator=g, dtype=torch.float64) * 0.5
    y0 = torch.randn(4, generator=g, dtype=torch.float64)
    steps = 5
    h = 0.7 / steps
    fields = [lambda x: h * (L @ x)] * (steps * solver.stages)
    stacked = solver.integrate(fields, y0)
    classic = S.solve(lambda t, y: L @ y, y0, 0.0, 0.7, steps, name)
    torch.testing.assert_close(stacked, classic, rtol=1e-14, atol=1e-14)


def test_multistep_stacked_equals_classic():
    g = torch.Generator().manual_seed(2)
    L = torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.3
    y0 = torch.randn(3, generator=g, dtype=torch.float64)
    h, n = 0.1, 9
    fields = [lambda x: h * (L @ x)] * n
    for name in ("ab2", "leapfrog"):
        stacked = S.get(name).integrate(fields, y0)
        classic = S.solve(lambda t, y: L @ y, y0, 0.0, h * n, n, name)
        torch.testing.assert_close(stacked, classic, rtol=1e-14, atol=1e-14)


def test_lm_with_zero_k_is_euler_and_k_is_trainable():
    lm, euler = S.get("lm"), S.get("euler")
    fields = nn.ModuleList(nn.Linear(6, 6) for _ in range(5))
    coeffs = lm.make_coefficients(5, torch.Generator().manual_seed(0))
    assert coeffs.k.shape == (4,) and coeffs.k.requires_grad
    assert (coeffs.k >= -0.1).all() and (coeffs.k <= 0.0).all()
    x = torch.randn(2, 6)
    with torch.no_grad():
        coeffs.k.zero_()
    torch.testing.assert_close(
        lm.integrate(list(fields), x, coefficients=coeffs),
        euler.integrate(list(fields), x),
        rtol=0,
        atol=0,
    )

    class Stage(nn.Module):
        def __init__(self):
            super().__init__()
            self.fields, self.coeffs = fields, lm.make_coefficients(5)

        def forward(self, x):
            return lm.integrate(list(self.fields), x, coefficients=self.coeffs)

    stage = Stage()
    assert any(p is stage.coeffs.k for p in stage.parameters())
    stage(x).square().sum().backward()
    assert stage.coeffs.k.grad is not None and stage.coeffs.k.grad.abs().sum() > 0


def test_lm_without_coefficients_fails_clearly():
    with pytest.raises(ConfigError, match="make_coefficients"):
        S.get("lm").integrate([lambda x: x] * 3, torch.ones(2))


def test_downsampling_first_field_sees_raw_input():
    """k1 = F1(x) on the raw input; later stages build on s = shortcut(x)."""
    shortcut = lambda x: x[::2]  # noqa: E731  (a 'downsampling' shortcut: 4 -> 2)
    f1 = lambda x: x[::2] * 2.0  # noqa: E731
    f2 = lambda x: x + 1.0  # noqa: E731
    x = torch.arange(4, dtype=torch.float64)
    out = S.get("heun").integrate([f1, f2], x, shortcut=shortcut)
    s, k1 = x[::2], x[::2] * 2.0
    k2 = s + k1 + 1.0
    torch.testing.assert_close(out, s + 0.5 * (k1 + k2))


def test_post_applied_after_each_step():
    seen = []
    post = lambda x: (seen.append(1), torch.relu(x))[1]  # noqa: E731
    S.get("rk4").integrate([lambda x: -x] * 9, torch.ones(3), post=post)
    assert len(seen) == 3  # rk4, rk4, euler


def test_cli_solvers_json():
    out = subprocess.run(
        [sys.executable, "-m", "odenet", "solvers", "--json"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = json.loads(out)
    assert [r["name"] for r in rows] == S.available()
    assert {"name", "family", "order", "stages", "description"} <= set(rows[0])
    heun = next(r for r in rows if r["name"] == "heun")
    assert heun["aliases"] == ["rk2"] and heun["order"] == 2


def test_studies_take_orders_5_6_8_with_matched_budgets():
    from odenet.studies import plan_study, spec_from_sources

    spec = spec_from_sources(None, orders="1,5,6,8", depths="20", lrs="0.1")
    _, rows = plan_study(spec)
    assert [r.solver for r in rows] == ["euler", "nystrom5", "huta6", "cv8"]
    assert all(r.params == 269_722 and r.matched for r in rows)
