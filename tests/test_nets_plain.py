"""The plain scheme: He et al.'s plain nets, x <- relu(F(x)) with no identity path."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from typer.testing import CliRunner

import odenet.solvers as S
from odenet.cli import app
from odenet.errors import ConfigError
from odenet.nets import ModelConfig, ShortcutA, Stage, build_model, describe, fuse
from odenet.nets.fields import ShortcutB
from odenet.nets.fused import stack_inputs
from odenet.solvers.stability import in_region, real_extent, stability_function

# He et al. 2015 option-A ResNet counts; the plain nets have the same (A has no parameters)
PARAMS = {20: 269_722, 56: 853_018}
FLOPS = {20: 81_102_080, 56: 250_971_392}


@pytest.mark.parametrize("depth", sorted(PARAMS))
def test_plain_has_the_option_a_budget(depth):
    plain = describe(ModelConfig(depth=depth, solver="plain"))
    euler = describe(ModelConfig(depth=depth, solver="euler"))
    assert (plain.params, plain.extra_params) == (PARAMS[depth], 0)
    assert plain.flops == plain.conv_linear_flops == FLOPS[depth] == euler.flops
    assert plain.layers == depth and plain.family == "plain"
    assert [st["steps"] for st in plain.stages] == [
        [{"scheme": "plain", "fields": 1}] * ((depth - 2) // 6)
    ] * 3


@pytest.mark.parametrize("shortcut", ["A", "B", "C"])
def test_plain_builds_no_shortcut(shortcut):
    model = build_model(14, "plain", shortcut=shortcut)
    assert not any(isinstance(m, (ShortcutA, ShortcutB)) for m in model.modules())
    assert sum(p.numel() for p in model.parameters()) == sum(
        p.numel() for p in build_model(14, "plain").parameters()
    )
    notes = describe(ModelConfig(depth=14, solver="plain", shortcut=shortcut)).notes
    assert any("no identity path" in n for n in notes)


@pytest.mark.parametrize("block", ["postact", "preact"])
def test_forward_is_the_chain_of_fields(block):
    """An independent forward: stem, then x <- relu(F(x)) field by field (postact)."""
    model = build_model(14, "plain", block=block, generator=torch.Generator().manual_seed(3))
    model.eval()
    x = torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        h = model.stem_conv(x)
        if block == "postact":
            h = F.relu(model.stem_norm(h))
        for stage in model.stages:
            for field in stage.fields:
                h = field(h)
                if block == "postact":
                    h = F.relu(h)
        if block == "preact":
            h = F.relu(model.head_norm(h))
        ref = model.fc(h.mean(dim=(2, 3)))
        out = model(x)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-6)
    # and it differs from the residual network with the same weights
    euler = build_model(14, "euler", block=block)
    euler.load_state_dict(model.state_dict())
    euler.eval()
    with torch.no_grad():
        assert (euler(x) - out).abs().max() > 1e-3


def test_plain_is_refused_where_it_means_nothing():
    with pytest.raises(ConfigError, match="plain has no ODE to solve") as err:
        S.solve(lambda t, y: -y, torch.ones(2), 0.0, 1.0, 4, "plain")
    assert "\n" not in str(err.value)
    for call in (
        lambda: stability_function("plain"),
        lambda: in_region("plain", np.zeros(2)),
        lambda: real_extent("plain"),
    ):
        with pytest.raises(ConfigError, match="no identity path"):
            call()
    with pytest.raises(ConfigError, match="no shortcut"):
        Stage(S.get("plain"), [torch.nn.Identity()], shortcut=torch.nn.Identity())


def test_listed_without_order():
    from odenet.solvers.catalog import solver_table

    row = next(r for r in solver_table() if r["name"] == "plain")
    assert (row["family"], row["order"], row["real_extent"]) == ("plain", 0, None)
    result = CliRunner().invoke(app, ["solvers"], terminal_width=200)
    assert result.exit_code == 0
    line = next(ln for ln in result.output.splitlines() if "│ plain" in ln)
    cells = [c.strip() for c in line.split("│")]
    assert cells[2:7] == ["plain", "-", "1", "-", "-"]


def test_studies_accept_plain_and_its_budget_matches():
    from odenet.studies import plan_study, spec_from_sources

    spec = spec_from_sources(None, orders="1", solvers="plain", depths="20", lrs="0.1")
    runs, rows = plan_study(spec)
    assert [r.solver for r in rows] == ["euler", "plain"]
    assert all(r.params == PARAMS[20] and r.matched for r in rows)
    assert {r.solver for r in runs} == {"euler", "plain"}


def test_plain_members_fuse():
    models = [build_model(8, "plain", generator=torch.Generator().manual_seed(s)) for s in (0, 1)]
    fused = fuse(models).eval()
    xs = [torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(s)) for s in (5, 6)]
    with torch.no_grad():
        out = fused(stack_inputs(xs))
        for m, (model, x) in enumerate(zip(models, xs)):
            torch.testing.assert_close(out[:, m], model.eval()(x), rtol=1e-5, atol=1e-5)
