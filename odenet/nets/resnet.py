"""Residual networks at any solver of the registry: the CIFAR family (He et al. 2015, depth
6n + 2), the single-stage network and the ImageNet family (ResNet-18 ... -152).

The layout of each ``arch`` (stem, stages, channels, strides) is data, in odenet.nets.layout,
chosen by a ModelConfig (odenet.nets.config); this module builds it: stem convolution (+ norm
+ ReLU, + max-pool for the ImageNet family), stages of fields wired by the solver, global
average pooling and a linear head. The CIFAR family works for 32x32 and 28x28 inputs (any
H, W >= 4).

* postact: stem conv-norm-ReLU, ReLU after every step's sum. euler + postact + A is exactly
  He et al.'s ResNet-d (269,722 parameters at depth 20); the ImageNet family at euler is
  exactly torchvision's resnet18 ... resnet152 (v1.5: the stride on the 3x3 convolution).
* preact (He et al. 2016): stem conv only, pure x + F(x) steps, a final norm-ReLU before the pool.
* continuous solvers (``ode-*``, cifar and single only): each stage is a transition step plus
  one shared ODE field (see odenet.nets.continuous); the head gets a final norm-ReLU as in
  Chen et al. 2018.
"""

from __future__ import annotations

from dataclasses import fields, replace

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.nets.config import ModelConfig
from odenet.nets.continuous import ContinuousStage
from odenet.nets.fields import make_norm
from odenet.nets.layout import arch_depth, check_arch
from odenet.nets.stage import Stage, make_stage
from odenet.solvers import ContinuousSolver, Solver, StackedSolver, get


class ResNet(nn.Module):
    """(N, in_channels, H, W) float -> logits (N, num_classes). Built by ``build_model``."""

    def __init__(
        self,
        config: ModelConfig,
        generator: torch.Generator | None = None,
        solver: Solver | None = None,
    ) -> None:
        super().__init__()
        if solver is None:
            config.validate()
            solver = get(config.solver)
        config = config.for_data()  # concrete in_channels and num_classes
        self.config = config
        c = config
        layout = c.layout()
        self.layout = layout
        continuous = isinstance(solver, ContinuousSolver)
        norm = c.norm or "bn"
        post = layout.block != "preact"
        k = layout.stem_kernel
        self.stem_conv = nn.Conv2d(
            c.in_channels, layout.stem_channels, k, stride=layout.stem_stride, padding=k // 2,
            bias=False,
        )  # fmt: skip
        self.stem_norm = make_norm(norm, layout.stem_channels) if post else None
        self.stem_pool = nn.MaxPool2d(3, 2, 1) if layout.stem_pool else nn.Identity()
        stages: list[nn.Module] = []
        for st in layout.stages:
            if continuous:
                assert isinstance(solver, ContinuousSolver)
                stages.append(
                    ContinuousStage(
                        solver,
                        st.in_channels,
                        st.out_channels,
                        st.stride,
                        block=layout.block,
                        shortcut=layout.shortcut,
                        norm=norm,
                        field_norm=c.norm or "gn",
                        options=c.ode_options(),
                    )
                )
            else:
                if not isinstance(solver, StackedSolver):
                    raise ConfigError(f"solver {solver.name!r} cannot build a discrete network")
                stages.append(
                    make_stage(
                        solver,
                        st.fields,
                        st.in_channels,
                        st.out_channels,
                        st.stride,
                        block=layout.block,
                        shortcut=layout.shortcut,
                        norm=norm,
                        generator=generator,
                    )
                )
        self.stages = nn.ModuleList(stages)
        final_norm = layout.block == "preact" or continuous
        out_c = layout.stages[-1].out_channels
        self.head_norm = make_norm(norm, out_c) if final_norm else None
        self.fc = nn.Linear(out_c, c.num_classes)
        _initialise(self, generator)

    def forward(self, x: Tensor) -> Tensor:
        x = self.stem_conv(x)
        if self.stem_norm is not None:
            x = F.relu(self.stem_norm(x))
        x = self.stem_pool(x)
        for stage in self.stages:
            x = stage(x)
        if self.head_norm is not None:
            x = F.relu(self.head_norm(x))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))

    @property
    def nfe(self) -> dict[str, int] | None:
        """Continuous mode: function evaluations (all stages) of the last forward/backward."""
        counts = [s.nfe for s in self.stages if isinstance(s, ContinuousStage)]
        if not counts:
            return None
        return {k: sum(c[k] for c in counts) for k in ("forward", "backward")}

    def coefficient_parameters(self) -> list[nn.Parameter]:
        """The solver's learnable scheme coefficients (lm's k), not counted as weights."""
        return [
            p
            for s in self.stages
            if isinstance(s, Stage) and s.coefficients is not None
            for p in s.coefficients.parameters()
        ]


