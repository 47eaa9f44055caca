"""The ODE tests' measurements (issue 21, odenet.analysis.ode_tests), numerically: the change
of the logits and the observed order, the convergence order on a network that is an ODE by
construction, the swap against the network built with the other scheme, and the refusals."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from linear_fields import smooth_network
from torch import nn

from odenet.analysis.ode_results import MeanStd, OdeMeans, ode_table
from odenet.analysis.ode_tests import (
    OdeTestConfig,
    evaluate,
    observed_order,
    ode_tests,
    relative_change,
    wiring,
)
from odenet.errors import ConfigError
from odenet.nets import build_model


def _batches(shape: tuple[int, ...], n: int = 12, dtype=torch.float32, seed: int = 1) -> list:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, *shape, generator=g).to(dtype)
    y = torch.randint(0, 10, (n,), generator=g)
    return [(x[: n // 2], y[: n // 2]), (x[n // 2 :], y[n // 2 :])]


def _trained_like(solver: str, depth: int = 14) -> nn.Module:
    """A network off its initial norms (as a trained one is), eval mode."""
    g = torch.Generator().manual_seed(0)
    model = build_model(depth, solver, width=4, generator=g)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(0.3 * torch.randn(p.shape, generator=g))
    return model.eval()


def test_relative_change_and_observed_order_by_hand():
    y = torch.tensor([[3.0, 4.0], [0.0, 2.0]])
    y_half = torch.tensor([[0.0, 4.0], [0.0, 1.0]])
    assert relative_change(y, y_half) == pytest.approx((3 / 5 + 1 / 2) / 2, rel=1e-12)
    assert observed_order(0.1, 0.025) == pytest.approx(2.0, rel=1e-12)
    assert observed_order(0.1, 0.2) == pytest.approx(-1.0, rel=1e-12)  # drifting: negative
    for pair in ((None, 0.1), (0.1, None), (0.1, 0.0), (0.0, 0.1)):
        assert observed_order(*pair) is None


def test_evaluate_is_the_mean_cross_entropy_and_accuracy():
    model = _trained_like("heun")
    batches = _batches((3, 8, 8))
    got = evaluate(model, batches)
    x, y = torch.cat([b[0] for b in batches]), torch.cat([b[1] for b in batches])
    with torch.no_grad():
        logits = model(x).double()
    assert torch.allclose(got.logits.double(), logits, rtol=1e-5, atol=1e-6)
    assert got.loss == pytest.approx(float(F.cross_entropy(logits, y)), rel=1e-5)
    assert got.acc == (logits.argmax(1) == y).double().mean().item()


@pytest.mark.parametrize(("solver", "dtype", "low", "high", "factors"), [
    ("euler", torch.float32, 0.7, 1.3, (1, 2, 4, 8)),
    ("heun", torch.float32, 1.6, 2.4, (1, 2, 4, 8)),
    # rk4's changes reach float32's resolution (~1e-7 relative) by m = 4: float64
    ("rk4", torch.float64, 3.5, 4.5, (1, 2, 4)),
])  # fmt: skip
def test_refinement_of_an_ode_converges_at_the_schemes_order(solver, dtype, low, high, factors):
    model = smooth_network(solver, dtype)
    result = ode_tests(model, _batches((3, 16, 16), 16, dtype), OdeTestConfig(("euler",), factors))
    refine = result["refine"]
    assert [r["factor"] for r in refine] == list(factors) and result["refused"] == []
    changes = [r["rel_change"] for r in refine]
    assert changes[0] is None and all(c > 0 for c in changes[1:])
    for prev, entry in zip(refine[1:], refine[2:]):
        assert entry["observed_order"] == pytest.approx(
            math.log2(prev["rel_change"] / entry["rel_change"]), rel=1e-12
        )
        assert low <= entry["observed_order"] <= high, (solver, changes)
    assert refine[0]["observed_order"] is None and refine[1]["observed_order"] is None


def test_swap_of_an_euler_model_to_heun_is_the_heun_built_network():
    model = _trained_like("euler")
    batches = _batches((3, 8, 8), 24)
    result = ode_tests(model, batches, OdeTestConfig(("heun",), (1,)))
    assert [(s["scheme"], s["trained"]) for s in result["swap"]] == [
        ("heun", False),
        ("euler", True),
    ]
    heun = build_model(14, "heun", width=4)
    heun.load_state_dict(model.state_dict())
    expected = evaluate(heun.eval(), batches)
    swapped = result["swap"][0]
    assert (swapped["test_acc"], swapped["test_loss"]) == (expected.acc, expected.loss)
    own = evaluate(model, batches)
    assert (result["swap"][1]["test_acc"], result["swap"][1]["test_loss"]) == (own.acc, own.loss)
    assert result["refine"] == [{"factor": 1, "test_acc": own.acc, "test_loss": own.loss,
                                 "rel_change": None, "observed_order": None}]  # fmt: skip
    assert expected.loss != own.loss  # the wiring changed the outputs
    assert not model.training


def test_wiring_names_the_steps_a_stage_takes():
    assert wiring(build_model(26, "rk3", width=4)) == "rk3 + euler"  # 4 fields a stage
    assert wiring(build_model(20, "rk4", width=4)) == "rk3"  # 3 fields: the remainder rule
    assert wiring(build_model(14, "euler", width=4)) == "2x euler"


@pytest.mark.parametrize(("solver", "swapped", "factors", "reason"), [
    ("plain", [], [1], "no identity path"),
    ("ab2", ["euler", "heun", "ab2"], [1], "two-step method"),
])  # fmt: skip
def test_what_a_network_cannot_take_is_left_out_with_its_reason(solver, swapped, factors, reason):
    model = _trained_like(solver)
    result = ode_tests(model, _batches((3, 8, 8)), OdeTestConfig(("euler", "heun"), (1, 2, 4)))
    assert [s["scheme"] for s in result["swap"]] == swapped
    assert [r["factor"] for r in result["refine"]] == factors
    assert result["refused"] and all("\n" not in line for line in result["refused"])
    assert any(reason in line for line in result["refused"])


@pytest.mark.parametrize(("schemes", "factors", "match"), [
    ("ode-rk4", None, "does not stack distinct fields"),
    ("plain", None, "no identity path"),
    ("lm", None, "learns its coefficients"),
    ("learn-heun", None, "learns its coefficients"),
    ("eulr", None, "unknown solver"),
    (None, "1,3", "3 is not a power of two"),
    (None, "0,1", "0 is not a power of two"),
    (None, "1,4,8", "twice the one before"),
    (None, "2,1", "twice the one before"),
    (None, "1,2.5", "refine-factors"),
])  # fmt: skip
def test_bad_options_are_one_line(schemes, factors, match):
    with pytest.raises(ConfigError, match=match) as err:
        OdeTestConfig.parse(schemes, factors)
    assert "\n" not in str(err.value)


def test_options_parse_to_registry_names_once():
    config = OdeTestConfig.parse("rk2,euler,heun", "2,4")
    assert config == OdeTestConfig(("heun", "euler"), (2, 4))
    assert OdeTestConfig.parse(None, None) == OdeTestConfig()


def test_means_over_seeds_and_the_flat_table():
    runs = [
        {"swap": [{"scheme": "euler", "trained": True, "steps": "2x euler", "test_acc": a,
                   "test_loss": 1.0}],
         "refine": [{"factor": 1, "test_acc": a, "test_loss": 1.0, "rel_change": None,
                     "observed_order": None},
                    {"factor": 2, "test_acc": 0.5, "test_loss": 2.0, "rel_change": c,
                     "observed_order": None}]}
        for a, c in ((0.25, 0.1), (0.75, 0.3))
    ]  # fmt: skip
    means = OdeMeans.of(runs)
    assert means.swap[0].test_acc == MeanStd(0.5, math.sqrt(0.125), 2)
    assert means.refine[1].rel_change.mean == pytest.approx(0.2)
    assert means.refine[0].rel_change == MeanStd(None, None, 0)
    assert MeanStd.of([0.5]).text(".1f", 100, 2) == "50.0 (n=1)"
    table = ode_table(runs[0])
    assert table.index == ("test", "scheme", "factor")
    assert [r[:3] for r in table.rows] == [("swap", "euler", 1), ("refine", "euler", 1),
                                           ("refine", "euler", 2)]  # fmt: skip
