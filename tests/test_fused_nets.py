"""Fusing K networks into one grouped network: bitwise round trip, forward equality, SGD."""

import pytest
import torch

from odenet.errors import ConfigError
from odenet.nets import build_model
from odenet.nets.fused import (
    FusedResNet,
    fusable,
    fuse,
    fuse_state_dicts,
    stack_inputs,
    unfuse,
    unfuse_state_dict,
)
from odenet.training import TrainConfig
from odenet.training.sgd import MemberSGD

K = 3
VARIANTS = [("postact", "A", None), ("preact", "B", "gn")]


pytestmark = pytest.mark.usefixtures("one_thread")


def members(solver="euler", block="postact", shortcut="A", norm=None, k=K):
    return [
        build_model(8, solver, block=block, shortcut=shortcut, norm=norm, width=4,
                    generator=torch.Generator().manual_seed(s))
        for s in range(k)
    ]  # fmt: skip


@pytest.mark.parametrize("block,shortcut,norm", VARIANTS)
def test_round_trip_is_bitwise(block, shortcut, norm):
    models = members("rk4", block, shortcut, norm)
    states = unfuse(fuse(models))
    for model, state in zip(models, states):
        ref = model.state_dict()
        assert list(state) == list(ref)
        for key in ref:
            assert torch.equal(state[key], ref[key]), key
        model.load_state_dict(state)  # exactly loadable (strict)


@pytest.mark.parametrize("solver", ["euler", "heun", "rk4", "ab2", "leapfrog"])
@pytest.mark.parametrize("block,shortcut,norm", VARIANTS)
def test_fused_forward_equals_separate_forwards(solver, block, shortcut, norm):
    models = members(solver, block, shortcut, norm)
    fused = fuse(models)
    g = torch.Generator().manual_seed(1)
    xs = [torch.randn(4, 3, 12, 12, generator=g) for _ in models]
    out = fused(stack_inputs(xs))  # training mode: batch statistics per member
    assert out.shape == (4, K, 10)
    for m, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, m], model(x))
    fused.eval()
    out = fused(stack_inputs(xs))  # eval mode: the running statistics just updated
    for m, (model, x) in enumerate(zip(models, xs)):
        torch.testing.assert_close(out[:, m], model.eval()(x))


def test_member_gradients_are_separate_gradients():
    models = members("heun")
    fused = fuse(models)
    g = torch.Generator().manual_seed(2)
    xs = [torch.randn(4, 3, 8, 8, generator=g) for _ in models]
    ys = [torch.randint(0, 10, (4,), generator=g) for _ in models]
    logits = fused(stack_inputs(xs))
    losses = torch.nn.functional.cross_entropy(
        logits.transpose(1, 2), torch.stack(ys, 1), reduction="none"
    ).mean(0)
    losses.sum().backward()
    grads = unfuse_state_dict({n: p.grad for n, p in fused.named_parameters()}, K)
    for model, x, y, grad in zip(models, xs, ys, grads):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        for n, p in model.named_parameters():
            torch.testing.assert_close(grad[n], p.grad)


@pytest.mark.parametrize("solver", ["lm", "ode-rk4"])
def test_unfusable_schemes_refuse_loudly(solver):
    model = build_model(8, solver, width=4, generator=torch.Generator().manual_seed(0))
    reason = fusable(model.config)
    assert reason is not None and solver.split("-")[0] in reason
    with pytest.raises(ConfigError, match="fuse|fused"):
        FusedResNet(model, 2)


def test_fuse_refuses_different_configs_and_disagreeing_counters():
    a = build_model(8, "euler", width=4)
    b = build_model(8, "euler", width=8)
    with pytest.raises(ConfigError, match="one ModelConfig"):
        fuse([a, b])
    sa, sb = a.state_dict(), build_model(8, "euler", width=4).state_dict()
    sb["stem_norm.num_batches_tracked"] += 1
    with pytest.raises(ConfigError, match="num_batches_tracked"):
        fuse_state_dicts([sa, sb])


