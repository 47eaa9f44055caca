"""A trained network's fields wired another way: by another stacked scheme, or refined.

Both functions return an ordinary ``nn.Module`` (a ``ResNet``) that shares the trained
model's stem, fields, shortcuts, projections, scheme coefficients and head: the same parameter
and buffer tensors, not copies. Only the stages (the wiring) are new; the original model is not
changed. The buffers are shared too, so a train-mode forward of the new network updates the
trained model's BatchNorm running statistics: measure in eval mode (``.eval()``).

* ``rewire(model, scheme)``: the network built with ``scheme`` (``build_model(...,
  scheme)``) holding the model's weights, including the remainder rule in each stage (rk4 on a
  stage of 3 fields is one rk3 step, as when the network is built at depth 20; ``plan()`` of
  each stage says which steps it takes).
* ``refine(model, m)``: every step repeated m times at h/m through the same fields (each
  field's output scaled by 1/m), so a stage of n fields integrates the same vector fields with
  m times as many steps. The choices that keep shapes and keep m = 1 the trained network:
  the first step of a downsampling stage (the stage with a shortcut: stride 2, channels
  changed) is the transition between resolutions and is taken once, as trained, shortcut
  included (its first field cannot be applied to its own output); every other step builds on
  its input (no shortcut), so its m sub-steps are m plain steps of h/m; a post-activation
  network's ReLU follows each trained step once, after its m sub-steps (it is a map between
  steps, not part of the vector field).

These are the ``odenet analyze --ode-tests`` building blocks (issue 21: is the trained network
an ODE?): if it is, swapping the scheme changes little and refinement converges at the
scheme's order.
"""

from __future__ import annotations

import copy
from dataclasses import replace

import torch
from torch import nn

from odenet.errors import ConfigError
from odenet.nets.resnet import ModelConfig, ResNet
from odenet.nets.stage import Stage
from odenet.solvers import SchemeCoefficients, Solver, StackedSolver, get


def rewire(model: ResNet, scheme: str | Solver) -> ResNet:
    """``model``'s fields wired by the stacked ``scheme``: a ResNet equal to
    ``build_model(..., scheme)`` with ``model``'s state dict loaded, sharing its tensors.

    Input and output as ``model``'s: (N, C, H, W) -> (N, classes). Its ``config`` is
    ``model.config`` with ``solver=scheme``. Rewiring to the trained scheme gives ``model``'s
    outputs bitwise. Refused (ConfigError, one line): a model that is not a stacked ResNet
    (continuous ode-*, a fused group); a scheme that does not stack distinct fields (ode-*),
    or plain, or a model trained as plain (no identity path, so no shortcuts to share);
    lm and learn-* unless the model was trained with that very scheme (their coefficients
    would be new, untrained parameters); shortcut C where the scheme takes another number of
    steps per stage than the model (C has one projection per step).
    """
    target = get(scheme)
    stages = _stages(model, "rewire")
    if not isinstance(target, StackedSolver):
        raise ConfigError(
            f"rewire: {target.name!r} does not stack distinct fields (continuous mode "
            "integrates one shared field); choose a stacked scheme (euler, heun, rk4, ab2, ...)"
        )
    source = stages[0].solver
    if not (target.residual and source.residual):
        raise ConfigError(
            "rewire: plain has no identity path (x <- F(x)), so it shares no shortcuts with a "
            "residual scheme; rewire between residual schemes (euler, heun, rk4, ab2, ...)"
        )
    same = target == source
    rewired = []
    for i, stage in enumerate(stages):
        n = len(stage.fields)
        # a throwaway generator: asking must not draw from the global random state
        if not same and target.make_coefficients(n, torch.Generator()) is not None:
            raise ConfigError(
                f"rewire: {target.name} learns its scheme coefficients in training and this "
                f"model was trained as {source.name}; rewire to a fixed scheme (euler, heun, "
                "rk4, ab2, ...)"
            )
        projections = list(stage.projections) if stage.projections is not None else None
        if projections is not None and len(target.plan(n)) != len(projections):
            raise ConfigError(
                f"rewire: shortcut C has one projection per step; {target.name} takes "
                f"{len(target.plan(n))} steps in stage {i + 1} where {source.name} takes "
                f"{len(projections)}"
            )
        rewired.append(_restage(stage, target, stage.coefficients if same else None, 1))
    return _sharing(model, rewired, replace(model.config, solver=target.name))


def refine(model: ResNet, m: int) -> ResNet:
    """``model`` with every step taken m times at h/m through the same fields (the module
    docstring gives the choices at downsampling steps, shortcuts and post-activation ReLUs).

    Input and output as ``model``'s; ``config`` is ``model.config`` (the trained architecture:
    refinement is not one of its fields); each stage's ``substeps`` is m. m = 1 gives
    ``model``'s outputs bitwise. m must be a power of two (the scaling by 1/m is then exact).
    Refused (ConfigError, one line): a model that is not a stacked ResNet; for m > 1, the
    two-step schemes (ab2, leapfrog, lm: a step chains through the previous state, and lm's
    k is learned per step), plain (no x + F(x) to refine) and shortcut C (each step builds on
    a projection P(u), not on u). learn-* is refined with its learned A and b: the observed
    order shows whether training kept the tableau consistent.
    """
    stages = _stages(model, "refine")
    refined = [_restage(stage, stage.solver, stage.coefficients, m) for stage in stages]
    return _sharing(model, refined, model.config)


def _stages(model: nn.Module, what: str) -> list[Stage]:
    """The stacked stages of a ResNet, or ConfigError."""
    if not isinstance(model, ResNet):
        raise ConfigError(
            f"{what} takes a ResNet (build_model, or a checkpoint's model), got "
            f"{type(model).__name__}"
        )
    stages = list(model.stages)
    if not all(isinstance(s, Stage) for s in stages):
        raise ConfigError(
            f"{what}: a continuous-mode network ({model.config.solver}) integrates one shared "
            "field per stage; there are no stacked fields to wire"
        )
    return stages  # type: ignore[return-value]


def _restage(
    stage: Stage,
    solver: StackedSolver,
    coefficients: SchemeCoefficients | None,
    substeps: int,
) -> Stage:
    """A stage over ``stage``'s own fields, shortcut and projections (shared, not copied)."""
    return Stage(
        solver,
        list(stage.fields),
        shortcut=stage.shortcut,
        projections=list(stage.projections) if stage.projections is not None else None,
        post_relu=stage.post_relu,
        coefficients=coefficients,
        substeps=substeps,
    )


def _sharing(model: ResNet, stages: list[Stage], config: ModelConfig) -> ResNet:
    """A shallow copy of ``model`` with ``stages``: the same stem and head modules (so the same
    tensors), its own module, parameter, buffer and hook tables (setting anything on it leaves
    ``model`` alone)."""
    new = copy.copy(model)
    for key, value in vars(model).items():
        if isinstance(value, (dict, set)):
            vars(new)[key] = copy.copy(value)
    new.stages = nn.ModuleList(stages)
    new.config = config
    return new
