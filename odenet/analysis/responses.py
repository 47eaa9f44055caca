"""Forward and backward measurements of every residual field of a stacked network.

A stage of n fields F_1..F_n is integrated by a solver whose ``plan`` groups the fields into
steps; in a step built on the state s, field i contributes k_i = F_i(...). On a list of data
batches (eval mode: BN uses its running statistics, so every sample is measured alone):

* ``field_responses``: the std over all N x C x H x W values of each k_i (the field's output,
  before the solver combines it into the state): He et al. 2015, Fig. 7's layer responses,
  in network order; and ||k_i|| / ||s|| (norms over all samples and values), the step each
  field takes relative to the state of its step (s = shortcut(x) for a stage's first step, else the
  state the step starts from, which is the input of its first field);
* ``gradient_norms``: ||dL/d theta_i|| over each field's parameters and ||dL/d x_i|| of the
  state entering each field, for L the mean cross-entropy over all the batches.

Fields are found as the ``fields`` of every ``odenet.nets.stage.Stage`` in module order
(continuous stages have none: ``unmeasured`` says what that leaves out). Sums are accumulated
in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.nets.continuous import ContinuousStage
from odenet.nets.stage import Stage

Batch = tuple[Tensor, Tensor]


@dataclass(frozen=True)
class FieldInfo:
    """Where a field sits in the network."""

    index: int  # network order over all fields (0-based)
    stage: int  # which stage (0-based)
    position: int  # index within its stage
    step: int  # which step of the stage's plan consumes it
    scheme: str  # the scheme of that step (e.g. a depth-20 rk4 stage takes one rk3 step)
    first_of_step: bool  # the step's first field (k_1)
    module: nn.Module
    stage_module: Stage

    @property
    def name(self) -> str:
        return f"stage {self.stage + 1}, field {self.position + 1}"


def model_fields(model: nn.Module) -> list[FieldInfo]:
    """Every field of every stacked stage, in network order; ConfigError when there is none."""
    out: list[FieldInfo] = []
    stages = [m for m in model.modules() if isinstance(m, Stage)]
    for si, stage in enumerate(stages):
        pos = 0
        for step, plan in enumerate(stage.plan()):
            for j in range(plan.fields):
                out.append(
                    FieldInfo(
                        len(out), si, pos, step, plan.scheme, j == 0, stage.fields[pos], stage
                    )
                )
                pos += 1
    if not out:
        raise ConfigError(
            f"{type(model).__name__} has no stacked residual fields to measure "
            "(a continuous-mode network integrates one shared field)"
        )
    return out


def unmeasured(model: nn.Module) -> str | None:
    """What ``model_fields`` leaves out of ``model``, in words; None when it finds every field.

    A continuous network (``odenet.nets.continuous``) integrates one shared ODE field per stage
    with torchdiffeq: those fields are not stacked steps and are not measured; its transitions
    (a downsampling field used as one Euler step where the shape changes) are, labelled euler.
    """
    ode = [m for m in model.modules() if isinstance(m, ContinuousStage)]
    if not ode:
        return None
    steps = sum(m.transition is not None for m in ode)
    return (
        f"continuous network ({ode[0].solver.name}): only its {steps} transition field(s) are "
        "measured (a downsampling field used as one Euler step where the shape changes, "
        f"labelled euler, no eigenvalue); the {len(ode)} shared ODE field(s) that "
        f"{ode[0].solver.name} integrates are not"
    )


class _Recorder:
    """Forward hooks that keep, per forward pass, each stage's state s of every step and each
    field's input and output."""

    def __init__(self, fields: list[FieldInfo]) -> None:
        self.fields = fields
        self.inputs: dict[int, Tensor] = {}
        self.outputs: dict[int, Tensor] = {}
        self.stage_base: dict[int, Tensor] = {}  # stage index -> s of its first step
        self._handles: list = []

    @contextmanager
    def attached(self):
        stages = {id(f.stage_module): f for f in self.fields if f.position == 0}
        try:
            for f in stages.values():
                st = f.stage_module
                if st.shortcut is not None:
                    self._handles.append(
                        st.shortcut.register_forward_hook(self._keep_base(f.stage))
                    )
                else:
                    self._handles.append(st.register_forward_pre_hook(self._keep_input(f.stage)))
            for f in self.fields:
                self._handles.append(f.module.register_forward_hook(self._keep_field(f.index)))
            yield self
        finally:
            for h in self._handles:
                h.remove()
            self._handles.clear()

    def _keep_base(self, stage: int):
        def hook(_module, _args, output):
            self.stage_base[stage] = output

        return hook

    def _keep_input(self, stage: int):
        def hook(_module, args):
            self.stage_base[stage] = args[0]

        return hook

    def _keep_field(self, index: int):
        def hook(_module, args, output):
            self.inputs[index] = args[0]
            self.outputs[index] = output

        return hook

    def base_state(self, f: FieldInfo) -> Tensor:
        """s of the step that consumes field f."""
        if f.step == 0:
            return self.stage_base[f.stage]
        first = next(
            g for g in self.fields if g.stage == f.stage and g.step == f.step and g.first_of_step
        )
        return self.inputs[first.index]