def test_fused_sgd_matches_torch_sgd_per_member():
    """Per-member lrs times a shared schedule factor, Nesterov momentum, weight decay on
    ndim > 1; member 1 masked out from step 3: the others still match torch.optim.SGD (lr =
    peak x factor) and member 1's weights stay bitwise unchanged."""
    config = TrainConfig(momentum=0.9, nesterov=True, weight_decay=5e-3)
    models = members("euler")
    fused = fuse(members("euler"))
    lrs = [0.01, 0.05, 0.1]
    factors = [1.0, 0.5, 0.25, 0.125]
    opt = MemberSGD(fused, K, config, lrs)
    refs = [
        torch.optim.SGD(
            [{"params": [p for p in m.parameters() if p.ndim > 1], "weight_decay": 5e-3},
             {"params": [p for p in m.parameters() if p.ndim <= 1], "weight_decay": 0.0}],
            lr=lr, momentum=0.9, nesterov=True,
        )
        for m, lr in zip(models, lrs)
    ]  # fmt: skip
    g = torch.Generator().manual_seed(3)
    ce = torch.nn.functional.cross_entropy
    for step, factor in enumerate(factors):
        active = [True, step < 2, True]
        xs = [torch.randn(4, 3, 8, 8, generator=g) for _ in models]
        ys = [torch.randint(0, 10, (4,), generator=g) for _ in models]
        logits = fused(stack_inputs(xs))
        ce(logits.transpose(1, 2), torch.stack(ys, 1), reduction="none").mean(0).sum().backward()
        for m, (model, x, y) in enumerate(zip(models, xs, ys)):
            if active[m]:
                ce(model(x), y).backward()
                for group in refs[m].param_groups:
                    group["lr"] = lrs[m] * factor
                refs[m].step()
                refs[m].zero_grad()
        if step == 2:
            frozen = {n: p.clone() for n, p in unfuse(fused)[1].items()}
        opt.step(torch.tensor([True, step < 2, True]), factor)
        opt.zero_grad()
    states = unfuse(fused)
    for model, state in zip(models, states):
        for n, p in model.named_parameters():
            torch.testing.assert_close(state[n], p.detach())
    for n, _ in models[1].named_parameters():
        assert torch.equal(states[1][n], frozen[n]), n


def test_a_nan_member_is_frozen_without_touching_the_others():
    """Member 1's weights are non-finite, so its loss and gradients are NaN: masked out of
    every update (as the engine does on divergence), it never moves, and the others' update is
    bitwise that of a fused step in which member 1 is finite and masked out too."""
    config = TrainConfig(momentum=0.9, weight_decay=5e-4)
    models = members("heun")
    with torch.no_grad():
        models[1].stem_conv.weight.fill_(float("inf"))
    fused, reference = fuse(models), fuse(members("heun"))
    start = unfuse(fused)[1]
    opt, ref_opt = (
        MemberSGD(fused, K, config, [0.1] * K),
        MemberSGD(reference, K, config, [0.1] * K),
    )
    keep = torch.tensor([True, False, True])
    g = torch.Generator().manual_seed(0)
    ce = torch.nn.functional.cross_entropy
    for _ in range(3):
        x = torch.randn(4, 3 * K, 8, 8, generator=g)
        y = torch.randint(0, 10, (4, K), generator=g)
        for net, optimizer in ((fused, opt), (reference, ref_opt)):
            losses = ce(net(x).transpose(1, 2), y, reduction="none").mean(0)
            optimizer.zero_grad()
            losses.sum().backward()
            optimizer.step(keep, 1.0)
            if net is fused:
                assert not losses[1].isfinite() and losses[[0, 2]].isfinite().all()
    got, want = unfuse(fused), unfuse(reference)
    for m in (0, 2):
        for n in got[m]:
            assert torch.equal(got[m][n], want[m][n]), n
    for n, _ in models[1].named_parameters():  # weights (not BN statistics) never moved
        assert torch.equal(got[1][n], start[n]), n
