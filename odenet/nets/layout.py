"""The network families as data: stem, stages (channels, stride, fields) and head, per ``arch``.

* ``cifar`` (He et al. 2015, depth 6n + 2): 3x3 stem to ``width``, three stages of n fields
  with width / 2 width / 4 width channels (stride 1, 2, 2).
* ``single`` (the single-stage network of the higher-order write-up, depth 2N + 2): 3x3 stem
  to C = ``width`` channels, then one stage of N same-width fields. Exactly one stride-2
  downsampling: in the stem convolution (``downsample="stem"``) or in the first field
  (``downsample="field"``, whose shortcut then subsamples). depth counts weighted layers as
  He et al. do: the stem, 2 convolutions per field, the linear head.
* ``resnet18`` ... ``resnet152`` (He et al. 2015, ImageNet; torchvision's layout): 7x7/2 stem
  conv to 64 + norm + ReLU, 3x3/2 max-pool, four stages (stride 1, 2, 2, 2) of basic fields
  (64, 128, 256, 512 channels) or bottleneck fields (256, 512, 1024, 2048 channels, inner
  width a quarter), projection shortcuts (option B) where the shape changes. The name fixes
  depth, width and block: ``depth`` and ``width`` are not used.
"""

from __future__ import annotations

from dataclasses import dataclass

from odenet.errors import ConfigError

# name -> (field type, fields per stage); depth = 2 + sum(fields) x convolutions per field
IMAGENET: dict[str, tuple[str, tuple[int, ...]]] = {
    "resnet18": ("postact", (2, 2, 2, 2)),
    "resnet34": ("postact", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "resnet101": ("bottleneck", (3, 4, 23, 3)),
    "resnet152": ("bottleneck", (3, 8, 36, 3)),
}
ARCHS = ("cifar", "single", *IMAGENET)
DOWNSAMPLES = ("stem", "field")
IMAGENET_CLASSES = 1000  # the ImageNet family's default head
_IMAGENET_STEM = 64  # channels of the 7x7 stem (torchvision)


@dataclass(frozen=True)
class StageLayout:
    """One stage: ``fields`` fields, the first mapping in_channels -> out_channels at ``stride``."""

    in_channels: int
    out_channels: int
    stride: int
    fields: int


@dataclass(frozen=True)
class NetLayout:
    """Everything but the weights: what ``ResNet`` builds for one ModelConfig."""

    arch: str
    depth: int  # weighted layers: stem + the fields' convolutions + the head
    block: str  # field type: "postact" | "preact" | "bottleneck"
    shortcut: str  # where a stage's first field changes the shape: "A" | "B" | ...
    stem_channels: int
    stem_kernel: int  # 3 or 7 (padding kernel // 2)
    stem_stride: int
    stem_pool: bool  # a 3x3/2 max-pool after the stem (ImageNet family)
    stages: tuple[StageLayout, ...]


def default_num_classes(arch: str) -> int:
    """1000 for the ImageNet family, 10 otherwise (training takes it from the dataset)."""
    return IMAGENET_CLASSES if arch in IMAGENET else 10


def arch_depth(name: str) -> int:
    """Weighted layers of an ImageNet-family network: 18, 34, 50, 101, 152."""
    field, counts = IMAGENET[name]
    return 2 + (3 if field == "bottleneck" else 2) * sum(counts)


def check_arch(arch: object, depth: object, downsample: object) -> None:
    """Raise ConfigError naming the first bad value among arch, depth and downsample."""
    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}; expected one of: {', '.join(ARCHS)}")
    if downsample not in DOWNSAMPLES:
        raise ConfigError(
            f"unknown downsample {downsample!r}; expected one of: {', '.join(DOWNSAMPLES)}"
        )
    if downsample != "stem" and arch != "single":
        raise ConfigError(
            f"downsample={downsample!r} applies to arch 'single' only; arch {arch!r} has "
            "fixed downsampling (leave downsample at 'stem')"
        )
    if arch in IMAGENET:
        return  # the name fixes the depth
    if depth is None:
        raise ConfigError(f"arch {arch!r} needs a depth (e.g. build_model(20, ...), --depth 20)")
    d = depth
    ok = isinstance(d, int) and not isinstance(d, bool)
    if arch == "cifar" and not (ok and d >= 8 and (d - 2) % 6 == 0):
        raise ConfigError(
            f"invalid depth {d!r}: the CIFAR family needs depth = 6n + 2 with n >= 1 "
            "(8, 14, 20, 32, 44, 56, 110, ..., 1202)"
        )
    if arch == "single" and not (ok and d >= 4 and d % 2 == 0):
        raise ConfigError(
            f"invalid depth {d!r}: the single-stage network needs depth = 2N + 2 with N >= 1 "
            "fields (4, 6, 8, ..., 14 for N = 6)"
        )


def net_layout(
    arch: str, depth: int, width: int, block: str, shortcut: str, downsample: str
) -> NetLayout:
    """The layout of a validated config (``check_arch`` first)."""
    if arch == "cifar":
        n = (depth - 2) // 6
        w = width
        stages = (
            StageLayout(w, w, 1, n),
            StageLayout(w, 2 * w, 2, n),
            StageLayout(2 * w, 4 * w, 2, n),
        )
        return NetLayout(arch, depth, block, shortcut, w, 3, 1, False, stages)
    if arch == "single":
        n = (depth - 2) // 2
        stem_stride, field_stride = (2, 1) if downsample == "stem" else (1, 2)
        stage = StageLayout(width, width, field_stride, n)
        return NetLayout(arch, depth, block, shortcut, width, 3, stem_stride, False, (stage,))
    field, counts = IMAGENET[arch]
    widths = (64, 128, 256, 512)
    expansion = 4 if field == "bottleneck" else 1
    stages = []
    in_c = _IMAGENET_STEM
    for i, (w, n) in enumerate(zip(widths, counts)):
        stages.append(StageLayout(in_c, w * expansion, 1 if i == 0 else 2, n))
        in_c = w * expansion
    # Option A (the CIFAR default) is read as B: the family projects where shapes change.
    short = "B" if shortcut == "A" else shortcut
    return NetLayout(
        arch, arch_depth(arch), field, short, _IMAGENET_STEM, 7, 2, True, tuple(stages)
    )
