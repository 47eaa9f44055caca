"""Residual networks built from vector fields and a solver: the CIFAR, single-stage and
ImageNet families at any scheme."""

from odenet.nets.budget import (
    ModelSummary,
    compare_budgets,
    count_flops,
    count_layers,
    count_parameters,
    describe,
)
from odenet.nets.config import ModelConfig
from odenet.nets.continuous import ConcatConv2d, ContinuousStage, ODEField, ODEOptions
from odenet.nets.fields import (
    BottleneckField,
    PostActField,
    PreActField,
    ShortcutA,
    ShortcutB,
    make_field,
    make_norm,
    make_shortcut,
)
from odenet.nets.fused import FusedResNet, fusable, fuse, unfuse
from odenet.nets.layout import ARCHS, DOWNSAMPLES, IMAGENET, default_num_classes
from odenet.nets.resnet import ResNet, build_from_config, build_model
from odenet.nets.stage import Stage, make_stage
from odenet.nets.variants import refine, rewire

__all__ = [
    "ARCHS",
    "BottleneckField",
    "DOWNSAMPLES",
    "IMAGENET",
    "default_num_classes",
    "ConcatConv2d",
    "FusedResNet",
    "ContinuousStage",
    "ModelConfig",
    "ModelSummary",
    "ODEField",
    "ODEOptions",
    "PostActField",
    "PreActField",
    "ResNet",
    "ShortcutA",
    "ShortcutB",
    "Stage",
    "build_from_config",
    "build_model",
    "fusable",
    "fuse",
    "compare_budgets",
    "count_flops",
    "count_layers",
    "count_parameters",
    "describe",
    "make_field",
    "make_norm",
    "make_shortcut",
    "make_stage",
    "refine",
    "rewire",
    "unfuse",
]
