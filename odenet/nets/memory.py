"""How much memory a network needs, estimated from its config without building it.

A model too large for the machine must be refused in seconds with the estimate, not by the
allocator after minutes (or by the kernel's OOM killer). The estimate walks the config's
layout (``ModelConfig.layout()``: stem and stages of every arch) without building anything:

* parameters: the convolution weights of the stem and of the fields (3x3 pairs; 1x1-3x3-1x1
  for bottlenecks; one shared field per stage in continuous mode): a lower bound of the
  exact count (norms, biases, projection shortcuts and the head add little);
* training needs TRAIN_BYTES_PER_PARAM per parameter: float32 weights, gradients, SGD momentum
  and one copy (the checkpoint's state dict);
* activations kept for the backward pass: ACTIVATIONS_PER_FIELD feature maps of a field's
  output size per field and image (two convolutions, two norms, a ReLU and the sum), times
  the batch size.
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from pathlib import Path

from odenet.errors import ConfigError

TRAIN_BYTES_PER_PARAM = 16  # float32 weights + gradients + momentum + one copy
ACTIVATIONS_PER_FIELD = 6  # feature maps of one field saved for the backward pass
FLOAT_BYTES = 4


@dataclass(frozen=True)
class MemoryEstimate:
    """Bytes a training of one model needs (estimates, see the module docstring)."""

    params: int  # parameters (lower bound)
    param_bytes: int  # params x TRAIN_BYTES_PER_PARAM
    activation_bytes: int  # feature maps kept for backward, for the whole batch

    @property
    def total(self) -> int:
        return self.param_bytes + self.activation_bytes


def estimate(config, image_size: int = 32, batch_size: int = 1) -> MemoryEstimate:
    """The memory one training step of ``config`` (a valid ModelConfig) needs; allocates
    nothing. Continuous models have one shared field per stage; their activations depend on
    the solver's step count, so one evaluation is counted."""
    config = config.for_data()  # concrete in_channels
    layout = config.layout()
    continuous = config.continuous
    params = layout.stem_kernel**2 * config.in_channels * layout.stem_channels
    side = image_size // layout.stem_stride // (2 if layout.stem_pool else 1)
    maps = 0
    for stage in layout.stages:
        fields = 1 if continuous else stage.fields
        c_in, c = stage.in_channels, stage.out_channels
        if layout.block == "bottleneck":
            mid = c // 4
            params += c_in * mid + 9 * mid * mid + mid * c  # the first field
            params += (fields - 1) * (c * mid + 9 * mid * mid + mid * c)
        else:
            params += 9 * c_in * c + 9 * c * c  # the first field (may change the shape)
            params += (fields - 1) * 2 * 9 * c * c
        side = max(side // stage.stride, 1)
        maps += fields * ACTIVATIONS_PER_FIELD * c * side * side
    return MemoryEstimate(params, params * TRAIN_BYTES_PER_PARAM, maps * FLOAT_BYTES * batch_size)


def check_fits(config, image_size: int = 32, batch_size: int = 1) -> None:
    """ConfigError with the estimate when training ``config`` cannot fit in this machine's
    memory (physical RAM: the model is built on the host first). No check where the amount
    of memory is unknown."""
    need = estimate(config, image_size, batch_size)
    have = total_memory()
    if have is None or need.total <= have:
        return
    raise ConfigError(
        f"a {_name(config)} network needs about "
        f"{_size(need.total)} to train (>= {need.params:,} parameters: {_size(need.param_bytes)}"
        f"; activations of a batch of {batch_size} at {image_size}x{image_size}: "
        f"{_size(need.activation_bytes)}), more than this machine's {_size(have)} of memory; "
        "use a smaller --width, --depth or --batch-size"
    )


@functools.cache  # the machine's memory does not change while it runs (read once)
def total_memory() -> int | None:
    """Physical memory in bytes (Linux /proc/meminfo, else sysconf); None when unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (AttributeError, ValueError, OSError):
        return None


def _name(config) -> str:
    if config.arch in ("cifar", "single"):
        return f"depth-{config.depth} width-{config.width} {config.arch}"
    return config.arch


def _size(n: int) -> str:
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"
