"""A network stage is the solver's stacked use: equal to the classic solve on linear fields."""

from __future__ import annotations

import pytest
import torch
from linear_fields import LinearField, linear_problem
from torch import nn

from odenet.nets import ShortcutA, Stage, make_stage
from odenet.solvers import RungeKutta, StackedSolver, available, get, solve

RK_METHODS = [n for n in available() if isinstance(get(n), RungeKutta)]
TWO_STEP = ["ab2", "leapfrog"]  # fixed coefficients: stacked and classic agree exactly


def _stage(name: str, n: int, hl: torch.Tensor) -> Stage:
    solver = get(name)
    assert isinstance(solver, StackedSolver)
    return Stage(solver, [LinearField(hl) for _ in range(n)])


@pytest.mark.parametrize("name", RK_METHODS + TWO_STEP)
def test_stage_equals_classic_solve_when_n_is_a_multiple_of_the_stages(name):
    lin, x, f = linear_problem()
    steps, t1 = 3, 0.6
    h = t1 / steps
    n = steps * get(name).stages
    out = _stage(name, n, h * lin)(x)
    ref = solve(f, x, 0.0, t1, steps, method=name)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-13)
    # and it is not trivially equal to a different method of the same step count
    other = "euler" if name != "euler" else "heun"
    assert (solve(f, x, 0.0, t1, steps, method=other) - ref).abs().max() > 1e-6


REMAINDERS = [(n, r) for n in RK_METHODS for r in range(1, get(n).stages)]


# the leftover r fields: the default method with the most stages <= r, then again on the rest
LEFTOVER = {
    1: ["euler"], 2: ["heun"], 3: ["rk3"], 4: ["rk4"], 5: ["rk4", "euler"], 6: ["nystrom5"],
    7: ["nystrom5", "euler"], 8: ["huta6"], 9: ["huta6", "euler"], 10: ["huta6", "heun"],
}  # fmt: skip


@pytest.mark.parametrize(("name", "extra"), REMAINDERS)
def test_remainder_fields_form_steps_of_the_default_methods(name, extra):
    stages = get(name).stages
    lin, x, f = linear_problem()
    h, full = 0.15, 2
    stage = _stage(name, full * stages + extra, h * lin)
    plan = stage.plan()
    assert [p.scheme for p in plan] == [name] * full + LEFTOVER[extra]
    assert [p.fields for p in plan] == [stages] * full + [get(n).stages for n in LEFTOVER[extra]]
    y = solve(f, x, 0.0, full * h, full, method=name)
    for i, scheme in enumerate(LEFTOVER[extra]):  # one classic step of each leftover method
        y = solve(f, y, (full + i) * h, (full + i + 1) * h, 1, method=scheme)
    torch.testing.assert_close(stage(x), y, rtol=0, atol=1e-13)


def test_depth20_plans_match_the_documented_rule():
    assert [p.scheme for p in get("rk4").plan(3)] == ["rk3"]
    assert [(p.scheme, p.fields) for p in get("heun").plan(3)] == [("heun", 2), ("euler", 1)]
    assert [p.scheme for p in get("ab2").plan(3)] == ["euler", "ab2", "ab2"]


def test_downsampling_field_is_k1_of_the_first_step():
    """heun, postact: s = A(x); k1 = F1(x) (stride 2); out = relu(s + (k1 + F2(s + k1)) / 2)."""
    g = torch.Generator().manual_seed(0)
    heun = get("heun")
    assert isinstance(heun, StackedSolver)
    stage = make_stage(heun, 2, 4, 8, 2, block="postact", shortcut="A", norm="bn", generator=g)
    stage.eval()
    for p in stage.parameters():
        nn.init.normal_(p, generator=g)
    x = torch.randn(2, 4, 6, 6, generator=g)
    s = ShortcutA(4, 8, 2)(x)
    k1 = stage.fields[0](x)
    k2 = stage.fields[1](s + k1)
    expected = torch.relu(s + 0.5 * k1 + 0.5 * k2)
    assert s.shape == k1.shape == (2, 8, 3, 3)
    torch.testing.assert_close(stage(x), expected)
    # shortcut A is subsample + zero-pad: 2 channels each side, the middle 4 are x[::2, ::2]
    torch.testing.assert_close(s[:, 2:6], x[:, :, ::2, ::2])
    assert s[:, :2].abs().max() == 0 and s[:, 6:].abs().max() == 0


def test_lm_stage_carries_its_coefficients_and_they_learn():
    lm = get("lm")
    assert isinstance(lm, StackedSolver)
    g = torch.Generator().manual_seed(0)
    stage = make_stage(lm, 4, 4, 4, 1, block="preact", shortcut="A", norm="bn", generator=g)
    k = stage.coefficients.k
    assert k.shape == (3,) and bool(((k >= -0.1) & (k <= 0.0)).all())
    stage(torch.randn(2, 4, 5, 5, generator=g)).square().sum().backward()
    assert k.grad is not None and k.grad.abs().sum() > 0


def test_lm_with_zero_k_is_euler():
    lin, x, _ = linear_problem()
    fields = [LinearField(0.2 * lin) for _ in range(5)]
    lm = Stage(get("lm"), fields)
    with torch.no_grad():
        lm.coefficients.k.zero_()
    assert torch.equal(lm(x), Stage(get("euler"), fields)(x))
