"""Convergence orders of every registered solver, and agreement with torchdiffeq."""

import math

import pytest
import torch
import torchdiffeq

import odenet.solvers as S

A = torch.tensor([[-0.5, 2.0], [-2.0, -0.5]], dtype=torch.float64)  # damped rotation
Y0 = torch.tensor([1.0, 0.5], dtype=torch.float64)
T1 = 1.0


def linear_field(t, y):
    return A @ y


def exact():
    return torch.linalg.matrix_exp(A * T1) @ Y0


def empirical_order(method: str, steps=(8, 16, 32, 64, 128)) -> float:
    """Slope of log(error) against log(h) by least squares over successive halvings."""
    y_exact = exact()
    logs_h, logs_e = [], []
    for n in steps:
        err = (S.solve(linear_field, Y0, 0.0, T1, n, method) - y_exact).norm().item()
        logs_h.append(math.log(T1 / n))
        logs_e.append(math.log(err))
    mh, me = sum(logs_h) / len(logs_h), sum(logs_e) / len(logs_e)
    num = sum((h - mh) * (e - me) for h, e in zip(logs_h, logs_e))
    den = sum((h - mh) ** 2 for h in logs_h)
    return num / den


@pytest.mark.parametrize("name", S.available())
def test_convergence_order_matches_declared(name):
    solver = S.get(name)
    # high orders reach float64 rounding quickly: use coarser grids for them
    steps = (4, 8, 16, 32) if solver.order >= 4 else (8, 16, 32, 64, 128)
    order = empirical_order(name, steps)
    assert abs(order - solver.order) < 0.3, f"{name}: measured {order:.3f}, declared {solver.order}"


@pytest.mark.parametrize(
    "ours, theirs",
    [
        ("euler", "euler"),
        ("midpoint", "midpoint"),
        ("heun", "heun2"),
        ("heun3", "heun3"),
        ("rk38", "rk4"),
    ],
)
@pytest.mark.parametrize("steps", [1, 7, 32])
def test_agrees_with_torchdiffeq(ours, theirs, steps):
    h = T1 / steps
    t = torch.tensor([0.0, T1], dtype=torch.float64)
    ref = torchdiffeq.odeint(linear_field, Y0, t, method=theirs, options={"step_size": h})[-1]
    got = S.solve(linear_field, Y0, 0.0, T1, steps, ours)
    torch.testing.assert_close(got, ref, rtol=1e-14, atol=1e-14)


def test_float32_and_shape_preserved():
    y0 = torch.randn(3, 4, 5, generator=torch.Generator().manual_seed(0))
    out = S.solve(lambda t, y: -y, y0, 0.0, 1.0, 20, "rk4")
    assert out.shape == y0.shape and out.dtype == torch.float32
    torch.testing.assert_close(out, y0 * math.exp(-1.0), rtol=1e-5, atol=1e-6)


def test_nonautonomous_uses_the_stage_times():
    # y' = t^3 has y(1) = 1/4 exactly for any method of order >= 4 (quadrature of a cubic)
    y0 = torch.zeros((), dtype=torch.float64)
    for name in ("rk4", "rk38", "gill", "ode-rk4", "ode-dopri5"):
        y = S.solve(
            lambda t, y: torch.as_tensor(t, dtype=torch.float64) ** 3, y0, 0.0, 1.0, 3, name
        )
        assert abs(y.item() - 0.25) < 1e-13, name
