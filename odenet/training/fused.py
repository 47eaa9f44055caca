"""Fused training: K runs that differ only in lr and seed, trained as one grouped network.

``train_fused(configs)`` is K calls of ``train`` in one, through the same engine
(odenet.training.engine): each member is built and resumed exactly as ``train`` builds it,
checkpointed by the same writer and summarised by the same result builder; only the step
differs (``steps.FusedStep``: the K models fused by odenet.nets.fused, the members' own
batches stacked along channels, one lr per member). A member whose loss is non-finite or above
the threshold is masked out of that step's update and recorded as diverged; the others go on
unchanged. The epoch's wall time is shared by all members.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from odenet.data import load_dataset
from odenet.errors import ConfigError
from odenet.nets.fused import fusable
from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import resolve
from odenet.training.engine import Member, build_member, train_members
from odenet.training.results import TrainCallbacks, TrainResult

FUSION_FREE = ("lr", "seed")  # the only TrainConfig fields that may differ inside a group


def fusion_key(config: TrainConfig) -> tuple:
    """Everything but lr and seed: runs with equal keys can be trained as one fused group."""
    return tuple((k, v) for k, v in config.settings().items() if k not in FUSION_FREE)


def _check_group(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ConfigError("train_fused needs at least one TrainConfig")
    for c in configs:
        c.validate()
    key = fusion_key(configs[0])
    for c in configs[1:]:
        if fusion_key(c) != key:
            diff = [k for k, v in key if c.value(k) != v]
            raise ConfigError(f"runs differ in {', '.join(diff)}: only lr and seed may differ")
    reason = fusable(configs[0].model)
    if reason is not None:
        raise ConfigError(f"{reason}; train these runs one by one (executor 'sequential')")


def train_fused(
    configs: Sequence[TrainConfig],
    *,
    out_dirs: Sequence[str | Path | None] | None = None,
    dataset=None,
    callbacks: Sequence[TrainCallbacks | None] | None = None,
    execution: dict | None = None,
) -> list[TrainResult]:
    """Train K runs (equal but for lr and seed) as one fused network; one result per config.

    Equivalent to ``[train(c, out_dir=d, dataset=dataset, callbacks=cb) for ...]`` up to float
    rounding (same initial weights, data order, schedule, divergence rule, files). Members whose
    run dir holds a result are returned as stored; members resumed from checkpoints at different
    epochs are trained as separate fused groups. CUDA graphs: ``TrainConfig.cuda_graphs``.
    execution: what trains the runs (a study's executor), recorded as each result's
    ``provenance["execution"]`` with ``"members"`` set to the size of the group its member
    trained in (default ``{"executor": "fused"}``).
    Raises ConfigError for configs that differ in more than lr and seed or do not fuse.
    """

    configs = list(configs)
    _check_group(configs)
    k = len(configs)
    outs = [Path(d) if d is not None else None for d in (out_dirs or [None] * k)]
    cbs = [c or TrainCallbacks() for c in (callbacks or [None] * k)]
    if len(outs) != k or len(cbs) != k:
        raise ConfigError(f"give one out_dir and one callbacks per config ({k})")
    results: list[TrainResult | None] = [None] * k
    for i, out in enumerate(outs):
        if out is not None and (stored := ckpt.load_result(out)) is not None:
            ckpt.check_same_config(stored.get("provenance", {}).get("config", {}), configs[i], out)
            results[i] = TrainResult.from_dict(stored)
    pending = [i for i in range(k) if results[i] is None]
    if not pending:
        return results  # type: ignore[return-value]
    placement = resolve(configs[0])
    if dataset is None:
        dataset = load_dataset(configs[0].dataset, configs[0].data_dir)
    elif dataset.name != configs[0].dataset:
        raise ConfigError(
            f"dataset {dataset.name!r} was passed for configs naming {configs[0].dataset!r}: "
            "set TrainConfig.dataset to the dataset's name"
        )
    members: dict[int, Member] = {}
    for i in pending:
        first = members[pending[0]] if members else None
        members[i] = build_member(configs[i], outs[i], cbs[i], dataset, placement, first)
    by_epoch: dict[int, list[int]] = {}
    for i in pending:
        by_epoch.setdefault(len(members[i].history), []).append(i)
    for group in by_epoch.values():
        info = {**(execution or {"executor": "fused"}), "members": len(group)}
        done = train_members([members[i] for i in group], placement, info)
        for i, result in zip(group, done):
            results[i] = result
    return results  # type: ignore[return-value]
