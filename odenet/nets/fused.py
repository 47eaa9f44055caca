"""K identical networks as one grouped network, and back.

``fuse(models)`` turns K ResNets of one ModelConfig (different weights) into a FusedResNet in
which member m owns the channel slice [m C, (m + 1) C) of every layer:

* Conv2d(C_in, C_out, groups=g) -> Conv2d(K C_in, K C_out, groups=K g);
* BatchNorm2d(C) -> BatchNorm2d(K C): per-channel statistics, so exactly K independent BNs;
* GroupNorm(G, C) -> GroupNorm(K G, K C): groups are contiguous channel blocks;
* ShortcutA -> FusedShortcutA: the zero channel padding applied per member, via (B, K, C, H, W);
* Linear(C, n) -> FusedLinear: weight (K n, C) used as a batched matmul with (K, n, C).

Every fused tensor is the concatenation of the K member tensors along dim 0 (BN's
``num_batches_tracked`` is one shared counter), so ``fuse_state_dicts`` / ``unfuse_state_dict``
are a plain cat / chunk and a round trip is bitwise. Input: the members' images stacked along
channels, (B, K C_in, H, W); output: logits (B, K, classes). Only solvers whose stacked update
is elementwise with fixed scalar coefficients fuse (Runge-Kutta methods, ab2, leapfrog, plain);
LM-ResNet (learnable k per member) and continuous mode (adaptive steps shared by the batch) do not.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.nets.fields import ShortcutA
from odenet.nets.resnet import ModelConfig, ResNet
from odenet.solvers import get


def fusable(config: ModelConfig) -> str | None:
    """None when K networks of ``config`` can be fused (``solver.fusable``); otherwise the
    reason, as one line."""
    solver = get(config.solver)
    if solver.fusable:
        return None
    if solver.family == "continuous":
        return (
            f"solver {solver.name!r} is continuous (ode-*): adaptive steps are shared by the "
            "whole batch, so members cannot be fused"
        )
    return (
        f"solver {solver.name!r} has per-network scheme coefficients (learnable k): it is not "
        "fused (fusable: Runge-Kutta methods, ab2, leapfrog)"
    )


class FusedShortcutA(nn.Module):
    """Option A per member: (B, K C_in, H, W) -> (B, K C_out, H', W'), each member zero-padded."""

    def __init__(self, members: int, stride: int, pad_lo: int, pad_hi: int) -> None:
        super().__init__()
        self.members, self.stride, self.pad_lo, self.pad_hi = members, stride, pad_lo, pad_hi

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        b, kc, h, w = x.shape
        x = x.reshape(b, self.members, kc // self.members, h, w)
        x = F.pad(x, (0, 0, 0, 0, self.pad_lo, self.pad_hi))
        return x.reshape(b, -1, h, w)


class FusedLinear(nn.Module):
    """K linear heads: (B, K C) -> (B, K, n). weight (K n, C) = the members' weights stacked."""

    def __init__(self, members: int, in_features: int, out_features: int, bias: bool) -> None:
        super().__init__()
        self.members, self.in_features, self.out_features = members, in_features, out_features
        self.weight = nn.Parameter(torch.empty(members * out_features, in_features))
        self.bias = nn.Parameter(torch.empty(members * out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        k, n, c = self.members, self.out_features, self.in_features
        out = torch.einsum("bkc,knc->bkn", x.reshape(x.shape[0], k, c), self.weight.view(k, n, c))
        return out if self.bias is None else out + self.bias.view(k, n)


def _fused_leaf(module: nn.Module, k: int) -> nn.Module | None:
    """The grouped counterpart of a parameterised leaf (uninitialised), None for containers."""
    if isinstance(module, nn.Conv2d):
        m = module
        if m.padding_mode != "zeros":
            raise ConfigError(f"cannot fuse a convolution with padding_mode={m.padding_mode!r}")
        return nn.Conv2d(
            k * m.in_channels, k * m.out_channels, m.kernel_size, stride=m.stride,
            padding=m.padding, dilation=m.dilation, groups=k * m.groups, bias=m.bias is not None,
        )  # fmt: skip
    if isinstance(module, nn.BatchNorm2d):
        return nn.BatchNorm2d(
            k * module.num_features, module.eps, module.momentum, module.affine,
            module.track_running_stats,
        )  # fmt: skip
    if isinstance(module, nn.GroupNorm):
        return nn.GroupNorm(
            k * module.num_groups, k * module.num_channels, module.eps, module.affine
        )
    if isinstance(module, ShortcutA):
        return FusedShortcutA(k, module.stride, module.pad_lo, module.pad_hi)
    if isinstance(module, nn.Linear):
        return FusedLinear(k, module.in_features, module.out_features, module.bias is not None)
    if any(True for _ in module.parameters(recurse=False)) or any(
        True for _ in module.buffers(recurse=False)
    ):
        raise ConfigError(
            f"cannot fuse {type(module).__name__}: it holds its own parameters (only convs, "
            "norms, option-A shortcuts and linear heads are fused)"
        )
    return None


def _fuse_children(module: nn.Module, k: int) -> None:
    """Replace, in place, every parameterised leaf below ``module`` by its grouped version."""
    for name, child in list(module.named_children()):
        fused = _fused_leaf(child, k)
        if fused is None:
            _fuse_children(child, k)
        else:
            setattr(module, name, fused)


class FusedResNet(nn.Module):
    """K ResNets of one config as one network: (B, K in_channels, H, W) -> (B, K, classes).

    Its module tree mirrors ResNet's (same state-dict keys); build it with ``fuse``.
    """

    def __init__(self, template: ResNet, members: int) -> None:
        super().__init__()
        if members < 1:
            raise ConfigError(f"members must be >= 1, got {members}")
        reason = fusable(template.config)
        if reason is not None:
            raise ConfigError(reason)
        self.config = template.config
        self.members = members
        for name, child in template.named_children():
            child = copy.deepcopy(child)
            fused = _fused_leaf(child, members)
            if fused is None:
                _fuse_children(child, members)
                fused = child
            self.add_module(name, fused)
        # Attributes that ResNet sets to None (no stem/head norm) are plain None here too.
        for name in ("stem_norm", "head_norm"):
            if not hasattr(self, name):
                setattr(self, name, None)

    # The same wiring as ResNet (stem, stages, head norm, pool, head) over the fused layers:
    # (B, K*C_in, H, W) -> (B, K, classes).
    forward = ResNet.forward


def stack_inputs(xs: Sequence[Tensor]) -> Tensor:
    """K member batches (B, C, H, W) -> the fused input (B, K C, H, W)."""
    return torch.cat(list(xs), dim=1)


def fuse_state_dicts(states: Sequence[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Member state dicts (same keys and shapes) -> the FusedResNet state dict (cat on dim 0).

    0-dim tensors (BatchNorm's ``num_batches_tracked``) must agree and are kept once.
    """
    if not states:
        raise ConfigError("nothing to fuse: no member state dicts")
    out: dict[str, Tensor] = {}
    for key, first in states[0].items():
        tensors = [s[key] for s in states]
        if first.ndim == 0:
            if any(not torch.equal(t, first) for t in tensors):
                raise ConfigError(f"members disagree on {key} ({[t.item() for t in tensors]})")
            out[key] = first.clone()
        else:
            out[key] = torch.cat(tensors, dim=0)
    return out


def unfuse_state_dict(state: dict[str, Tensor], members: int) -> list[dict[str, Tensor]]:
    """The inverse of ``fuse_state_dicts``: K member state dicts (independent, contiguous)."""
    out: list[dict[str, Tensor]] = [{} for _ in range(members)]
    for key, t in state.items():
        parts = [t] * members if t.ndim == 0 else list(t.chunk(members, dim=0))
        for m in range(members):
            out[m][key] = parts[m].detach().clone()
    return out


def fuse(models: Sequence[ResNet]) -> FusedResNet:
    """K ResNets of one ModelConfig -> a FusedResNet holding their weights (on their device)."""
    if not models:
        raise ConfigError("nothing to fuse: give at least one model")
    config = models[0].config
    for m in models[1:]:
        if m.config != config:
            raise ConfigError("only networks of one ModelConfig can be fused")
    fused = FusedResNet(models[0], len(models))
    fused.load_state_dict(fuse_state_dicts([m.state_dict() for m in models]))
    ref = next(models[0].parameters())
    return fused.to(device=ref.device, dtype=ref.dtype)


def unfuse(fused: FusedResNet) -> list[dict[str, Tensor]]:
    """K state dicts, each exactly loadable into a ResNet of ``fused.config``."""
    return unfuse_state_dict(fused.state_dict(), fused.members)
