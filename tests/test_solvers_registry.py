"""Registry behaviour, tableau validation and the stacked (residual-network) use."""

import json
import subprocess
import sys

import pytest
import torch

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


def test_default_methods_are_registered_with_their_tableau():
    from odenet.solvers.runge_kutta import DEFAULT_METHODS

    for order, (name, tableau) in DEFAULT_METHODS.items():
        assert (S.get(name).tableau, S.get(name).order) == (tableau, order)
    assert S.ORDER_TO_SOLVER == {order: name for order, (name, _) in DEFAULT_METHODS.items()}


def test_a_step_gets_its_start_state_from_the_stage():
    """heun's step: s + (k1 + k2) / 2, k1 = F1(x) on the raw input, k2 = F2(s + k1), where s
    (here a 'downsampling' shortcut x[::2]) is the stage's business."""
    f1 = lambda y: y[::2] * 2.0  # noqa: E731
    f2 = lambda y: y + 1.0  # noqa: E731
    x = torch.arange(4, dtype=torch.float64)
    s, k1 = x[::2], x[::2] * 2.0
    step = S.StepInput(0, "heun", x, lambda: x[::2], [f1, f2], S.Carry())
    out = S.get("heun").step(step)
    torch.testing.assert_close(out, s + 0.5 * k1 + 0.5 * (s + k1 + 1.0), rtol=0, atol=0)
    # a leftover step of a rk4 stage is an rk3 step, chosen by the plan's scheme name
    step = S.StepInput(0, "rk3", x, lambda: x[::2], [f1, f2, f2], S.Carry())
    assert torch.equal(S.get("rk3").step(step), S.get("rk4").step(step))


@pytest.mark.parametrize("name", ["lm", "learn-rk4"])
def test_learned_schemes_need_their_coefficients(name):
    x = torch.ones(2)
    with pytest.raises(ConfigError, match="make_coefficients") as err:
        S.get(name).step(S.StepInput(1, name, x, lambda: x, [lambda y: y] * 4, S.Carry()))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", [n for n in S.available() if not n.startswith("ode-")])
def test_fusable_is_declared(name):
    solver = S.get(name)
    learned = solver.make_coefficients(3) is not None
    assert solver.fusable is not learned  # K members fuse unless each learns coefficients


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
