"""ModelConfig: everything that defines a network's architecture (not its weights).

Each field's help text is its ``metadata["help"]`` (``option(default, help)``): the command
line shows it for ``odenet describe``, ``train`` and ``study``, whose options are generated
from the fields, so a field added here is an option of every command at once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from odenet.errors import ConfigError
from odenet.nets.continuous import ODEOptions
from odenet.nets.fields import BLOCKS, NORMS, SHORTCUTS
from odenet.nets.layout import IMAGENET, NetLayout, check_arch, default_num_classes, net_layout
from odenet.nets.memory import check_fits
from odenet.solvers import ContinuousSolver, get

MIN_TOLERANCE = 1e-12  # smallest ode_rtol / ode_atol (float32 states: ~1e-7 relative)
MAX_FIXED_STEPS = 1_000_000  # most steps of a fixed-grid ODE solve (ode_t1 / ode_step_size)
# Longest ODE interval [0, T]. The field sees t as a float32 input channel beside normalised
# features of order 1, and the state grows like T |f|: far beyond this, float32 loses the
# time grid (ode-rk4 at 1e300: an infinite step) and the adaptive solvers' error norms
# overflow (ode-dopri5 at 1e20: "underflow in dt"). Neural-ODE blocks use T of order 1.
MAX_ODE_T1 = 1e6
DEFAULT_IN_CHANNELS = 3  # input channels of a network built without a dataset
_NAMES = ("solver", "block", "shortcut", "arch", "downsample")
ODE_FIELDS = ("ode_t1", "ode_rtol", "ode_atol", "ode_step_size", "ode_adjoint")  # ode-* only


def option(default: object, help: str):
    """A config field with its help text (``metadata["help"]``), shown by the command line."""
    return field(default=default, metadata={"help": help})


@dataclass(frozen=True)
class ModelConfig:
    """Everything that defines a network's architecture (not its weights).

    ``in_channels`` and ``num_classes`` None: the data's (``for_data``), else 3 and the
    arch's default (1000 for the ImageNet family, 10 otherwise).
    """

    depth: int = option(20, "cifar: 6n + 2 (8, 14, 20, 56, ...); single: 2N + 2; ImageNet: fixed.")
    solver: str = option("euler", "A registry name (`odenet solvers`); ode-*: continuous mode.")
    block: str = option("postact", "postact | preact.")
    shortcut: str = option("A", "A (zero-pad) | B (1x1 projection) | C (on every step).")
    norm: str | None = option(None, "bn | gn (default: bn; the ODE field of ode-* solvers: gn).")
    in_channels: int | None = option(None, "Image channels (default: the data's, else 3).")
    num_classes: int | None = option(
        None, "Number of classes (default: the data's, else 1000 ImageNet family, 10 others)."
    )
    width: int = option(16, "cifar: channels of stage 1 (width, 2 width, 4 width); single: C.")
    ode_t1: float = option(1.0, "Continuous mode: integrate over [0, T].")
    ode_rtol: float = option(1e-3, "Continuous mode, adaptive methods: relative tolerance.")
    ode_atol: float = option(1e-4, "Continuous mode, adaptive methods: absolute tolerance.")
    ode_step_size: float | None = option(
        None, "Continuous mode, fixed-grid methods: step (default: T / 4)."
    )
    ode_adjoint: bool = option(False, "Continuous mode: backward through the adjoint ODE.")
    arch: str = option("cifar", "cifar | single | resnet18 | resnet34 | ... | resnet152.")
    downsample: str = option("stem", "single arch: the stride-2 step in the stem | field.")

    @property
    def blocks_per_stage(self) -> int:
        """n of depth = 6n + 2 (cifar); N of depth = 2N + 2 (single)."""
        return (self.depth - 2) // (6 if self.arch == "cifar" else 2)

    def layout(self) -> NetLayout:
        """Stem, stages and head of this (valid) config."""
        return net_layout(
            self.arch, self.depth, self.width, self.block, self.shortcut, self.downsample
        )

    @property
    def continuous(self) -> bool:
        return isinstance(get(self.solver), ContinuousSolver)

    def for_data(
        self, in_channels: int | None = None, num_classes: int | None = None
    ) -> ModelConfig:
        """This config with concrete ``in_channels`` and ``num_classes``: those given (a
        dataset's shape), else its own, else 3 and ``default_num_classes(arch)``."""
        channels = in_channels if in_channels is not None else self.in_channels
        classes = num_classes if num_classes is not None else self.num_classes
        return replace(
            self,
            in_channels=DEFAULT_IN_CHANNELS if channels is None else channels,
            num_classes=default_num_classes(self.arch) if classes is None else classes,
        )

    def unused(self) -> dict[str, str]:
        """The fields this (valid) config's network does not depend on, each with the reason:
        two configs differing only in them build the same network."""
        if self.arch in IMAGENET:
            return {name: f"arch {self.arch!r} fixes its {name}" for name in ("depth", "width")}
        if self.continuous:
            return {
                "depth": f"continuous scheme {self.solver!r} uses one ODE field per stage "
                "(the depth's n is ignored)"
            }
        why = f"stacked scheme {self.solver!r} integrates no ODE (ode_* are for ode-* schemes)"
        return {name: why for name in ODE_FIELDS}

    def validate(self) -> None:
        """Raise ConfigError naming the first bad field and its valid values."""
        for name in _NAMES:
            if not isinstance(getattr(self, name), str):
                raise ConfigError(f"{name} must be a name (a string), got {getattr(self, name)!r}")
        check_arch(self.arch, self.depth, self.downsample)
        solver = get(self.solver)  # raises ConfigError listing the valid names
        if self.block not in BLOCKS:
            raise ConfigError(f"unknown block {self.block!r}; expected one of: {', '.join(BLOCKS)}")
        if self.shortcut not in SHORTCUTS:
            raise ConfigError(
                f"unknown shortcut {self.shortcut!r}; expected one of: {', '.join(SHORTCUTS)}"
            )
        if self.norm is not None and self.norm not in NORMS:
            raise ConfigError(f"unknown norm {self.norm!r}; expected one of: {', '.join(NORMS)}")
        if self.arch in IMAGENET:
            if self.block != "postact":
                raise ConfigError(
                    f"arch {self.arch!r} is post-activation (torchvision's layout); "
                    f"block {self.block!r} applies to the cifar and single architectures"
                )
            if isinstance(solver, ContinuousSolver):
                raise ConfigError(
                    f"continuous solver {solver.name!r} is for the cifar and single "
                    f"architectures; arch {self.arch!r} needs a stacked scheme (euler, rk4, ...)"
                )
        for name in ("in_channels", "num_classes", "width"):
            v = getattr(self, name)
            if v is None and name != "width":
                continue
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        _finite_in(
            "ode_t1",
            self.ode_t1,
            0.0,
            MAX_ODE_T1,
            f"in (0, {MAX_ODE_T1:g}] (float32 cannot integrate longer intervals)",
        )
        for name in ("ode_rtol", "ode_atol"):  # below ~1e-12 float32 states never meet them
            _finite_in(name, getattr(self, name), MIN_TOLERANCE, 1.0, f"in [{MIN_TOLERANCE:g}, 1]")
        s = self.ode_step_size
        if s is not None:
            lo = self.ode_t1 / MAX_FIXED_STEPS
            _finite_in(
                "ode_step_size", s, lo, self.ode_t1, f"in [ode_t1/{MAX_FIXED_STEPS:,}, ode_t1]"
            )
        if not isinstance(self.ode_adjoint, bool):
            raise ConfigError(f"ode_adjoint must be true or false, got {self.ode_adjoint!r}")
        # a model with too many fields, or whose parameters alone cannot fit in memory: refused
        # with the estimate (its activations depend on the images: check_fits with their size)
        check_fits(self)

    def ode_options(self) -> ODEOptions:
        return ODEOptions(
            self.ode_t1, self.ode_rtol, self.ode_atol, self.ode_step_size, bool(self.ode_adjoint)
        )


def _finite_in(name: str, value: object, lo: float, hi: float, text: str) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (ok and math.isfinite(value) and lo <= value <= hi and value > 0):
        raise ConfigError(f"{name} must be {text}, got {value!r}")
