"""Parameter and FLOP accounting; the matched-budget comparison across solvers.

At a given depth every discrete solver uses each field exactly once, so the weights and the
convolution/linear FLOPs are the same as Euler's; only scaled additions differ (and lm adds
its k scalars, reported as ``extra_params``). FLOPs are those counted by
``torch.utils.flop_counter`` (2 per multiply-add) for one image forward in eval mode.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace

import torch
from rich.console import Group
from rich.text import Text
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from odenet.errors import ConfigError
from odenet.nets.config import ModelConfig
from odenet.nets.continuous import ContinuousStage
from odenet.nets.fields import ShortcutB
from odenet.nets.layout import IMAGENET
from odenet.nets.memory import check_fits
from odenet.nets.resnet import ResNet, build_from_config
from odenet.nets.stage import Stage
from odenet.solvers import ContinuousSolver, get
from odenet.tables import rich_table

_CONV_LINEAR_OPS = ("aten.convolution", "aten._convolution", "aten.mm", "aten.addmm")


@dataclass
class ModelSummary:
    """The budget of one architecture. ``to_dict()`` is what `odenet describe --json` prints."""

    depth: int  # weighted layers: 6n + 2 (cifar), 2N + 2 (single), 18 ... 152 (ImageNet)
    solver: str  # registry name
    family: str  # "runge-kutta" | "multistep" | "continuous" | "plain" | "learned-rk"
    block: str  # "postact" | "preact" | "bottleneck"
    shortcut: str  # where shapes change (A | B) or on every step (C)
    norm: str  # the norms in use, e.g. "bn" or "bn (ODE field: gn)"
    in_channels: int
    num_classes: int
    image_size: int  # H = W of the input used for the FLOP count
    layers: int  # weighted layers on the main path: 3x3 convs + the linear head
    params: int  # trainable parameters, scheme coefficients excluded
    extra_params: int  # learnable scheme coefficients (lm's k), reported separately
    flops: int  # flop_counter total for one image forward
    conv_linear_flops: int  # the convolution + mm/addmm part of ``flops``
    nfe: int | None  # continuous mode: ODE-field evaluations in that forward (all stages)
    arch: str = "cifar"  # the family: cifar | single | resnet18 ... resnet152
    stages: list[dict] = field(default_factory=list)  # channels, fields, steps[{scheme, fields}]
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def count_parameters(model: ResNet) -> tuple[int, int]:
    """(weights, scheme coefficients): trainable parameter counts of ``model``."""
    coeff = {id(p) for p in model.coefficient_parameters()}
    params = [p for p in model.parameters() if p.requires_grad]
    extra = sum(p.numel() for p in params if id(p) in coeff)
    return sum(p.numel() for p in params) - extra, extra


def count_layers(model: nn.Module) -> int:
    """Convolutions plus linear layers, projection shortcuts not counted (ResNet-d = d)."""
    shortcut_convs = {id(m.conv) for m in model.modules() if isinstance(m, ShortcutB)}
    return sum(
        1
        for m in model.modules()
        if (isinstance(m, nn.Conv2d) and id(m) not in shortcut_convs) or isinstance(m, nn.Linear)
    )


def count_flops(model: ResNet, image_size: int, batch: int = 1) -> tuple[int, int]:
    """(total, conv + linear) FLOPs of one forward of ``batch`` images (eval mode, no grad).

    Discrete models are counted on the meta device (shapes only; the model is not touched);
    continuous ones need values (the adaptive step count depends on them): a fixed N(0, 1)
    input drawn from a seeded generator.
    """
    c = model.config
    continuous = model.nfe is not None
    was_training = model.training
    if continuous:
        g = torch.Generator().manual_seed(0)
        x = torch.randn(batch, c.in_channels, image_size, image_size, generator=g)
        net = model
    else:
        x = torch.zeros(batch, c.in_channels, image_size, image_size, device="meta")
        net = _meta_copy(model)
    net.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            net(x)
    finally:
        model.train(was_training)
    ops = counter.get_flop_counts().get("Global", {})
    conv_linear = sum(v for k, v in ops.items() if str(k) in _CONV_LINEAR_OPS)
    return int(counter.get_total_flops()), int(conv_linear)


def _meta_copy(model: ResNet) -> ResNet:

    return copy.deepcopy(model).to("meta")


def _stage_rows(model: ResNet) -> list[dict]:
    rows = []
    for i, (stage, st) in enumerate(zip(model.stages, model.layout.stages)):
        row: dict = {"index": i + 1, "channels": st.out_channels, "stride": st.stride}
        if isinstance(stage, Stage):
            row["fields"] = len(stage.fields)
            row["steps"] = [{"scheme": p.scheme, "fields": p.fields} for p in stage.plan()]
        else:
            assert isinstance(stage, ContinuousStage)
            o = stage.options
            steps = []
            if stage.transition is not None:
                steps.append({"scheme": "euler (transition)", "fields": 1})
            grid = "adaptive" if stage.solver.adaptive else f"h={o.step_size or o.t1 / 4:g}"
            steps.append(
                {
                    "scheme": f"{stage.solver.name} on [0, {o.t1:g}], {grid}",
                    "fields": 1,
                    "shared": True,
                    "nfe": stage.nfe["forward"],
                }
            )
            row["fields"] = len(steps)
            row["steps"] = steps
        rows.append(row)
    return rows


def describe(config: ModelConfig, image_size: int | None = None) -> ModelSummary:
    """Layers, parameters, FLOPs and per-stage steps of the network ``config`` describes.

    image_size None: 224 for the ImageNet family, 32 otherwise. Discrete networks are built
    on the meta device (shapes only: ResNet-152 is described in well under a second).
    """
    if image_size is None:
        image_size = 224 if config.arch in IMAGENET else 32
    if not isinstance(image_size, int) or isinstance(image_size, bool) or image_size < 4:
        raise ConfigError(f"image_size must be an integer >= 4, got {image_size!r}")
    config.validate()
    check_fits(config, image_size)  # training it at this image size must fit in memory
    config = config.for_data()  # concrete in_channels and num_classes
    solver = get(config.solver)
    meta = not isinstance(solver, ContinuousSolver)
    with torch.device("meta" if meta else "cpu"):
        model = build_from_config(config, None if meta else torch.Generator().manual_seed(0))
    params, extra = count_parameters(model)
    flops, conv_linear = count_flops(model, image_size)
    continuous = model.nfe is not None
    base = config.norm or "bn"
    norm = f"{base} (ODE field: {config.norm or 'gn'})" if continuous else base
    layout = model.layout
    notes = []
    if layout.arch in IMAGENET:
        notes.append(
            f"{layout.arch}: depth, width and block are fixed by the architecture (torchvision "
            "layout: 7x7/2 stem, 3x3/2 max-pool, projection shortcuts where shapes change)"
        )
    elif layout.arch == "single":
        notes.append(
            f"single stage: stem + N = {config.blocks_per_stage} fields of {config.width} "
            f"channels; the stride-2 downsampling is in the {config.downsample}"
        )
    if continuous:
        rule = "6n + 2" if layout.arch == "cifar" else "2n + 2"
        notes.append(
            f"continuous mode: depth {config.depth} only checks {rule}; n = "
            f"{config.blocks_per_stage} is ignored (one shared ODE field per stage)"
        )
        notes.append("FLOPs of continuous models depend on the step count (nfe) of that forward")
    if extra:
        notes.append(f"{extra} learnable scheme coefficients ({solver.name}) not in params")
    notes += _shortcut_notes(model, config)
    return ModelSummary(
        depth=layout.depth,
        solver=solver.name,
        family=solver.family,
        block=layout.block,
        shortcut=layout.shortcut,
        norm=norm,
        in_channels=config.in_channels,
        num_classes=config.num_classes,
        image_size=image_size,
        layers=count_layers(model),
        params=params,
        extra_params=extra,
        flops=flops,
        conv_linear_flops=conv_linear,
        nfe=model.nfe["forward"] if continuous else None,
        arch=layout.arch,
        stages=_stage_rows(model),
        notes=notes,
    )


def _shortcut_notes(model: ResNet, config: ModelConfig) -> list[str]:
    """How the shortcut applies to this scheme, and the parameters shortcut C costs it."""
    stages = [s for s in model.stages if isinstance(s, Stage)]
    if not stages:
        if config.shortcut == "C":
            return ["continuous mode: shortcut C projects the transition steps only (the ODE "
                    "field has no step to project)"]  # fmt: skip
        return []
    if not stages[0].solver.residual:
        return [
            f"{config.solver}: x <- F(x) has no identity path, so no shortcut (shortcut "
            f"{config.shortcut} adds nothing); the first field of a stage downsamples alone"
        ]
    if config.shortcut != "C":
        return []
    count = sum(len(s.projections or ()) for s in stages)
    per_field = sum(len(s.fields) for s in stages)
    fewer = 0  # parameters of the projections euler has and this scheme does not
    for stage in stages:
        assert stage.projections is not None and isinstance(stage.projections[0], ShortcutB)
        c = stage.projections[0].conv.out_channels  # a missing one maps c -> c, stride 1
        fewer += (len(stage.fields) - len(stage.projections)) * (c * c + 2 * c)
    note = (
        f"shortcut C: a 1x1 conv + norm projection on every step's start state s, one per "
        f"step (not per field): {count} projections"
    )
    if count < per_field:
        note += (
            f"; euler has one per field ({per_field}), so this scheme has {fewer:,} fewer "
            "parameters than euler at this depth: the budget is NOT matched"
        )
    return [note]


def compare_budgets(
    config: ModelConfig, solvers: Sequence[str], image_size: int | None = None
) -> dict[str, ModelSummary]:
    """describe() of ``config`` at each solver: the matched-budget table (solver -> summary)."""
    return {name: describe(replace(config, solver=name), image_size) for name in solvers}


def summary_table(summary: ModelSummary):
    """A rich renderable of ``summary`` (what `odenet describe` prints without --json)."""
    s = summary
    title = (
        f"ResNet-{s.depth} ({s.arch}) {s.solver} ({s.family}), {s.block}, shortcut {s.shortcut}, "
        f"norm {s.norm}, input {s.in_channels}x{s.image_size}x{s.image_size}, "
        f"{s.num_classes} classes"
    )
    header = ("stage", "channels", "stride", "fields", "steps")
    cells = [
        [str(row["index"]), str(row["channels"]), str(row["stride"]), str(row["fields"]),
         Text(_compress([_step_label(st) for st in row["steps"]]))]
        for row in s.stages
    ]  # fmt: skip
    table = rich_table(header, cells, title=Text(title), left=("steps",))
    lines = [
        f"layers {s.layers}   params {s.params:,}   extra params {s.extra_params:,}",
        f"FLOPs {s.flops:,} ({s.flops / 1e6:.1f}M; conv+linear {s.conv_linear_flops:,})"
        + (f"   nfe {s.nfe}" if s.nfe is not None else ""),
        *s.notes,
    ]
    return Group(table, Text("\n".join(lines)))


def _step_label(step: dict) -> str:
    fields = step["fields"]
    label = f"{step['scheme']} ({fields} field{'s' if fields != 1 else ''}"
    return label + (f", nfe {step['nfe']})" if "nfe" in step else ")")


def _compress(items: list[str]) -> str:
    """["a", "a", "b"] -> "2 x a, b": runs of equal steps counted."""
    runs: list[list] = []
    for it in items:
        if runs and runs[-1][0] == it:
            runs[-1][1] += 1
        else:
            runs.append([it, 1])
    return ", ".join(f"{n} x {it}" if n > 1 else it for it, n in runs)
