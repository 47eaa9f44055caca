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
