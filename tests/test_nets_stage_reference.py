"""Every stacked scheme against the published formulas, bitwise, outputs and gradients.

The reference below is written from the papers' update rules (Runge-Kutta tableaux; AB2,
leapfrog and LM-ResNet's two-step updates; the plain net's x <- F(x)) in the operation order
the stage promises: per step k1 = F_1(u), then s (shortcut on the first step, projection with
shortcut C, else u), then the combination left to right, a coefficient 0 skipped and a
coefficient 1 not multiplied, then the ReLU of post-activation networks. Any change in what a
stage computes, or in the order it computes it, changes some bit of an output or a gradient.
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import odenet.solvers as S
from odenet.nets import Stage, make_stage

STACKED = [n for n in S.available() if not n.startswith("ode-")]
# u_{n+1} = a1 u_n + a0 u_{n-1} + b1 F(u_n) + b0 F(u_{n-1})
TWO_STEP = {"ab2": (1.0, 0.0, 1.5, -0.5), "leapfrog": (0.0, 1.0, 2.0, 0.0)}
VARIANTS = [("postact", "A", 2), ("preact", "B", 2), ("preact", "C", 1), ("postact", "C", 2)]


def _terms(terms: list[tuple[float | Tensor, Tensor]], base: Tensor | None = None) -> Tensor:
    """base + c_1 t_1 + c_2 t_2 + ...; a float 0 is skipped and a float 1 not multiplied."""
    out = base
    for c, t in terms:
        if isinstance(c, float) and c == 0.0:
            continue
        term = t if isinstance(c, float) and c == 1.0 else c * t
        out = term if out is None else out + term
    assert out is not None
    return out


def _tableau(stage: Stage, i: int, scheme: str):
    """(A rows, b) of step i: the registry's tableau, or the stage's learned coefficients."""
    if stage.coefficients is None:
        tab = S.get(scheme).tableau
        return tab.a, tab.b
    c = stage.coefficients
    b = [c.b[i][j] for j in range(len(c.b[i]))]
    flat = c.a[str(i)] if str(i) in c.a else []
    return [[flat[r * (r - 1) // 2 + j] for j in range(r)] for r in range(len(b))], b


def reference(stage: Stage, x: Tensor) -> Tensor:
    name = stage.solver.name
    fields = list(stage.fields)
    u, used, prev, f_prev = x, 0, None, None
    for i, plan in enumerate(stage.plan()):
        fs = fields[used : used + plan.fields]
        used += plan.fields
        k1 = fs[0](u)
        if stage.projections is not None:
            s = stage.projections[i](u)
        elif i == 0 and stage.shortcut is not None:
            s = stage.shortcut(u)
        else:
            s = u
        if name == "plain":
            new = k1
        elif name in TWO_STEP or name == "lm":
            if i == 0:
                new = s + k1
            elif name == "lm":
                k = stage.coefficients.k[i - 1]
                new = (1 - k) * s + k * prev + k1
            else:
                a1, a0, b1, b0 = TWO_STEP[name]
                new = _terms([(a1, s), (a0, prev), (b1, k1), (b0, f_prev)])
            prev, f_prev = (s if i == 0 else u), k1
        else:
            a, b = _tableau(stage, i, plan.scheme.removeprefix("learn-"))
            ks = [k1]
            for r in range(1, len(b)):
                ks.append(fs[r](_terms(list(zip(a[r], ks)), s)))
            new = _terms(list(zip(b, ks)), s)
        u = F.relu(new) if stage.post_relu else new
    return u


def _grads(stage: Stage, out: Tensor) -> dict[str, Tensor | None]:
    stage.zero_grad(set_to_none=True)
    (out * torch.linspace(-1.0, 1.0, out.numel()).view_as(out)).sum().backward()
    return {n: None if p.grad is None else p.grad.clone() for n, p in stage.named_parameters()}


@pytest.mark.parametrize(("block", "shortcut", "stride"), VARIANTS)
@pytest.mark.parametrize("name", STACKED)
def test_stage_is_the_published_scheme_bitwise(name, block, shortcut, stride):
    solver = S.get(name)
    n = solver.stages + 2  # a full step and leftovers (two-step, plain: three steps)
    g = torch.Generator().manual_seed(0)
    stage = make_stage(solver, n, 4, 8 if stride == 2 else 4, stride, block=block,
                       shortcut=shortcut, norm="bn", generator=g)  # fmt: skip
    with torch.no_grad():
        for p in stage.parameters():  # norms and coefficients off their initial values too
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn(3, 4, 6, 6, generator=g)
    out = stage(x)
    ref = reference(stage, x)
    assert torch.equal(out, ref)
    expected, got = _grads(stage, ref), _grads(stage, stage(x))
    assert expected.keys() == got.keys()
    for key, grad in expected.items():
        assert (grad is None) == (got[key] is None), key
        assert grad is None or torch.equal(grad, got[key]), key


def test_the_reference_tells_schemes_apart():
    """The test above can fail: the reference of one scheme is not the stage of another."""
    g = torch.Generator().manual_seed(0)
    heun = make_stage(S.get("heun"), 2, 4, 4, 1, block="preact", shortcut="A", norm="bn",
                      generator=g)  # fmt: skip
    ralston = Stage(S.get("ralston"), list(heun.fields))
    x = torch.randn(2, 4, 5, 5, generator=g)
    assert not torch.equal(reference(heun, x), ralston(x))
    assert torch.equal(reference(ralston, x), ralston(x))