@torch.no_grad()
def field_responses(model: nn.Module, batches: Sequence[Batch]) -> dict:
    """Responses and step ratios of every field over ``batches`` (model put in eval mode).

    Returns {"fields": [names], "schemes": [step scheme per field], "responses": [std of
    k_i over all its N*C*H*W values (unbiased)], "step_ratios": [||k_i|| / ||s||, both norms
    over all samples]}, lists in network order. (A ratio of sums, not a mean of per-sample
    ratios: a sample whose state a ReLU zeroed would make a per-sample ratio infinite.)
    """
    model.eval()
    fields = model_fields(model)
    n = len(fields)
    count = torch.zeros(n, dtype=torch.float64)
    total = torch.zeros(n, dtype=torch.float64)
    squares = torch.zeros(n, dtype=torch.float64)
    k_sq = torch.zeros(n, dtype=torch.float64)
    s_sq = torch.zeros(n, dtype=torch.float64)
    rec = _Recorder(fields)
    with rec.attached():
        for x, _ in batches:
            model(x)
            for f in fields:
                k = rec.outputs[f.index].detach().double()
                count[f.index] += k.numel()
                total[f.index] += k.sum().cpu()
                squares[f.index] += (k * k).sum().cpu()
                k_sq[f.index] += (k * k).sum().cpu()
                s_sq[f.index] += rec.base_state(f).detach().double().pow(2).sum().cpu()
    mean = total / count
    var = (squares - count * mean * mean).clamp_min(0.0) / (count - 1)
    return {
        "fields": [f.name for f in fields],
        "schemes": [f.scheme for f in fields],
        "responses": var.sqrt().tolist(),
        "step_ratios": (k_sq.sqrt() / s_sq.sqrt()).tolist(),
    }


def gradient_norms(model: nn.Module, batches: Sequence[Batch]) -> dict:
    """Gradient norms of L = mean cross-entropy over all ``batches`` (eval mode).

    Returns {"params": [||dL/d theta_i|| over field i's parameters], "states": [||dL/dx_i||
    of the state entering field i over all samples], "loss": L}, in network order. The
    model's ``.grad`` attributes are not touched.
    """
    model.eval()
    fields = model_fields(model)
    params = [[p for p in f.module.parameters() if p.requires_grad] for f in fields]
    flat = [p for group in params for p in group]
    count = sum(int(y.shape[0]) for _, y in batches)
    grads = [torch.zeros_like(p, dtype=torch.float64) for p in flat]
    state_sq = torch.zeros(len(fields), dtype=torch.float64)
    loss_total = 0.0
    rec = _Recorder(fields)
    with rec.attached(), torch.enable_grad():
        for x, y in batches:
            loss = F.cross_entropy(model(x).float(), y, reduction="sum") / count
            inputs = [rec.inputs[f.index] for f in fields]
            wanted = [t for t in inputs if t.requires_grad]
            out = torch.autograd.grad(loss, flat + wanted, allow_unused=True)
            for acc, g in zip(grads, out[: len(flat)], strict=True):
                if g is not None:
                    acc += g.double()
            state_grads = iter(out[len(flat) :])
            for f, t in zip(fields, inputs, strict=True):
                g = next(state_grads) if t.requires_grad else None
                if g is not None:
                    state_sq[f.index] += g.double().pow(2).sum().cpu()
            loss_total += float(loss.detach())
    norms, i = [], 0
    for group in params:
        sq = sum(float(grads[i + j].pow(2).sum()) for j in range(len(group)))
        norms.append(sq**0.5)
        i += len(group)
    return {"params": norms, "states": state_sq.sqrt().tolist(), "loss": loss_total}
