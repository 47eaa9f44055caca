"""Residual branches F(x) and the shortcuts that go with downsampling fields.

A field maps (N, C_in, H, W) -> (N, C_out, H', W'); C_out == C_in and H' == H except for the
downsampling field (stride 2, C_out = 2 C_in, H' = ceil(H / 2)), which is always k1 of a
stage's first step. The step size h is absorbed into the field's weights.

* ``postact`` (He et al. 2015 basic block): conv-norm-ReLU-conv-norm; the ReLU after each
  step's sum is the stage's ``post``, not part of the field.
* ``preact`` (He et al. 2016): norm-ReLU-conv-norm-ReLU-conv, the pure x + F(x) form.
* ``bottleneck`` (He et al. 2015, ImageNet ResNet-50/101/152): 1x1 conv to C_out / 4,
  3x3 conv (carrying the stride, as torchvision's v1.5), 1x1 conv back to C_out, each followed
  by a norm (ReLU between); post-activation like ``postact``. Not a ``block`` choice of the
  CIFAR family: the ImageNet architectures select it (odenet.nets.resnet).

Shortcuts:
* ``A``: where the shape changes, subsample x[:, :, ::2, ::2] and zero-pad the channels (no
  parameters); identity elsewhere;
* ``B``: where the shape changes, a 1x1 convolution with the stride, then a norm;
* ``C`` (He et al.): that 1x1 convolution + norm projection on every step, also where the
  shape is unchanged. A step of s fields has one projection, applied to the step's start
  state (see odenet.nets.stage), so an s-stage scheme has fewer projections than euler.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError

BLOCKS = ("postact", "preact")  # the block types a user chooses (ModelConfig.block)
FIELDS = (*BLOCKS, "bottleneck")  # every field make_field builds
BOTTLENECK_EXPANSION = 4  # C_out = 4 x the bottleneck's inner width
SHORTCUTS = ("A", "B", "C")
NORMS = ("bn", "gn")


def make_norm(kind: str, channels: int) -> nn.Module:
    """BatchNorm2d ("bn") or GroupNorm ("gn", gcd(32, C) groups so any C works)."""
    if kind == "bn":
        return nn.BatchNorm2d(channels)
    if kind == "gn":
        return nn.GroupNorm(math.gcd(32, channels), channels)
    raise ConfigError(f"unknown norm {kind!r}; expected one of: {', '.join(NORMS)}")


def conv3x3(in_channels: int, out_channels: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)


class PostActField(nn.Module):
    """F(x) = norm(conv(relu(norm(conv_s(x))))); s = stride of the first conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.norm1 = make_norm(norm, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)
        self.norm2 = make_norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm2(self.conv2(F.relu(self.norm1(self.conv1(x)))))


class PreActField(nn.Module):
    """F(x) = conv(relu(norm(conv_s(relu(norm(x)))))); s = stride of the first conv."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        self.norm1 = make_norm(norm, in_channels)
        self.conv1 = conv3x3(in_channels, out_channels, stride)
        self.norm2 = make_norm(norm, out_channels)
        self.conv2 = conv3x3(out_channels, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2(F.relu(self.norm2(self.conv1(F.relu(self.norm1(x))))))


class BottleneckField(nn.Module):
    """F(x) = norm(conv1x1(relu(norm(conv3x3_s(relu(norm(conv1x1(x)))))))), inner C_out / 4."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        if out_channels % BOTTLENECK_EXPANSION:
            raise ConfigError(
                f"a bottleneck field needs out_channels divisible by {BOTTLENECK_EXPANSION}, "
                f"got {out_channels}"
            )
        mid = out_channels // BOTTLENECK_EXPANSION
        self.conv1 = nn.Conv2d(in_channels, mid, 1, bias=False)
        self.norm1 = make_norm(norm, mid)
        self.conv2 = conv3x3(mid, mid, stride)
        self.norm2 = make_norm(norm, mid)
        self.conv3 = nn.Conv2d(mid, out_channels, 1, bias=False)
        self.norm3 = make_norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = F.relu(self.norm1(self.conv1(x)))
        h = F.relu(self.norm2(self.conv2(h)))
        return self.norm3(self.conv3(h))


class ShortcutA(nn.Module):
    """Option A: x[:, :, ::s, ::s] zero-padded from C_in to C_out channels (no parameters)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.stride = stride
        self.pad_lo = (out_channels - in_channels) // 2
        self.pad_hi = out_channels - in_channels - self.pad_lo

    def forward(self, x: Tensor) -> Tensor:
        x = x[:, :, :: self.stride, :: self.stride]
        return F.pad(x, (0, 0, 0, 0, self.pad_lo, self.pad_hi))


class ShortcutB(nn.Module):
    """Options B and C: norm(conv1x1_s(x)), a learned projection."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)
        self.norm = make_norm(norm, out_channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(self.conv(x))


def make_field(
    block: str, in_channels: int, out_channels: int, stride: int, norm: str
) -> nn.Module:
    """A residual branch of the given type ("postact" | "preact" | "bottleneck")."""
    if block == "postact":
        return PostActField(in_channels, out_channels, stride, norm)
    if block == "preact":
        return PreActField(in_channels, out_channels, stride, norm)
    if block == "bottleneck":
        return BottleneckField(in_channels, out_channels, stride, norm)
    raise ConfigError(f"unknown block {block!r}; expected one of: {', '.join(FIELDS)}")


def make_shortcut(
    kind: str, in_channels: int, out_channels: int, stride: int, norm: str
) -> nn.Module | None:
    """The shortcut of a step: None (identity) when the shape is unchanged, except for C."""
    if kind not in SHORTCUTS:
        raise ConfigError(f"unknown shortcut {kind!r}; expected one of: {', '.join(SHORTCUTS)}")
    if kind == "C":
        return ShortcutB(in_channels, out_channels, stride, norm)
    if stride == 1 and in_channels == out_channels:
        return None
    if kind == "A":
        if out_channels < in_channels:
            raise ConfigError("shortcut A can only add channels; use shortcut B")
        return ShortcutA(in_channels, out_channels, stride)
    return ShortcutB(in_channels, out_channels, stride, norm)
