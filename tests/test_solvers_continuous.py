"""The torchdiffeq adapter: network use and NFE counting."""

import pytest
import torch
from torch import nn

import odenet.solvers as S


class Linear(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(3, 3, dtype=torch.float64)

    def forward(self, t, y):
        return self.lin(y)


def _exact(field, y0, t1):
    W, b = field.lin.weight, field.lin.bias
    # y' = W y + b  ->  augmented linear system
    M = torch.zeros(4, 4, dtype=torch.float64)
    M[:3, :3], M[:3, 3] = W, b
    z = torch.linalg.matrix_exp(M * t1) @ torch.cat([y0, torch.ones(1, dtype=torch.float64)])
    return z[:3]


@pytest.mark.parametrize("adjoint", [False, True])
@pytest.mark.parametrize("name", ["ode-dopri5", "ode-bosh3", "ode-rk4"])
def test_integrate_counts_forward_and_backward(name, adjoint):
    torch.manual_seed(0)
    field = Linear()
    counter = S.NFECounter(field)
    y0 = torch.randn(3, dtype=torch.float64, requires_grad=True)
    solver = S.get(name)
    counter.start_forward()
    y1 = solver.integrate(
        counter, y0, t1=0.5, rtol=1e-9, atol=1e-9, step_size=0.01, adjoint=adjoint
    )
    counter.end_forward()
    assert counter.nfe_forward > 0 and counter.nfe_backward == 0
    # bosh3's global error stays ~1e-6 at these tolerances (torchdiffeq's controller), dopri5 ~1e-9
    tol = {"ode-dopri5": 1e-7, "ode-rk4": 1e-7, "ode-bosh3": 2e-5}[name]
    torch.testing.assert_close(y1, _exact(field, y0.detach(), 0.5), rtol=tol, atol=tol)
    y1.sum().backward()
    assert counter.nfe_backward > 0
    if not adjoint and not solver.adaptive:  # direct backprop: back through every evaluation once
        assert counter.nfe_backward == counter.nfe_forward
    elif not adjoint:  # adaptive: trial steps and step-size selection are not in the graph
        assert counter.nfe_backward <= counter.nfe_forward
    assert field.lin.weight.grad is not None and field.lin.weight.grad.abs().sum() > 0


def test_fixed_grid_nfe_is_steps_times_stages():
    counter = S.NFECounter(Linear())
    counter.start_forward()
    with torch.no_grad():
        S.get("ode-rk4").integrate(
            counter, torch.ones(3, dtype=torch.float64), t1=1.0, step_size=0.25
        )
    assert counter.nfe_forward == 4 * 4
