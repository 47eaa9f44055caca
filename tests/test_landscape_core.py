"""Numerical core of the landscape: directions, batched slices, resume, Hessian sharpness."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from odenet.analysis.directions import (
    make_directions,
    perturbed_parameters,
    trained_parameters,
)
from odenet.analysis.sharpness import (
    SharpnessConfig,
    hutchinson_trace,
    make_hvp,
    model_sharpness,
    top_eigenvalue,
)
from odenet.analysis.slices import GridSpec, SliceEvaluator, compute_slice, load_slice
from odenet.errors import ConfigError


class TinyNet(nn.Module):
    """conv-BN-relu, a learnable scalar mix (like LM-ResNet's k), pool, linear."""

    def __init__(self, generator: torch.Generator) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 6, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(6)
        self.conv2 = nn.Conv2d(6, 6, 3, padding=1, bias=True)
        self.k = nn.Parameter(torch.tensor([-0.05]))
        self.fc = nn.Linear(6, 4)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=generator) * 0.5)
            self.bn.running_mean.copy_(torch.randn(6, generator=generator) * 0.1)
            self.bn.running_var.copy_(torch.rand(6, generator=generator) + 0.5)

    def forward(self, x):
        h = F.relu(self.bn(self.conv(x)))
        h = (1 - self.k) * h + self.k * self.conv2(h)
        return self.fc(h.mean((2, 3)))


@pytest.fixture()
def tiny():
    g = torch.Generator().manual_seed(1)
    model = TinyNet(g).eval()
    x = torch.randn(40, 3, 6, 6, generator=g)
    y = torch.randint(0, 4, (40,), generator=g)
    batches = [(x[:16], y[:16]), (x[16:32], y[16:32]), (x[32:], y[32:])]
    return model, x, y, batches


def test_filter_normalisation_norms_and_zeroed(tiny):
    model, *_ = tiny
    theta = trained_parameters(model)
    d1, d2 = make_directions(model, 2, seed=3)
    for d in (d1, d2):
        for name, w in theta.items():
            if w.dim() <= 1:
                assert torch.count_nonzero(d[name]) == 0, name
            else:
                torch.testing.assert_close(
                    d[name].flatten(1).norm(dim=1), w.flatten(1).norm(dim=1), rtol=1e-6, atol=0
                )
    assert not torch.equal(d1["conv.weight"], d2["conv.weight"])
    # same seed -> same directions; d1 does not depend on how many are drawn
    again = make_directions(model, 1, seed=3)[0]
    assert all(torch.equal(again[n], d1[n]) for n in d1)
    other = make_directions(model, 1, seed=4)[0]
    assert not torch.equal(other["conv.weight"], d1["conv.weight"])


def test_include_1d_keeps_weight_directions_and_copies_theta(tiny):
    model, *_ = tiny
    theta = trained_parameters(model)
    plain = make_directions(model, 1, seed=0)[0]
    with_1d = make_directions(model, 1, seed=0, include_1d=True)[0]
    for name, w in theta.items():
        if w.dim() <= 1:
            assert torch.equal(with_1d[name], w)
        else:
            assert torch.equal(with_1d[name], plain[name])


def test_buffers_not_in_directions_and_perturbation_formula(tiny):
    model, *_ = tiny
    theta = trained_parameters(model)
    d1, d2 = make_directions(model, 2, seed=0)
    assert "bn.running_mean" not in d1 and set(d1) == set(theta)
    coords = torch.tensor([[0.5, -2.0], [0.0, 0.0]], dtype=torch.float64)
    stacked = perturbed_parameters(theta, [d1, d2], coords)
    name = "conv.weight"
    torch.testing.assert_close(stacked[name][0], theta[name] + 0.5 * d1[name] - 2.0 * d2[name])
    assert torch.equal(stacked[name][1], theta[name])


def _eval_loss(model, x, y):
    with torch.no_grad():
        logits = model.eval()(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).double().mean().item()


