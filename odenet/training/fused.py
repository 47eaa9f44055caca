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

import copy
import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.data.loader import member_batches
from odenet.errors import ConfigError
from odenet.nets.fused import fusable, fuse, unfuse_state_dict
from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import (
    Placement,
    autocast,
    compiled_forward,
    data_seed,
    provenance,
    resolve,
    synchronize,
)
from odenet.training.fused_sgd import FusedSGD, member_rows
from odenet.training.results import EpochMetrics, TrainCallbacks, TrainResult
from odenet.training.schedules import LRSchedule, make_scheduler
from odenet.training.trainer import make_optimizer

FUSION_FREE = ("lr", "seed")  # the only TrainConfig fields that may differ inside a group


def fusion_key(config: TrainConfig) -> tuple:
    """Everything but lr and seed: runs with equal keys can be trained as one fused group."""
    return tuple((k, v) for k, v in dataclasses.asdict(config).items() if k not in FUSION_FREE)


@dataclass
class _Member:
    """One run of the group: its config, run dir, member model (CPU) and bookkeeping."""

    config: TrainConfig
    out: Path | None
    callbacks: TrainCallbacks
    model: nn.Module
    optimizer: torch.optim.SGD  # the member's torch optimizer, used for state-dict formats
    scheduler: Any
    train_loader: Any  # DeviceLoader with the member's own generator
    test_loader: Any  # DeviceLoader (fixed order; the same images for every member)
    test_generator: torch.Generator  # saved as train() saves its test loader's generator
    history: list[EpochMetrics] = field(default_factory=list)
    buffers: dict[str, Tensor] | None = None  # momentum buffers of a resumed run
    diverged: tuple[int, int] | None = None  # (epoch, step)
    partial_seconds: float = 0.0

    def param_names(self) -> list[str]:
        """Names in the order of the optimizer's packed state-dict indices."""
        names = {id(p): n for n, p in self.model.named_parameters()}
        return [names[id(p)] for g in self.optimizer.param_groups for p in g["params"]]


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


def _member(config, out, callbacks, dataset, placement, first_loaders) -> _Member:
    from odenet.data import make_loaders
    from odenet.nets import build_from_config

    model_config = config.model_config(dataset.in_channels, dataset.num_classes)
    model_config.validate()
    model = build_from_config(model_config, torch.Generator().manual_seed(config.seed))
    if first_loaders is None:
        loaders = make_loaders(
            dataset, batch_size=config.batch_size, device=placement.device,
            seed=data_seed(config.seed), limit_train=config.limit_train,
            limit_test=config.limit_test, augment=config.augment,
            channels_last=placement.channels_last,
        )  # fmt: skip
        train_loader, test_loader = loaders
    else:  # the same loader (shared device tensors) with this member's own generator
        train_loader = copy.copy(first_loaders[0])
        train_loader.generator = torch.Generator().manual_seed(data_seed(config.seed))
        test_loader = first_loaders[1]
    steps = len(train_loader)
    if steps == 0:
        raise ConfigError(
            f"no training batches: {config.limit_train or 'the'} images at batch size "
            f"{config.batch_size}; lower --batch-size or raise --limit-train"
        )
    optimizer = make_optimizer(model, config)
    schedule = LRSchedule(
        config.schedule, steps * config.epochs, round(config.warmup_epochs * steps)
    )
    m = _Member(config, out, callbacks, model, optimizer, make_scheduler(optimizer, schedule),
                train_loader, test_loader,
                torch.Generator().manual_seed(data_seed(config.seed)))  # fmt: skip
    if out is not None and (state := ckpt.load_checkpoint(out)) is not None:
        ckpt.check_same_config(state["config"], config, out)
        model.load_state_dict(state["model"])
        names = m.param_names()
        m.buffers = {names[int(i)]: s["momentum_buffer"]
                     for i, s in state["optimizer"]["state"].items()
                     if s.get("momentum_buffer") is not None}  # fmt: skip
        train_loader.generator.set_state(state["rng"]["train_loader"])
        m.test_generator.set_state(state["rng"]["test_loader"])
        m.history = [EpochMetrics(**h) for h in state["history"]]
    return m


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


def _save(m: _Member, model_state: dict, buffers: dict | None, epoch: int, steps_done: int) -> None:
    """The member's checkpoint.pt exactly as train() writes it after ``epoch``.

    model_state / buffers: the member's unfused weights and momentum buffers (None: momentum 0).
    """
    lr = m.config.lr * m.scheduler.lr_lambdas[0](steps_done)
    optim = m.optimizer.state_dict()
    names = m.param_names()
    optim["state"] = {} if buffers is None else {
        i: {"momentum_buffer": buffers[n]} for i, n in enumerate(names)
    }  # fmt: skip
    for group in optim["param_groups"]:
        group["lr"] = lr
    sched = m.scheduler.state_dict()
    sched.update(last_epoch=steps_done, _step_count=steps_done + 1, _is_initial=False)
    sched["_last_lr"] = [lr] * len(optim["param_groups"])
    ckpt.save_checkpoint(m.out, {
        "config": dataclasses.asdict(m.config),
        "model_config": dataclasses.asdict(m.model.config),
        "epoch": epoch,
        "model": {k: v.cpu() for k, v in model_state.items()},
        "optimizer": optim,
        "scheduler": sched,
        "history": [h.to_dict() for h in m.history],
        "rng": {"train_loader": m.train_loader.generator.get_state(),
                "test_loader": m.test_generator.get_state()},
    })  # fmt: skip


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


def _train_group(members: list[_Member], placement: Placement) -> None:
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
                _save(m, states[i], buffers and buffers[i], epoch, epoch * steps)
        for i in live:  # after every checkpoint: a hook may interrupt the run
            members[i].callbacks.on_epoch_end(members[i].history[-1])


def _result(m: _Member, placement: Placement, members: int) -> TrainResult:
    from odenet.nets import count_parameters

    params, extra = count_parameters(m.model)
    prov = provenance(m.config, placement)
    prov["execution"] = {"executor": "fused", "members": members}
    return TrainResult.from_history(
        m.history,
        diverged=m.diverged,
        partial_seconds=m.partial_seconds,
        params=params,
        extra_params=extra,
        device=str(placement.device),
        provenance=prov,
    )


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
    members: dict[int, _Member] = {}
    first = None
    for i in pending:
        members[i] = _member(configs[i], outs[i], cbs[i], dataset, placement, first)
        first = first or (members[i].train_loader, members[i].test_loader)
    by_epoch: dict[int, list[int]] = {}
    for i in pending:
        by_epoch.setdefault(len(members[i].history), []).append(i)
    for group in by_epoch.values():
        _train_group([members[i] for i in group], placement)
        for i in group:
            results[i] = _result(members[i], placement, len(group))
            if outs[i] is not None:
                ckpt.save_result(outs[i], results[i].to_dict())
    return results  # type: ignore[return-value]
