"""How big a network is, estimated from its config without building it.

A model too large for the machine must be refused in seconds with the estimate, not by the
allocator after minutes (or by the kernel's OOM killer). The estimate walks the config's
layout (``ModelConfig.layout()``: stem and stages of every arch) without building anything:

* fields: the residual fields built (one shared field per stage in continuous mode); more
  than MAX_FIELDS take minutes to build and describe (Python builds each module), so they
  are refused whatever the memory;
* parameters: the convolution weights of the stem and of the fields (3x3 pairs; 1x1-3x3-1x1
  for bottlenecks): a lower bound of the exact count (norms, biases, projection shortcuts and
  the head add little);
* training needs TRAIN_BYTES_PER_PARAM per parameter: float32 weights, gradients, SGD momentum
  and one copy (the checkpoint's state dict);
* activations kept for the backward pass: ACTIVATIONS_PER_FIELD feature maps of a field's
  output size per field and image (two convolutions, two norms, a ReLU and the sum), times
  the batch size, at the images' real size (known from the data, or given to ``describe``);
* a forward pass without gradients (an evaluation) holds a few maps at a time:
  ``forward_bytes``.

``check_fits`` compares the estimate with the machine (``odenet.sizes``); without an image
size (``ModelConfig.validate``, which knows no data) it checks what building the network
allocates: its fields and parameters.
"""

from __future__ import annotations

from dataclasses import dataclass

from odenet.sizes import check_count, check_memory, format_bytes
from odenet.solvers import get

TRAIN_BYTES_PER_PARAM = 16  # float32 weights + gradients + momentum + one copy
ACTIVATIONS_PER_FIELD = 6  # feature maps of one field saved for the backward pass
FLOAT_BYTES = 4
MAX_FIELDS = 2_000  # residual fields of one network (ResNet-1202 has 600; 2,000 build and
# describe in well under a minute)
# A forward pass without gradients holds at most the scheme's stages + FORWARD_MAPS maps of
# the largest size per image (measured with torch.func.vmap over 4-8 weight points: euler 5.6,
# rk4 8.3, lm 8.6, cv8 13.5 maps).
FORWARD_MAPS = 7


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
    params = layout.stem_kernel**2 * config.in_channels * layout.stem_channels
    maps = 0
    for stage, fields, side in _stages(config, image_size):
        c_in, c = stage.in_channels, stage.out_channels
        if layout.block == "bottleneck":
            mid = c // 4
            params += c_in * mid + 9 * mid * mid + mid * c  # the first field
            params += (fields - 1) * (c * mid + 9 * mid * mid + mid * c)
        else:
            params += 9 * c_in * c + 9 * c * c  # the first field (may change the shape)
            params += (fields - 1) * 2 * 9 * c * c
        maps += fields * ACTIVATIONS_PER_FIELD * c * side * side
    return MemoryEstimate(params, params * TRAIN_BYTES_PER_PARAM, maps * FLOAT_BYTES * batch_size)


def field_count(config) -> int:
    """Residual fields ``config`` (a valid ModelConfig) builds (continuous: one per stage)."""
    return sum(fields for _, fields, _ in _stages(config, 1))


def largest_state(config, image_size: int) -> int:
    """Elements of the largest state a field maps, per image (channels x side x side)."""
    return max(stage.out_channels * side * side for stage, _, side in _stages(config, image_size))


def forward_bytes(config, image_size: int, images: int) -> int:
    """Memory a forward pass without gradients holds at its peak for ``images`` images."""
    layout = config.layout()
    stem_side = max(image_size // layout.stem_stride, 1)
    largest = max(layout.stem_channels * stem_side**2, largest_state(config, image_size))
    maps = max(get(config.solver).stages, 2) + FORWARD_MAPS
    return maps * largest * FLOAT_BYTES * images


def check_fits(config, image_size: int | None = None, batch_size: int = 1) -> None:
    """ConfigError with the estimate when ``config`` (a valid ModelConfig) has more than
    MAX_FIELDS fields, or its training (at ``image_size``, a batch of ``batch_size``) cannot
    fit in this machine's memory (physical RAM: the model is built on the host first).
    image_size None: the parameters alone (what building it allocates)."""
    name = _name(config)
    if config.arch in ("cifar", "single"):
        stages = len(config.layout().stages)  # depth = 2 x fields + 2 (6n + 2 | 2N + 2)
        deepest = 2 * (MAX_FIELDS // stages * stages) + 2
        check_count(
            field_count(config),
            MAX_FIELDS,
            f"the number of residual fields of a {name} network",
            f"use a smaller --depth (at most {deepest} for arch {config.arch!r})",
        )
    need = estimate(config, image_size or 1, batch_size)
    params = f">= {need.params:,} parameters: {format_bytes(need.param_bytes)}"
    if image_size is None:
        check_memory(
            need.param_bytes,
            f"a {name} network",
            "use a smaller --width or --depth",
            f" to train its parameters alone ({params})",
        )
        return
    check_memory(
        need.total,
        f"a {name} network",
        "use a smaller --width, --depth or --batch-size",
        f" to train ({params}; activations of a batch of {batch_size} at "
        f"{image_size}x{image_size}: {format_bytes(need.activation_bytes)})",
    )


def _stages(config, image_size: int):
    """(StageLayout, fields built, output side) per stage of ``config`` at ``image_size``."""
    layout = config.layout()
    continuous = config.continuous
    side = image_size // layout.stem_stride // (2 if layout.stem_pool else 1)
    for stage in layout.stages:
        side = max(side // stage.stride, 1)
        yield stage, 1 if continuous else stage.fields, side


def _name(config) -> str:
    if config.arch in ("cifar", "single"):
        return f"depth-{config.depth} width-{config.width} {config.arch}"
    return config.arch