@pytest.mark.parametrize("mode", ["vmap", "loop"])
def test_origin_equals_eval_loss(tiny, mode):
    model, x, y, batches = tiny
    ev = SliceEvaluator(model, batches, points_per_batch=3, mode=mode)
    dirs = make_directions(model, 2, seed=0)
    grid = GridSpec(dims=2, lo=-1.0, hi=1.0, points=5)
    res = compute_slice(ev, trained_parameters(model), dirs, grid)
    loss0, acc0 = _eval_loss(model, x, y)
    assert res.complete
    assert res.at_origin()[0] == pytest.approx(loss0, rel=1e-5)
    assert res.at_origin()[1] == acc0
    assert res.loss[2, 2] == res.at_origin()[0]
    # away from the origin the loss changes
    assert abs(res.loss[0, 0] - loss0) > 1e-3


def test_vmap_matches_loop_and_model_is_untouched(tiny):
    model, x, y, batches = tiny
    before = {k: v.clone() for k, v in model.state_dict().items()}
    dirs = make_directions(model, 1, seed=5)
    theta = trained_parameters(model)
    coords = GridSpec(dims=1, points=7).coords()
    lv, av = SliceEvaluator(model, batches, points_per_batch=4, mode="vmap").evaluate(
        theta, dirs, coords
    )
    ll, al = SliceEvaluator(model, batches, points_per_batch=4, mode="loop").evaluate(
        theta, dirs, coords
    )
    torch.testing.assert_close(lv, ll, rtol=1e-5, atol=1e-6)
    assert torch.equal(av, al)
    # point 2 (a = -1/3) by hand: load the perturbed weights into a copy and run it
    ref = TinyNet(torch.Generator().manual_seed(0)).eval()
    ref.load_state_dict(before)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            p.add_(coords[2, 0].item() * dirs[0][name])
    assert lv[2].item() == pytest.approx(_eval_loss(ref, x, y)[0], rel=1e-5)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


class _NoVmap(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 2)

    def forward(self, x):
        if self.fc.weight.sum().item() > 1e9:  # data-dependent control flow: vmap cannot trace it
            return x[:, :2]
        return self.fc(x)


def test_auto_falls_back_to_loop_with_a_note():
    model = _NoVmap()
    batches = [(torch.randn(5, 3), torch.tensor([0, 1, 0, 1, 1]))]
    ev = SliceEvaluator(model, batches, points_per_batch=2, mode="auto")
    dirs = make_directions(model, 1, seed=0)
    loss, _ = ev.evaluate(trained_parameters(model), dirs, GridSpec(1, points=3).coords())
    assert ev.mode == "loop" and "vmap failed" in ev.note
    assert torch.isfinite(loss).all() and loss.shape == (3,)


def test_resume_skips_done_points(tiny, tmp_path):
    model, x, y, batches = tiny
    dirs = make_directions(model, 1, seed=0)
    theta = trained_parameters(model)
    grid = GridSpec(dims=1, points=7)
    path = tmp_path / "s.npz"
    settings = {"seed": 0, "points": 7}
    ev = SliceEvaluator(model, batches, points_per_batch=2, mode="vmap")

    class Stop(Exception):
        pass

    def interrupt(done, total):
        if done >= 4:
            raise Stop

    with pytest.raises(Stop):
        compute_slice(ev, theta, dirs, grid, path=path, settings=settings, on_chunk=interrupt)
    partial = load_slice(path, grid, settings)
    assert partial.done.sum() == 4 and np.isnan(partial.loss[~partial.done]).all()
    calls = []
    orig = ev.evaluate
    ev.evaluate = lambda th, d, c: calls.append(c.shape[0]) or orig(th, d, c)
    res = compute_slice(ev, theta, dirs, grid, path=path, settings=settings)
    assert calls == [2, 1] and res.complete
    full = compute_slice(SliceEvaluator(model, batches, mode="loop"), theta, dirs, grid)
    np.testing.assert_allclose(res.loss, full.loss, rtol=1e-5)
    # different settings -> not reused
    assert load_slice(path, grid, {"seed": 1, "points": 7}).done.sum() == 0


