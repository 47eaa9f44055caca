"""The analyze measurements on a model and batches, each against an independent computation:
responses and step ratios from the test's own forward hooks, gradient norms from
``backward()`` (field spectra: tests/test_analysis_eigen.py)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from odenet.analysis.responses import field_responses, gradient_norms, model_fields
from odenet.nets import ModelConfig, build_from_config


def _model(solver: str, depth: int = 14) -> torch.nn.Module:
    """A small random network with non-trivial BN statistics, eval mode."""
    gen = torch.Generator().manual_seed(3)
    config = ModelConfig(depth=depth, solver=solver, width=4, in_channels=3, num_classes=5)
    model = build_from_config(config, gen)
    with torch.no_grad():
        for name, b in model.named_buffers():
            if name.endswith("running_mean"):
                b.copy_(torch.randn(b.shape, generator=gen) * 0.1)
            elif name.endswith("running_var"):
                b.copy_(torch.rand(b.shape, generator=gen) + 0.5)
    return model.eval()


def _batches(n: int = 3, size: int = 6) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(4)
    return [
        (torch.randn(size, 3, 8, 8, generator=gen), torch.randint(0, 5, (size,), generator=gen))
        for _ in range(n)
    ]


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4"])
def test_responses_match_own_hooks(solver):
    model, batches = _model(solver), _batches()
    outs: dict[int, list[torch.Tensor]] = {}
    fields = [f for stage in model.stages for f in stage.fields]
    handles = [
        f.register_forward_hook(lambda _m, _a, o, i=i: outs.setdefault(i, []).append(o.detach()))
        for i, f in enumerate(fields)
    ]
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    for h in handles:
        h.remove()
    expected = [torch.cat(outs[i]).double().std().item() for i in range(len(fields))]
    got = field_responses(model, batches)
    assert len(got["responses"]) == len(fields) == 6
    assert got["responses"] == pytest.approx(expected, rel=1e-5)
    assert got["fields"][0] == "stage 1, field 1" and got["fields"][-1] == "stage 3, field 2"


def test_step_ratios_of_euler_match_own_hooks():
    """Euler: every field is a step; s is the field's input, or shortcut(x) for the first
    field of a downsampling stage."""
    model, batches = _model("euler"), _batches()
    seen: dict[int, list[tuple[torch.Tensor, torch.Tensor]]] = {}
    fields = [f for stage in model.stages for f in stage.fields]
    handles = [
        f.register_forward_hook(
            lambda _m, a, o, i=i: seen.setdefault(i, []).append((a[0].detach(), o.detach()))
        )
        for i, f in enumerate(fields)
    ]
    with torch.no_grad():
        for x, _ in batches:
            model(x)
    for h in handles:
        h.remove()
    expected = []
    for i in range(len(fields)):
        stage = model.stages[i // 2]
        k_sq = s_sq = 0.0
        for inp, out in seen[i]:
            s = stage.shortcut(inp) if i % 2 == 0 and stage.shortcut is not None else inp
            k_sq += out.double().pow(2).sum().item()
            s_sq += s.double().pow(2).sum().item()
        expected.append(math.sqrt(k_sq / s_sq))
    got = field_responses(model, batches)["step_ratios"]
    assert got == pytest.approx(expected, rel=1e-5)


def test_gradient_norms_match_backward():
    model, batches = _model("heun"), _batches()
    count = sum(len(y) for _, y in batches)
    inputs: list[torch.Tensor] = []
    fields = [f for stage in model.stages for f in stage.fields]

    def keep(_m, a, _o):
        a[0].retain_grad()
        inputs.append(a[0])

    handles = [f.register_forward_hook(keep) for f in fields]
    model.zero_grad()
    state_sq = torch.zeros(len(fields), dtype=torch.float64)
    for x, y in batches:
        inputs.clear()
        (F.cross_entropy(model(x), y, reduction="sum") / count).backward()
        for i, t in enumerate(inputs):
            state_sq[i] += t.grad.double().pow(2).sum()
    for h in handles:
        h.remove()
    params = [
        math.sqrt(sum(p.grad.double().pow(2).sum().item() for p in f.parameters())) for f in fields
    ]
    grads_before = [p.grad.clone() for p in model.parameters()]
    got = gradient_norms(model, batches)
    assert got["params"] == pytest.approx(params, rel=1e-5)
    assert got["states"] == pytest.approx(state_sq.sqrt().tolist(), rel=1e-5)
    assert all(torch.equal(a, p.grad) for a, p in zip(grads_before, model.parameters()))


def test_fields_follow_the_solvers_plan():
    """Depth 20 has 3 fields per stage: rk4 takes one rk3 step, heun a heun and an euler."""
    rk4 = model_fields(_model("rk4", depth=20))
    assert [f.scheme for f in rk4[:3]] == ["rk3"] * 3 and [f.step for f in rk4[:3]] == [0, 0, 0]
    heun = model_fields(_model("heun", depth=20))
    assert [(f.scheme, f.step, f.first_of_step) for f in heun[:3]] == [
        ("heun", 0, True),
        ("heun", 0, False),
        ("euler", 1, True),
    ]
