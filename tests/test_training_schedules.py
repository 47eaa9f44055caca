"""Learning-rate schedules: exact factors, warm-up, and the LambdaLR round trip."""

import math

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from odenet.errors import ConfigError
from odenet.training.schedules import LRSchedule, schedule_factor


def test_step_schedule_is_exactly_tenfold_drops_at_half_and_three_quarters():
    assert schedule_factor("step", 0.0) == 1.0
    assert schedule_factor("step", 0.4999) == 1.0
    assert schedule_factor("step", 0.5) == 0.1
    assert schedule_factor("step", 0.7499) == 0.1
    assert schedule_factor("step", 0.75) == 0.01
    assert schedule_factor("step", 0.99) == 0.01


def test_cosine_endpoints_and_midpoint():
    assert schedule_factor("cosine", 0.0) == 1.0
    assert schedule_factor("cosine", 0.5) == pytest.approx(0.5, abs=1e-15)
    assert schedule_factor("cosine", 1.0) == pytest.approx(0.0, abs=1e-15)
    assert schedule_factor("cosine", 0.25) == pytest.approx((1 + math.sqrt(0.5)) / 2)


def test_onecycle_rises_linearly_to_peak_then_falls_to_zero():
    assert schedule_factor("onecycle", 0.0) == pytest.approx(0.04)
    assert schedule_factor("onecycle", 0.15) == pytest.approx(0.04 + 0.96 * 0.5)
    assert schedule_factor("onecycle", 0.3) == pytest.approx(1.0)
    assert schedule_factor("onecycle", 0.65) == pytest.approx(0.5)
    assert schedule_factor("onecycle", 1.0) == pytest.approx(0.0)
    values = [schedule_factor("onecycle", i / 100) for i in range(101)]
    peak = values.index(max(values))
    assert peak == 30
    assert all(a < b for a, b in zip(values[:peak], values[1 : peak + 1]))
    assert all(a > b for a, b in zip(values[peak:-1], values[peak + 1 :]))


def test_constant_and_unknown():
    assert schedule_factor("constant", 0.7) == 1.0
    with pytest.raises(ConfigError, match="expected one of"):
        schedule_factor("linear", 0.5)
    with pytest.raises(ConfigError):
        LRSchedule("bogus", 10)
    with pytest.raises(ConfigError):
        LRSchedule("step", 0)


def test_schedule_uses_step_over_total_and_linear_warmup():
    s = LRSchedule("step", total_steps=8, warmup_steps=0)
    assert [s(i) for i in range(8)] == [1, 1, 1, 1, 0.1, 0.1, 0.01, 0.01]
    w = LRSchedule("constant", total_steps=10, warmup_steps=4)
    assert [w(i) for i in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]


def test_lambdalr_applies_factors_per_step_and_restores_from_state_dict():
    p = torch.nn.Parameter(torch.zeros(3))
    opt = torch.optim.SGD([p], lr=0.2, momentum=0.9)
    sched = LambdaLR(opt, LRSchedule("step", total_steps=8))
    seen = []
    for _ in range(5):
        seen.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert seen == pytest.approx([0.2, 0.2, 0.2, 0.2, 0.02])
    state = sched.state_dict()
    opt2 = torch.optim.SGD([p], lr=0.2, momentum=0.9)
    sched2 = LambdaLR(opt2, LRSchedule("constant", total_steps=1))
    opt2.load_state_dict(opt.state_dict())
    sched2.load_state_dict(state)
    assert sched2.lr_lambdas[0](5) == 0.1  # the restored schedule is the step schedule
    opt2.step()
    sched2.step()
    assert opt2.param_groups[0]["lr"] == pytest.approx(0.2 * 0.01)  # step 6 of 8
