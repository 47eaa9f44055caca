"""Linear residual fields for stage tests: F(x) = hL x over the channels of (N, C, H, W)."""

from __future__ import annotations

import torch
from torch import nn


def channel_map(lin: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """L x over the channel axis of an (N, C, H, W) tensor."""
    return torch.einsum("ij,njhw->nihw", lin, x)


class LinearField(nn.Module):
    """F(x) = h L x (h absorbed into ``hl``)."""

    def __init__(self, hl: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("hl", hl)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return channel_map(self.hl, x)


def linear_problem(c: int = 3, seed: int = 1):
    """(L, x, f) with f(t, y) = L y: L (c, c) float64 of norm about 1, x (2, c, 4, 4)."""
    g = torch.Generator().manual_seed(seed)
    lin = torch.randn(c, c, generator=g, dtype=torch.float64) / c
    x = torch.randn(2, c, 4, 4, generator=g, dtype=torch.float64)
    return lin, x, (lambda t, y: channel_map(lin, y))


def smooth_network(solver: str, dtype: torch.dtype = torch.float64) -> nn.Module:
    """An ODE by construction, eval mode: a single-stage pre-activation network (each step a
    pure x + F(x)) whose 4 fields are one small linear map (conv + eval-mode BN)."""
    from odenet.nets import Stage, build_model

    g = torch.Generator().manual_seed(5)
    model = build_model(10, solver, arch="single", block="preact", width=4, generator=g)
    field = nn.Sequential(nn.Conv2d(4, 4, 3, padding=1, bias=False), nn.BatchNorm2d(4))
    with torch.no_grad():
        field[0].weight.normal_(0.0, 0.05, generator=g)
        for t in (field[1].weight, field[1].bias, field[1].running_mean):
            t.normal_(0.0, 0.5, generator=g)
        field[1].running_var.uniform_(0.5, 2.0, generator=g)
    stage = model.stages[0]
    model.stages[0] = Stage(stage.solver, [field] * len(stage.fields))
    return model.to(dtype).eval()
