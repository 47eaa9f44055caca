"""Shortcut C (He et al.): a 1x1 conv + norm projection on every step, also where shapes match."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from odenet.errors import ConfigError
from odenet.nets import ModelConfig, Stage, build_model, describe
from odenet.nets.fields import ShortcutB
from odenet.solvers import get

EULER_A = 269_722  # He et al. ResNet-20, option A
# Per stage (n = 3 fields at depth 20) a C projection costs c_in c_out (1x1 conv) + 2 c_out (BN):
# euler: one per field = (3 * 288) + (576 + 2 * 1088) + (2176 + 2 * 4224) = 14,240;
# heun: heun step + euler step = 2 per stage = 576 + 1664 + 6400 = 8,640;
# rk4: n = 3 is one rk3 step = 1 per stage = 288 + 576 + 2176 = 3,040.
C_PARAMS = {"euler": 283_962, "heun": 278_362, "rk4": 272_762, "lm": 283_962, "ab2": 283_962}


@pytest.mark.parametrize("solver", sorted(C_PARAMS))
def test_parameter_counts_at_depth_20(solver):
    s = describe(ModelConfig(depth=20, solver=solver, shortcut="C"))
    assert s.params == C_PARAMS[solver]
    assert s.layers == 20  # projections are not counted as layers
    assert C_PARAMS["euler"] == EULER_A + 14_240


def test_describe_says_how_c_applies_and_flags_the_mismatch():
    euler = describe(ModelConfig(depth=20, solver="euler", shortcut="C"))
    heun = describe(ModelConfig(depth=20, solver="heun", shortcut="C"))
    (e_note,) = [n for n in euler.notes if n.startswith("shortcut C")]
    (h_note,) = [n for n in heun.notes if n.startswith("shortcut C")]
    assert "one per step" in e_note and "NOT matched" not in e_note
    assert "6 projections" in h_note and "(9)" in h_note
    assert f"{C_PARAMS['euler'] - C_PARAMS['heun']:,} fewer" in h_note and "NOT matched" in h_note


def test_dry_run_budget_check_flags_the_mismatch():
    from odenet.studies import plan_study, spec_from_sources

    spec = spec_from_sources(
        None, orders="1,2,4", depths="20", lrs="0.1", settings={"shortcut": "C"}
    )
    _, rows = plan_study(spec)
    got = {r.solver: (r.params, r.matched) for r in rows}
    assert got == {
        "euler": (C_PARAMS["euler"], True),
        "heun": (C_PARAMS["heun"], False),
        "rk4": (C_PARAMS["rk4"], False),
    }


def _blocks(model):
    return [(stage, list(stage.fields), list(stage.projections)) for stage in model.stages]


def test_euler_c_is_relu_of_projection_plus_field():
    """An independent forward of the euler C net: x <- relu(P_i(x) + F_i(x)) block by block."""
    model = build_model(14, "euler", shortcut="C", generator=torch.Generator().manual_seed(0))
    model.eval()
    assert sum(isinstance(m, ShortcutB) for m in model.modules()) == 6
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = F.relu(model.stem_norm(model.stem_conv(x)))
        for _, fields, projections in _blocks(model):
            for f, p in zip(fields, projections, strict=True):
                h = F.relu(p(h) + f(h))
        ref = model.fc(h.mean(dim=(2, 3)))
        torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-6)


def test_heun_c_projects_each_steps_start_state():
    """heun at n = 3: a heun step on s = P1(x), then an euler step on P2 of its output."""
    model = build_model(20, "heun", shortcut="C", generator=torch.Generator().manual_seed(0))
    model.eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        h = F.relu(model.stem_norm(model.stem_conv(x)))
        for _, (f1, f2, f3), (p1, p2) in _blocks(model):
            s = p1(h)
            k1 = f1(h)
            k2 = f2(s + k1)
            h = F.relu(s + 0.5 * k1 + 0.5 * k2)
            h = F.relu(p2(h) + f3(h))
        ref = model.fc(h.mean(dim=(2, 3)))
        torch.testing.assert_close(model(x), ref, rtol=0, atol=1e-5)


class Linear(torch.nn.Module):
    def __init__(self, m: torch.Tensor, identity: bool = False) -> None:
        super().__init__()
        self.m, self.identity = m, identity

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        return u + self.m @ u if self.identity else self.m @ u


def test_two_step_c_projects_the_current_state_only():
    """ab2 with projections: u1 = P0(x) + F0(x); u_{i+1} = P_i(u_i) + 3/2 F_i(u_i) - 1/2 F_{i-1}."""
    g = torch.Generator().manual_seed(0)
    mats = [torch.randn(3, 3, generator=g, dtype=torch.float64) * 0.3 for _ in range(6)]
    fields = [Linear(m) for m in mats[:3]]
    projections = [Linear(m, identity=True) for m in mats[3:]]
    x = torch.randn(3, generator=g, dtype=torch.float64)
    out = Stage(get("ab2"), fields, projections=projections)(x)
    f0 = fields[0](x)
    u = projections[0](x) + f0
    f1 = fields[1](u)
    u = projections[1](u) + 1.5 * f1 - 0.5 * f0
    u = projections[2](u) + 1.5 * fields[2](u) - 0.5 * f1
    torch.testing.assert_close(out, u, rtol=1e-14, atol=1e-14)
    with pytest.raises(ConfigError, match="one per step"):
        Stage(get("ab2"), fields, projections=projections[:2])


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_c_members_fuse(solver):
    from odenet.nets import fuse
    from odenet.nets.fused import stack_inputs

    models = [
        build_model(14, solver, shortcut="C", generator=torch.Generator().manual_seed(s)).eval()
        for s in (0, 1)
    ]
    xs = [torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (5, 6)]
    with torch.no_grad():
        out = fuse(models).eval()(stack_inputs(xs))
        for m, (model, x) in enumerate(zip(models, xs)):
            torch.testing.assert_close(out[:, m], model(x), rtol=1e-5, atol=1e-5)
