"""Continuous mode: a transition step followed by one shared ODE field integrated by torchdiffeq.

Per stage (Chen et al. 2018, torchdiffeq's odenet_mnist):

* a transition for stages whose input shape differs from the state (stages 2 and 3 of the CIFAR
  family): one downsampling field used as an Euler step, s = shortcut(x) + F(x) (plus the
  post-activation ReLU for postact networks);
* one shared field f(t, y), time concatenated to the input of each convolution as an extra
  channel, GroupNorm by default, integrated over [0, t1] by a ``ContinuousSolver``.

The number of blocks n of a 6n + 2 depth plays no part here: the ODE depth is the solver's.
The field is wrapped in ``NFECounter``: ``nfe`` gives the forward evaluations of the last
forward pass and the backward evaluations of the backward pass that followed it.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.nets.fields import make_field, make_norm, make_shortcut
from odenet.nets.stage import Stage
from odenet.solvers import ContinuousSolver, NFECounter, StackedSolver, get


@dataclass(frozen=True)
class ODEOptions:
    """How the shared field is integrated."""

    t1: float = 1.0  # integrate over [0, t1]
    rtol: float = 1e-3  # adaptive methods: relative tolerance
    atol: float = 1e-4  # adaptive methods: absolute tolerance
    step_size: float | None = None  # fixed-grid methods; None -> t1 / 4
    adjoint: bool = False  # backward by the adjoint ODE (odeint_adjoint, O(1) memory)


class ConcatConv2d(nn.Module):
    """3x3 convolution of [t, y]: time broadcast as one extra input channel."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels + 1, out_channels, 3, padding=1, bias=False)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        tt = t.to(y.dtype).expand(y.shape[0], 1, y.shape[2], y.shape[3])
        return self.conv(torch.cat([tt, y], dim=1))


class ODEField(nn.Module):
    """f(t, y): (N, C, H, W) -> (N, C, H, W), the layout of ``block`` with time-concat convs.

    postact: norm(cconv(t, relu(norm(cconv(t, y)))));
    preact:  cconv(t, relu(norm(cconv(t, relu(norm(y)))))).
    """

    def __init__(self, channels: int, block: str, norm: str) -> None:
        super().__init__()
        self.preact = block == "preact"
        self.norm1 = make_norm(norm, channels)
        self.conv1 = ConcatConv2d(channels, channels)
        self.norm2 = make_norm(norm, channels)
        self.conv2 = ConcatConv2d(channels, channels)

    def forward(self, t: Tensor, y: Tensor) -> Tensor:
        if self.preact:
            h = self.conv1(t, F.relu(self.norm1(y)))
            return self.conv2(t, F.relu(self.norm2(h)))
        h = F.relu(self.norm1(self.conv1(t, y)))
        return self.norm2(self.conv2(t, h))


class ContinuousStage(nn.Module):
    """Optional transition step, then y(t1) of dy/dt = f(t, y), y(0) = the transition's output."""

    def __init__(
        self,
        solver: ContinuousSolver,
        in_channels: int,
        out_channels: int,
        stride: int,
        *,
        block: str,
        shortcut: str,
        norm: str,
        field_norm: str,
        options: ODEOptions,
    ) -> None:
        super().__init__()
        self.solver = solver
        self.options = options
        self.transition: Stage | None = None
        if stride != 1 or in_channels != out_channels:
            euler = get("euler")
            assert isinstance(euler, StackedSolver)
            self.transition = Stage(
                euler,
                [make_field(block, in_channels, out_channels, stride, norm)],
                shortcut=make_shortcut(shortcut, in_channels, out_channels, stride, norm),
                post_relu=block == "postact",
            )
        self.field = NFECounter(ODEField(out_channels, block, field_norm))

    def forward(self, x: Tensor) -> Tensor:
        if self.transition is not None:
            x = self.transition(x)
        o = self.options
        self.field.start_forward()
        y = self.solver.integrate(
            self.field,
            x,
            t1=o.t1,
            rtol=o.rtol,
            atol=o.atol,
            step_size=o.step_size,
            adjoint=o.adjoint,
        )
        self.field.end_forward()
        return y

    @property
    def nfe(self) -> dict[str, int]:
        """{"forward": evaluations in the last forward, "backward": in the backward after it}."""
        return {"forward": self.field.nfe_forward, "backward": self.field.nfe_backward}

    def extra_repr(self) -> str:
        o = self.options
        return (
            f"solver={self.solver.name}, t1={o.t1}, rtol={o.rtol}, atol={o.atol}, "
            f"step_size={o.step_size}, adjoint={o.adjoint}"
        )
