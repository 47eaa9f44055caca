"""Every stacked scheme against the published formulas, bitwise: outputs, gradients and
Hessian-vector products.

The reference below is written from the papers' update rules (Runge-Kutta tableaux; AB2,
leapfrog and LM-ResNet's two-step updates; the plain net's x <- F(x)) in the operation order
the results were recorded with: s (shortcut on the first step, projection with shortcut C,
else u) before k1 = F_1(u) in a Runge-Kutta step and in the two-step methods' Euler start,
after F(u_n) in their later steps; each combination left to right, a coefficient 0 skipped and
a coefficient 1 not multiplied; then the ReLU of post-activation networks. A change in what a
stage computes, or in the order it computes it, changes some bit of an output, a gradient or a
Hessian-vector product (the sharpness measures' double backward).
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


def reference(stage: Stage, x: Tensor) -> Tensor:
    name = stage.solver.name
    fields = list(stage.fields)
    u, used, prev, f_prev = x, 0, None, None

    def start(i: int, u: Tensor) -> Tensor:
        if stage.projections is not None:
            return stage.projections[i](u)
        if i == 0 and stage.shortcut is not None:
            return stage.shortcut(u)
        return u

    for i, plan in enumerate(stage.plan()):
        fs = fields[used : used + plan.fields]
        used += plan.fields
        if name == "plain":
            new = fs[0](u)
        elif name in TWO_STEP or name == "lm":  # s first on the Euler start, F(u_n) first after
            if i == 0:
                s = start(i, u)
                k1 = fs[0](u)
                new = s + k1
            else:
                k1 = fs[0](u)
                s = start(i, u)
                if name == "lm":
                    k = stage.coefficients.k[i - 1]
                    new = (1 - k) * s + k * prev + k1
                else:
                    a1, a0, b1, b0 = TWO_STEP[name]
                    new = _terms([(a1, s), (a0, prev), (b1, k1), (b0, f_prev)])
            prev, f_prev = (s if i == 0 else u), k1
        else:  # Runge-Kutta: s, (learned: its coefficients,) then k1 = F_1(u)
            s = start(i, u)
            if stage.coefficients is None:
                tab = S.get(plan.scheme).tableau
                a, b = tab.a, tab.b
            else:
                a, b = stage.coefficients.step(i)  # step i's rows of A and b, as 0-dim tensors
            ks = [fs[0](u)]
            for r in range(1, len(b)):
                ks.append(fs[r](_terms(list(zip(a[r], ks)), s)))
            new = _terms(list(zip(b, ks)), s)
        u = F.relu(new) if stage.post_relu else new
    return u


def _grads(stage: Stage, forward) -> dict[str, Tensor | None]:
    """Gradients of a fixed loss, and a Hessian-vector product (the double backward that the
    sharpness measures take), for every parameter."""
    params = dict(stage.named_parameters())
    out = forward()
    loss = (out * torch.linspace(-1.0, 1.0, out.numel()).view_as(out)).square().sum()
    grads = torch.autograd.grad(loss, list(params.values()), create_graph=True, allow_unused=True)
    g = torch.Generator().manual_seed(2)
    dot = sum((d * torch.randn(d.shape, generator=g)).sum() for d in grads if d is not None)
    hvp = torch.autograd.grad(dot, list(params.values()), allow_unused=True)
    found: dict[str, Tensor | None] = {}
    for key, d, h in zip(params, grads, hvp):
        found["grad " + key] = None if d is None else d.detach()
        found["hvp " + key] = h
    return found


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
    assert torch.equal(stage(x), reference(stage, x))
    expected, got = _grads(stage, lambda: reference(stage, x)), _grads(stage, lambda: stage(x))
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
