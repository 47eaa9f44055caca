"""Learning-rate schedules: per-step factors in [0, 1] that multiply the peak lr.

A schedule is a pure function of training progress p = step / total_steps in [0, 1), where
``step`` is the 0-based index of the optimizer step about to be taken:

* ``constant``: 1.
* ``step`` (He et al. 2015): 1 for p < 0.5, 0.1 for 0.5 <= p < 0.75, 0.01 for p >= 0.75.
* ``cosine``: (1 + cos(pi p)) / 2, from 1 down to 0.
* ``onecycle``: piecewise linear, 1/25 at p = 0 up to 1 at p = 0.3, then down to 0 at p = 1
  (the start factor and peak position of torch's OneCycleLR, with linear annealing).

An optional linear warm-up multiplies the factor by (step + 1) / warmup_steps for the first
``warmup_steps`` steps. ``LRSchedule`` packs this as a picklable callable of the 0-based
global step; the training engine multiplies each member's peak lr by it (it is also a valid
``lr_lambda`` for ``torch.optim.lr_scheduler.LambdaLR``, which the tests use as a reference).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from odenet.errors import ConfigError

ONECYCLE_START = 1.0 / 25.0  # factor at p = 0
ONECYCLE_PEAK_AT = 0.3  # progress at which the factor reaches 1


def schedule_factor(name: str, progress: float) -> float:
    """The factor of schedule ``name`` at progress p in [0, 1] (values outside are clamped)."""
    p = min(max(float(progress), 0.0), 1.0)
    if name == "constant":
        return 1.0
    if name == "step":
        return 1.0 if p < 0.5 else (0.1 if p < 0.75 else 0.01)
    if name == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * p))
    if name == "onecycle":
        if p < ONECYCLE_PEAK_AT:
            return ONECYCLE_START + (1.0 - ONECYCLE_START) * p / ONECYCLE_PEAK_AT
        return (1.0 - p) / (1.0 - ONECYCLE_PEAK_AT)
    valid = "onecycle, cosine, step, constant"
    raise ConfigError(f"unknown schedule {name!r}; expected one of: {valid}")


@dataclass(frozen=True)
class LRSchedule:
    """step (0-based) -> lr factor: ``schedule_factor`` times the linear warm-up."""

    name: str  # "onecycle" | "cosine" | "step" | "constant"
    total_steps: int  # optimizer steps in the whole run (epochs x batches per epoch)
    warmup_steps: int = 0  # linear warm-up length in steps (0: none)

    def __post_init__(self) -> None:
        schedule_factor(self.name, 0.0)  # unknown names fail here, loudly
        if self.total_steps <= 0:
            raise ConfigError(f"total_steps must be positive, got {self.total_steps}")
        if self.warmup_steps < 0:
            raise ConfigError(f"warmup_steps must be >= 0, got {self.warmup_steps}")

    def __call__(self, step: int) -> float:
        factor = schedule_factor(self.name, step / self.total_steps)
        if step < self.warmup_steps:
            factor *= (step + 1) / self.warmup_steps
        return factor