def _initialise(model: nn.Module, generator: torch.Generator | None) -> None:
    """Kaiming-normal convs (fan_out, ReLU), norms at (1, 0), a PyTorch-default linear head.

    Every draw comes from ``generator`` in module order, so the weights are a function of it.
    The scheme coefficients were already drawn (by the stage) from the same generator.
    A model on the meta device (shapes only, for counting) has no values to draw.
    """
    if next(model.parameters()).is_meta:
        return
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(
                m.weight, mode="fan_out", nonlinearity="relu", generator=generator
            )
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            bound = 1.0 / m.in_features**0.5
            nn.init.uniform_(m.weight, -bound, bound, generator=generator)
            nn.init.uniform_(m.bias, -bound, bound, generator=generator)


_ODE_KEYS = {f.name: f.name for f in fields(ModelConfig) if f.name.startswith("ode_")}
_ODE_KEYS.update({k[4:]: k for k in list(_ODE_KEYS)})  # also t1=, rtol=, ... without the prefix


def build_model(
    depth: int | None = None,
    solver: str | Solver = "euler",
    *,
    arch: str = "cifar",
    downsample: str = "stem",
    block: str = "postact",
    shortcut: str = "A",
    in_channels: int = 3,
    num_classes: int | None = None,
    width: int = 16,
    norm: str | None = None,
    generator: torch.Generator | None = None,
    **ode_options,
) -> ResNet:
    """A ResNet of family ``arch`` wired by ``solver``: a plain ``nn.Module``, (N, C, H, W) ->
    (N, num_classes) logits.

    ``build_model(56, "rk4")``: CIFAR ResNet-56 (depth 6n + 2). ``build_model(arch="resnet50",
    solver="rk4")``: ResNet-50 with 1000 classes (the name fixes the depth). ``arch="single"``:
    depth = 2N + 2, ``downsample`` "stem" | "field". num_classes None: 1000 for the ImageNet
    family, 10 otherwise. ode_options (continuous solvers): ode_t1, ode_rtol, ode_atol,
    ode_step_size, ode_adjoint (or the same names without ``ode_``). Raises ConfigError on any
    invalid argument.
    """
    if depth is None:
        check_arch(arch, None, downsample)  # an unknown arch fails first, naming the valid ones
        depth = arch_depth(arch)
    unknown = sorted(set(ode_options) - set(_ODE_KEYS))
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)}; expected one of: {', '.join(_ODE_KEYS)}"
        )
    obj = solver if isinstance(solver, Solver) else None
    config = ModelConfig(
        depth=depth,
        solver=obj.name if obj is not None else solver,
        block=block,
        shortcut=shortcut,
        norm=norm,
        in_channels=in_channels,
        num_classes=num_classes,
        width=width,
        arch=arch,
        downsample=downsample,
    )
    config = replace(config, **{_ODE_KEYS[k]: v for k, v in ode_options.items()})
    if obj is None:
        return build_from_config(config, generator)
    replace(config, solver="euler").validate()  # everything but the (possibly unregistered) name
    return ResNet(config, generator, solver=obj)


def build_from_config(config: ModelConfig, generator: torch.Generator | None = None) -> ResNet:
    """The network ``config`` describes (validated); weights drawn from ``generator``."""
    return ResNet(config, generator)
