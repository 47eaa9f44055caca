"""How much memory a network needs, estimated from its config without building it.

A model too large for the machine must be refused in seconds with the estimate, not by the
allocator after minutes (or by the kernel's OOM killer). The estimate counts, for the CIFAR
layout of ``odenet.nets.resnet`` (stages of width w, 2w, 4w at H, H/2, H/4):

* parameters: the 3x3 convolution weights of the fields (2 per field; one shared field per
  stage in continuous mode) and the stem: a lower bound of the exact count (norms, biases,
  shortcuts and the head add < 1% at the default width);
* training needs TRAIN_BYTES_PER_PARAM per parameter: float32 weights, gradients, SGD momentum
  and one copy (the checkpoint's state dict);
* activations kept for the backward pass: ACTIVATIONS_PER_FIELD feature maps per field and
  image (two convolutions, two norms, a ReLU and the sum), times the batch size.
"""

from __future__ import annotations

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
    """The memory one training step of ``config`` (a ModelConfig) needs; allocates nothing.

    Continuous models (``config.continuous``) have one shared field per stage; their
    activations depend on the solver's step count, so one evaluation is counted.
    """
    w, n = config.width, config.blocks_per_stage
    fields = 1 if config.continuous else n
    channels = (w, 2 * w, 4 * w)
    params = 9 * config.in_channels * w  # stem
    maps = 0
    for s, c in enumerate(channels):
        c_in = channels[s - 1] if s else w
        params += 9 * c_in * c + 9 * c * c  # the first field (downsampling from stage 2 on)
        params += (fields - 1) * 2 * 9 * c * c
        side = max(image_size >> s, 1)
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
        f"a depth-{config.depth} width-{config.width} network needs about "
        f"{_size(need.total)} to train (>= {need.params:,} parameters: {_size(need.param_bytes)}"
        f"; activations of a batch of {batch_size} at {image_size}x{image_size}: "
        f"{_size(need.activation_bytes)}), more than this machine's {_size(have)} of memory; "
        "use a smaller --width, --depth or --batch-size"
    )


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


def _size(n: int) -> str:
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if n >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{n / 2**10:,.1f} KiB"
