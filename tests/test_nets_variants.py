"""rewire and refine (issue 21): a trained network's fields under another scheme, or refined."""

from __future__ import annotations

import math

import pytest
import torch
from linear_fields import LinearField, linear_problem, smooth_network
from torch import nn

import odenet.solvers as S
from odenet.errors import ConfigError
from odenet.nets import Stage, build_model, fuse, refine, rewire

RK = [n for n in S.available() if isinstance(S.get(n), S.RungeKutta)]


def _model(solver: str, depth: int = 14, seed: int = 0, **kwargs) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    model = build_model(depth, solver, width=4, generator=g, **kwargs)
    with torch.no_grad():  # off the initial norms, as a trained network is
        for name, p in model.named_parameters():
            if "norm" in name or "coefficients" in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    return model


def _x(seed: int = 1) -> torch.Tensor:
    return torch.randn(4, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _shares_tensors(model: nn.Module, new: nn.Module) -> None:
    for table in ("named_parameters", "named_buffers"):
        old, got = dict(getattr(model, table)()), dict(getattr(new, table)())
        assert got.keys() <= old.keys()
        assert all(got[k] is old[k] for k in got), table


CASES = [
    ("euler", "postact", "A"),
    ("heun", "preact", "B"),
    ("rk4", "postact", "C"),
    ("lm", "preact", "A"),
    ("learn-heun", "postact", "B"),
    ("ab2", "postact", "C"),
    ("leapfrog", "preact", "A"),
]


@pytest.mark.parametrize(("solver", "block", "shortcut"), CASES)
def test_the_trained_scheme_and_m_1_give_the_model_bitwise(solver, block, shortcut):
    model = _model(solver, 20, block=block, shortcut=shortcut)
    modules, config = list(model.modules()), model.config
    x = _x()
    for new in (rewire(model, solver), refine(model, 1)):
        _shares_tensors(model, new)
        assert dict(new.named_parameters()).keys() == dict(model.named_parameters()).keys()
        for train in (False, True):
            model.train(train), new.train(train)
            assert torch.equal(new(x), model(x))
    # the original is untouched: same modules, same config, its own stages
    assert list(model.modules()) == modules and model.config == config
    new.fc = nn.Linear(64, 10)
    assert model.fc is modules[-1] and all(s.substeps == 1 for s in model.stages)


@pytest.mark.parametrize(("source", "target", "block", "shortcut", "depth"), [
    ("euler", "heun", "postact", "A", 20),  # n = 3: a heun step and an euler step
    ("euler", "heun", "preact", "B", 14),
    ("heun", "rk4", "postact", "B", 32),  # n = 5: an rk4 step and an euler step
    ("euler", "ab2", "postact", "C", 14),  # C: one projection per step in both
    ("learn-rk4", "euler", "preact", "A", 20),  # the learned coefficients are dropped
])  # fmt: skip
def test_rewire_is_the_network_built_with_the_scheme(source, target, block, shortcut, depth):
    model = _model(source, depth, block=block, shortcut=shortcut)
    built = build_model(depth, target, width=4, block=block, shortcut=shortcut)
    state = {k: v for k, v in model.state_dict().items() if "coefficients" not in k}
    built.load_state_dict(state)
    new = rewire(model, target)
    assert new.config == built.config
    assert [s.plan() for s in new.stages] == [s.plan() for s in built.stages]
    _shares_tensors(model, new)
    x = _x()
    for train in (False, True):
        new.train(train), built.train(train)
        assert torch.equal(new(x), built(x))
    assert not torch.equal(new(x), model(x))  # another wiring, another function


@pytest.mark.parametrize(("model", "scheme", "match"), [
    (lambda: _model("euler"), "plain", "no identity path"),
    (lambda: _model("plain"), "euler", "no identity path"),
    (lambda: _model("euler"), "ode-rk4", "does not stack"),
    (lambda: _model("euler"), "nope", "unknown solver"),
    (lambda: _model("ode-euler", 8), "euler", "continuous-mode"),
    (lambda: fuse([_model("euler")]), "heun", "takes a ResNet"),
    (lambda: _model("euler"), "lm", "learns its scheme coefficients"),
    (lambda: _model("rk4"), "learn-rk4", "learns its scheme coefficients"),
    (lambda: _model("euler", shortcut="C"), "heun", "one projection per step"),
])  # fmt: skip
def test_rewire_refuses_with_one_line(model, scheme, match):
    model = model()
    state = torch.random.get_rng_state()
    with pytest.raises(ConfigError, match=match) as err:
        rewire(model, scheme)
    assert "\n" not in str(err.value)
    assert torch.equal(torch.random.get_rng_state(), state)  # asking lm drew nothing


@pytest.mark.parametrize("name", RK)
def test_a_refined_stage_is_the_classic_solve_with_m_times_the_steps(name):
    lin, x, ode = linear_problem(seed=3)
    h, m = 0.3, 4
    solver = S.get(name)
    stage = Stage(solver, [LinearField(h * lin) for _ in range(2 * solver.stages)], substeps=m)
    torch.testing.assert_close(stage(x), S.solve(ode, x, 0.0, 2 * h, 2 * m, name), rtol=0,
                               atol=1e-13)  # fmt: skip


def test_refined_post_activation_applies_the_relu_once_per_trained_step():
    lin, x, ode = linear_problem(seed=4)
    stage = Stage(S.get("heun"), [LinearField(1.5 * lin) for _ in range(4)], post_relu=True)
    refined = Stage(S.get("heun"), list(stage.fields), post_relu=True, substeps=2)
    y = x
    for _ in range(2):  # two trained heun steps, each two sub-steps of h/2, then the ReLU
        y = torch.relu(S.solve(ode, y, 0.0, 1.5, 2, "heun"))
    torch.testing.assert_close(refined(x), y, rtol=0, atol=1e-13)
    assert (y == 0).any() and not torch.equal(refined(x), stage(x))


@pytest.mark.parametrize(("block", "shortcut"), [("postact", "A"), ("preact", "B")])
def test_refine_takes_the_downsampling_step_once_and_keeps_shapes(block, shortcut):
    model = _model("heun", 20, block=block, shortcut=shortcut).eval()
    refined = refine(model, 4)
    calls: dict[int, int] = {}
    for stage in refined.stages:
        for f in stage.fields:
            f.register_forward_hook(
                lambda mod, i, o: calls.update({id(mod): calls.get(id(mod), 0) + 1})
            )
    x = _x()
    out = refined(x)
    for si, stage in enumerate(refined.stages):
        # heun at n = 3: a heun step (fields 0, 1) and an euler step (field 2)
        first = 1 if stage.shortcut is not None else 4
        assert [calls[id(f)] for f in stage.fields] == [first, first, 4], si
    assert [s.shortcut is not None for s in refined.stages] == [False, True, True]
    assert out.shape == model(x).shape == (4, 10) and not torch.equal(out, model(x))


@pytest.mark.parametrize(("solver", "low", "high"), [("euler", 0.7, 1.3), ("heun", 1.6, 2.5),
                                                     ("rk4", 3.5, 4.5)])  # fmt: skip
def test_refinement_converges_at_the_schemes_order(solver, low, high):
    model = smooth_network(solver)
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    with torch.no_grad():
        start = model.stem_conv(x)
        ys = [refine(model, 2**k).stages[0](start) for k in range(7)]  # m = 1 ... 64
    d = [(a - b).norm().item() for a, b in zip(ys, ys[1:])]  # |y_m - y_2m| ~ C m^-p
    slope = sum(math.log2(d[k] / d[k + 1]) for k in range(2, 5)) / 3  # m = 4 ... 32
    assert low <= slope <= high, (solver, slope, d)


@pytest.mark.parametrize(("solver", "m", "shortcut", "match"), [
    ("euler", 3, "A", "power of two"),
    ("euler", 0, "A", "power of two"),
    ("euler", True, "A", "power of two"),
    ("euler", 2.0, "A", "power of two"),
    ("ab2", 2, "A", "two-step method"),
    ("lm", 2, "A", "two-step method"),
    ("plain", 2, "A", "no identity path"),
    ("euler", 2, "C", "shortcut C"),
])  # fmt: skip
def test_refine_refuses_with_one_line(solver, m, shortcut, match):
    with pytest.raises(ConfigError, match=match) as err:
        refine(_model(solver, shortcut=shortcut), m)
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="continuous-mode"):
        refine(_model("ode-euler", 8), 2)
