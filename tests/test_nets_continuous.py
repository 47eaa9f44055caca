"""Continuous mode: transition + one shared ODE field per stage, NFE counted, gradients flow."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from odenet.nets import (
    ConcatConv2d,
    ContinuousStage,
    ModelConfig,
    ODEOptions,
    build_model,
    describe,
)
from odenet.solvers import NFECounter, get


def _model(solver: str, **kw):
    return build_model(20, solver, width=8, generator=torch.Generator().manual_seed(0), **kw)


def _step(model, size: int = 8):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2, 3, size, size, generator=g)
    logits = model(x)
    assert logits.shape == (2, 10)
    after_forward = dict(model.nfe)
    F.cross_entropy(logits, torch.tensor([3, 7])).backward()
    return after_forward, model.nfe


def _shared_field_grads(model) -> list[torch.Tensor]:
    stages = [s for s in model.stages if isinstance(s, ContinuousStage)]
    assert len(stages) == 3
    return [p.grad for s in stages for p in s.field.parameters()]


@pytest.mark.parametrize(
    ("solver", "options", "per_stage"),
    [
        ("ode-euler", {}, 4),  # default step t1 / 4: 4 steps x 1 evaluation
        ("ode-rk4", {"ode_step_size": 0.5}, 8),  # 2 steps x 4 evaluations
        ("ode-midpoint", {"ode_t1": 0.5, "ode_step_size": 0.25}, 4),
    ],
)
def test_fixed_grid_nfe_is_exact(solver, options, per_stage):
    model = _model(solver, **options)
    forward, after_backward = _step(model)
    assert forward == {"forward": 3 * per_stage, "backward": 0}
    # direct backpropagation: one backward pass through every recorded evaluation
    assert after_backward == {"forward": 3 * per_stage, "backward": 3 * per_stage}
    for g in _shared_field_grads(model):
        assert g is not None and g.abs().sum() > 0


def test_adaptive_dopri5_counts_and_gradients_reach_the_shared_field():
    model = _model("ode-dopri5", ode_rtol=1e-2, ode_atol=1e-2)
    forward, after_backward = _step(model)
    assert forward["forward"] >= 3 * 6 and forward["forward"] % 1 == 0  # >= one 6-stage step
    assert after_backward["backward"] > 0
    for g in _shared_field_grads(model):
        assert g is not None and g.abs().sum() > 0


def test_adjoint_backward_solves_the_adjoint_ode():
    model = _model("ode-midpoint", ode_adjoint=True, ode_step_size=0.5)
    forward, after_backward = _step(model)
    assert forward == {"forward": 3 * 4, "backward": 0}
    # the adjoint solve evaluates the field again (with the vjp) on the same 2-step grid
    assert after_backward["forward"] == 3 * 4 and after_backward["backward"] == 3 * 4
    for g in _shared_field_grads(model):
        assert g is not None and g.abs().sum() > 0


class _SmoothField(torch.nn.Module):
    """tanh(conv([t, y])): smooth, so the adjoint and direct gradients converge together.

    (The default ODEField has ReLU kinks; at coarse steps its two gradients differ by more.)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = ConcatConv2d(channels, channels)

    def forward(self, t, y):
        return torch.tanh(self.conv(t, y))


def test_stage_adjoint_and_direct_gradients_agree_on_a_smooth_field():
    grads = []
    for adjoint in (False, True):
        stage = ContinuousStage(
            get("ode-rk4"),
            4,
            4,
            1,
            block="postact",
            shortcut="A",
            norm="bn",
            field_norm="gn",
            options=ODEOptions(step_size=0.25, adjoint=adjoint),
        )
        field = _SmoothField(4)
        torch.nn.init.normal_(
            field.conv.conv.weight, std=0.2, generator=torch.Generator().manual_seed(0)
        )
        stage.field = NFECounter(field).double()
        x = torch.randn(2, 4, 6, 6, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
        stage(x).square().sum().backward()
        assert stage.nfe["backward"] == 16
        grads.append(field.conv.conv.weight.grad)
    assert grads[0].abs().max() > 0.1
    # RK 3/8 at h = 1/4: the two gradients differ by O(h^4) (measured 4e-5 in norm)
    rel = ((grads[1] - grads[0]).norm() / grads[0].norm()).item()
    assert rel < 1e-4, rel


def test_structure_gn_field_time_channel_and_transitions():
    model = _model("ode-dopri5")
    s1, s2, s3 = model.stages
    assert s1.transition is None and s2.transition is not None and s3.transition is not None
    field = s3.field.field
    assert isinstance(field.norm1, torch.nn.GroupNorm)
    assert field.conv1.conv.in_channels == 32 + 1  # time as an extra input channel
    assert isinstance(s3.transition.fields[0].norm1, torch.nn.BatchNorm2d)
    assert model.config.solver == "ode-dopri5"


def test_describe_continuous_reports_nfe_and_ignored_depth():
    s = describe(ModelConfig(depth=56, solver="ode-midpoint", width=8), image_size=8)
    assert s.family == "continuous" and s.nfe == 24  # 3 stages x 4 steps x 2 evaluations
    assert s.stages[0]["steps"][-1]["nfe"] == 8
    assert [len(st["steps"]) for st in s.stages] == [1, 2, 2]
    assert any("n = 9 is ignored" in note for note in s.notes)
    assert s.layers == 12  # stem + 2 transitions x 2 + 3 shared fields x 2 + head