def test_grid_validation():
    with pytest.raises(ConfigError, match="--dims"):
        GridSpec(dims=3).validate()
    with pytest.raises(ConfigError, match="A < B"):
        GridSpec(dims=1, lo=1.0, hi=-1.0).validate()
    c = GridSpec(dims=2, points=3).coords()
    assert c.shape == (9, 2) and c[1].tolist() == [-1.0, 0.0]
    # np.linspace(-1, 1, 99)[49] is 1e-16, not 0: snapped so theta itself is on the grid
    assert GridSpec(dims=1, points=99).axis()[49] == 0.0
    assert (GridSpec(dims=1, lo=-0.3, hi=0.7, points=11).axis() == 0.0).sum() == 1


class Quadratic(nn.Module):
    """loss(x) = 0.5 x^T H x (a 'model' whose Hessian is H)."""

    def __init__(self, n: int, generator: torch.Generator) -> None:
        super().__init__()
        self.x = nn.Parameter(torch.randn(n, generator=generator, dtype=torch.float64))


def _spd(n: int, generator: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=generator, dtype=torch.float64))
    eigs = torch.cat(
        [
            torch.linspace(0.1, 1.0, n - 1, dtype=torch.float64),
            torch.tensor([2.5], dtype=torch.float64),
        ]
    )
    return q @ torch.diag(eigs) @ q.T


def test_power_iteration_and_hutchinson_on_a_quadratic():
    g = torch.Generator().manual_seed(0)
    n = 12
    h = _spd(n, g)
    model = Quadratic(n, g)
    params = [model.x]
    hvp = make_hvp(lambda: [0.5 * model.x @ h @ model.x], params)
    v = torch.randn(n, generator=g, dtype=torch.float64)
    torch.testing.assert_close(hvp([v])[0], h @ v)
    eig = top_eigenvalue(hvp, params, iters=200, tol=1e-10, generator=g)
    expected = torch.linalg.eigvalsh(h)[-1].item()
    assert eig.converged
    assert abs(eig.value - expected) <= 1e-4 * expected
    tr = hutchinson_trace(hvp, params, probes=2000, generator=g)
    assert abs(tr.value - torch.trace(h).item()) <= 0.03 * torch.trace(h).item()
    assert 0 < tr.stderr < 0.02 * torch.trace(h).item()


def test_model_sharpness_matches_dense_hessian():
    g = torch.Generator().manual_seed(2)
    model = nn.Linear(3, 3).double()
    x = torch.randn(20, 3, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (20,), generator=g)
    params = list(model.parameters())
    shapes = [p.shape for p in params]
    flat0 = torch.cat([p.detach().reshape(-1) for p in params])

    def loss_flat(flat):
        w, b = flat[:9].view(shapes[0]), flat[9:].view(shapes[1])
        return F.cross_entropy(x @ w.T + b, y)

    dense = torch.autograd.functional.hessian(loss_flat, flat0)
    ev = torch.linalg.eigvalsh(dense)
    # 1e-8: well inside the 1e-4 accuracy asserted below, and above float64 rounding noise of the
    # Rayleigh quotient (1e-10 made convergence depend on the reduction order)
    cfg = SharpnessConfig(power_iters=300, power_tol=1e-8, trace_probes=300, seed=0)
    s = model_sharpness(model, [(x[:7], y[:7]), (x[7:], y[7:])], cfg)
    top = ev[ev.abs().argmax()].item()
    assert s.lambda_max == pytest.approx(top, rel=1e-4)
    # unbiased estimate: within 4 standard errors, and the standard error is a few percent
    true_trace = torch.trace(dense).item()
    assert abs(s.trace - true_trace) <= 4 * s.trace_stderr
    assert 0 < s.trace_stderr < 0.05 * true_trace
    assert s.converged and s.power_iterations < 300
    assert s.to_dict()["config"]["trace_probes"] == 300
