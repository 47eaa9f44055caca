"""Fused training: K runs that differ only in lr and seed, trained as one grouped network.

``train_fused(configs)`` is K calls of ``train`` in one: each member is built exactly as
``train`` builds it (model from ``Generator().manual_seed(seed)``, loaders seeded with
``data_seed(seed)``), then the K models are fused (odenet.nets.fused). A step stacks the K
members' own batches along channels (``odenet.data.loader.member_batches``), takes the sum of
the members' mean losses (so each member's gradient is its separate gradient) and applies SGD
with one lr per member (``FusedSGD``). A member whose loss is non-finite or above the threshold
is frozen before that step's update and recorded as diverged; the others go on unchanged.
After every epoch each live member's checkpoint.pt, and at the end its result.json, are
written in train()'s format, so ``load_trained``, the study store and a sequential resume work
unchanged. The epoch's wall time is shared by all members.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from odenet.data.loader import member_batches
from odenet.errors import ConfigError
from odenet.nets.fused import fusable, fuse, unfuse_state_dict
from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import (
    Placement,
    autocast,
    compiled_forward,
    resolve,
    synchronize,
)
from odenet.training.fused_member import Member, build_member, member_result, save_member
from odenet.training.fused_sgd import FusedSGD, member_rows
from odenet.training.results import EpochMetrics, TrainCallbacks, TrainResult

FUSION_FREE = ("lr", "seed")  # the only TrainConfig fields that may differ inside a group


def fusion_key(config: TrainConfig) -> tuple:
    """Everything but lr and seed: runs with equal keys can be trained as one fused group."""
    return tuple((k, v) for k, v in dataclasses.asdict(config).items() if k not in FUSION_FREE)


def _check_group(configs: Sequence[TrainConfig]) -> None:
    if not configs:
        raise ConfigError("train_fused needs at least one TrainConfig")
    for c in configs:
        c.validate()
    key = fusion_key(configs[0])
    for c in configs[1:]:
        if fusion_key(c) != key:
            diff = [k for k, v in key if getattr(c, k) != v]
            raise ConfigError(f"runs differ in {', '.join(diff)}: only lr and seed may differ")
    reason = fusable(configs[0].model_config(3, 10))
    if reason is not None:
        raise ConfigError(f"{reason}; train these runs one by one (executor 'sequential')")


@torch.no_grad()
def _evaluate(model: nn.Module, loader, members: int, placement: Placement) -> tuple[list, list]:
    """Per-member (mean cross-entropy, accuracy) in eval mode; every member sees the same images."""
    model.eval()
    loss_sum = torch.zeros(members, dtype=torch.float64, device=placement.device)
    correct = torch.zeros(members, dtype=torch.int64, device=placement.device)
    seen = 0
    for x, y in loader:
        with autocast(placement):
            logits = model(x.repeat(1, members, 1, 1))  # (B, K, classes)
        target = y[:, None].expand(-1, members)
        ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
        loss_sum += ce.sum(0).double()
        correct += (logits.argmax(2) == target).sum(0)
        seen += y.numel()
    n = max(seen, 1)
    return (loss_sum / n).tolist(), (correct.double() / n).tolist()


@torch.no_grad()
def _freeze(fused: nn.Module, opt: FusedSGD, member: int) -> None:
    """Take a diverged member out of training, before this step's update.

    This step's forward and backward already ran with its non-finite values; the kernels keep
    them in its own rows (grouped convolutions, per-channel norms, per-member heads), which are
    zeroed here: gradients, lr scale, momentum, weights and norm statistics. From the next step
    on it computes finite zeros and its rows never change (its lr scale stays zero). Nothing of
    a frozen member is written after this (its last checkpoint stays).
    """
    for t in (*(p.grad for p in fused.parameters() if p.grad is not None),
              *fused.parameters(), *fused.buffers()):  # fmt: skip
        if t.ndim:
            member_rows(t, opt.members, member).zero_()
    opt.freeze(member)


def _train_group(members: list[Member], placement: Placement) -> None:
    """Train members that are at the same epoch, fused, until done or all diverged."""
    k, cfg = len(members), members[0].config
    fused = fuse([m.model for m in members]).to(placement.device)
    if placement.channels_last:
        fused = fused.to(memory_format=torch.channels_last)
    opt = FusedSGD(fused, k, cfg, [m.config.lr for m in members])
    opt.load_buffers([m.buffers for m in members])
    forward = compiled_forward(fused, placement, enabled=cfg.cuda_graphs, batch_size=cfg.batch_size)
    steps, schedule = len(members[0].train_loader), members[0].scheduler.lr_lambdas[0]
    active = [True] * k
    for epoch in range(len(members[0].history) + 1, cfg.epochs + 1):
        live = [i for i in range(k) if active[i]]
        if not live:
            break
        for i in live:
            members[i].callbacks.on_epoch_start(epoch, steps)
        fused.train()
        synchronize(placement.device)
        start = time.perf_counter()
        loss_sum, images, lrs = [0.0] * k, [0] * k, [0.0] * k
        correct = torch.zeros(k, dtype=torch.int64, device=placement.device)
        # A frozen member still draws its batches: nothing of it is saved any more.
        batches = member_batches([m.train_loader for m in members])
        for step, (x, y) in enumerate(batches, start=1):
            with autocast(placement):
                logits = forward(x)  # (B, K, classes)
            losses = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none",
                                     label_smoothing=cfg.label_smoothing).mean(0)  # fmt: skip
            values = losses.tolist()  # one sync per step: divergence is checked before the update
            diverging = [i for i in live if not math.isfinite(values[i])
                         or values[i] > members[i].config.divergence_threshold]  # fmt: skip
            for i in diverging:
                active[i] = False
                members[i].diverged = (epoch, step)
                members[i].partial_seconds = time.perf_counter() - start
            live = [i for i in live if active[i]]
            if not live:
                break
            opt.zero_grad()
            losses.sum().backward()  # members are independent: each gets its own gradient
            for i in diverging:
                _freeze(fused, opt, i)
            factor = schedule((epoch - 1) * steps + step - 1)
            for i in live:
                lrs[i] = members[i].config.lr * factor
            opt.step(factor)
            correct += (logits.detach().argmax(2) == y).sum(0)
            for i in live:
                loss_sum[i] += values[i] * y.shape[0]
                images[i] += y.shape[0]
                members[i].callbacks.on_step(epoch, step, values[i])
        if not live:
            break
        synchronize(placement.device)
        train_seconds = time.perf_counter() - start
        test_loss, test_acc = _evaluate(fused, members[live[0]].test_loader, k, placement)
        seconds = time.perf_counter() - start
        accs = correct.tolist()
        if any(m.out is not None for m in members):
            states = unfuse_state_dict(fused.state_dict(), k)
            buffers = opt.member_buffers()
        for i in live:
            m = members[i]
            n = max(images[i], 1)
            rate = images[i] / max(train_seconds, 1e-9)
            metrics = EpochMetrics(epoch, loss_sum[i] / n, accs[i] / n, test_loss[i],
                                   test_acc[i], lrs[i], seconds, rate)  # fmt: skip
            m.history.append(metrics)
            if m.out is not None:
                save_member(m, states[i], buffers and buffers[i], epoch, epoch * steps)
        for i in live:  # after every checkpoint: a hook may interrupt the run
            members[i].callbacks.on_epoch_end(members[i].history[-1])


def train_fused(
    configs: Sequence[TrainConfig],
    *,
    out_dirs: Sequence[str | Path | None] | None = None,
    dataset=None,
    callbacks: Sequence[TrainCallbacks | None] | None = None,
) -> list[TrainResult]:
    """Train K runs (equal but for lr and seed) as one fused network; one result per config.

    Equivalent to ``[train(c, out_dir=d, dataset=dataset, callbacks=cb) for ...]`` up to float
    rounding (same initial weights, data order, schedule, divergence rule, files). Members whose
    run dir holds a result are returned as stored; members resumed from checkpoints at different
    epochs are trained as separate fused groups. CUDA graphs: ``TrainConfig.cuda_graphs``.
    Raises ConfigError for configs that differ in more than lr and seed or do not fuse.
    """
    from odenet.data import load_dataset

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
    first = None
    for i in pending:
        members[i] = build_member(configs[i], outs[i], cbs[i], dataset, placement, first)
        first = first or (members[i].train_loader, members[i].test_loader)
    by_epoch: dict[int, list[int]] = {}
    for i in pending:
        by_epoch.setdefault(len(members[i].history), []).append(i)
    for group in by_epoch.values():
        _train_group([members[i] for i in group], placement)
        for i in group:
            results[i] = member_result(members[i], placement, len(group))
            if outs[i] is not None:
                ckpt.save_result(outs[i], results[i].to_dict())
    return results  # type: ignore[return-value]
