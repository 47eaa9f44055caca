"""The training engine: ONE loop that trains K >= 1 members (K = 1 is a plain run).

A member is one run: its config, run dir, callbacks, network, loaders and history, built and
resumed the same way whether it trains alone or fused (``build_member``). ``train_members``
runs the epochs of members that are at the same epoch; only the member-wide step differs
(``odenet.training.steps``: one network, or K fused into one grouped network).

No host synchronisation per step. Divergence is decided on the device: a member whose loss is
non-finite or above its ``divergence_threshold`` is masked out of that step's update (its
weights and momentum do not change) and stays frozen; the flags, the first diverging step and
the step losses are read on the host in one transfer (``device.host_read``) every
``READ_EVERY`` steps and at the epoch's end, where the member is recorded as diverged at that
(epoch, step), exactly the step at which a per-step check stops. A frozen member still
computes until that read (at most READ_EVERY - 1 wasted steps); nothing of it is saved after
its last completed epoch. Per epoch: ceil(steps / READ_EVERY) reads while training (the last
one also carries the epoch's sums) and one for the evaluation.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from odenet.data import make_loaders
from odenet.errors import ConfigError
from odenet.nets import build_from_config, count_parameters
from odenet.nets.stage import scheme_coefficients
from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import (
    Placement,
    compiled_forward,
    data_seed,
    engine_of,
    host_read,
    provenance,
    synchronize,
)
from odenet.training.results import EpochMetrics, StepLog, TrainCallbacks, TrainResult
from odenet.training.schedules import LRSchedule
from odenet.training.steps import FusedStep, SingleStep, Step

if TYPE_CHECKING:
    from odenet.data import ArrayDataset, DeviceLoader

READ_EVERY = 32  # training steps between two host reads (and one at every epoch's end)


@dataclass
class Member:
    """One run: what it is, where it writes, and its live state between epochs."""

    config: TrainConfig
    out: Path | None  # run dir (checkpoint.pt, result.json), None: nothing written
    callbacks: TrainCallbacks
    model: nn.Module  # the member's own network (trained as is when it trains alone)
    train_loader: DeviceLoader  # its own generator (data order, augmentation)
    test_loader: DeviceLoader  # fixed order: the same images for every member
    history: list[EpochMetrics] = field(default_factory=list)  # completed epochs
    momentum: dict[str, Tensor] = field(default_factory=dict)  # of a resumed run, by name
    diverged: tuple[int, int] | None = None  # (epoch, step within it)
    partial_seconds: float = 0.0  # wall time of a diverged epoch up to the read that saw it


def lr_schedule(config: TrainConfig, steps: int) -> LRSchedule:
    """The run's lr factor by 0-based global step, for ``steps`` batches an epoch."""
    if steps == 0:
        raise ConfigError(
            f"no training batches: {config.limit_train or 'the'} images at batch size "
            f"{config.batch_size}; lower --batch-size or raise --limit-train"
        )
    warmup = round(config.warmup_epochs * steps)
    return LRSchedule(config.schedule, steps * config.epochs, warmup)


def build_member(
    config: TrainConfig,
    out: Path | None,
    callbacks: TrainCallbacks,
    dataset: ArrayDataset,
    placement: Placement,
    first: Member | None = None,
) -> Member:
    """A run as ``train`` starts it: model from ``Generator().manual_seed(seed)``, loaders
    seeded with ``data_seed(seed)`` (copies of ``first``'s, sharing its device tensors), and
    everything restored from a checkpoint in ``out`` (ConfigError for another run's; an
    unreadable one is ignored with a warning: ``checkpoint.resume_state``)."""
    model = build_from_config(config.model_for(dataset), torch.Generator().manual_seed(config.seed))
    if first is None:
        train_loader, test_loader = make_loaders(
            dataset, batch_size=config.batch_size, device=placement.device,
            seed=data_seed(config.seed), limit_train=config.limit_train,
            limit_test=config.limit_test, augment=config.augment, pad=config.pad,
            channels_last=placement.channels_last,
        )  # fmt: skip
    else:  # the same loaders (shared device tensors) with this member's own generators
        train_loader, test_loader = copy.copy(first.train_loader), copy.copy(first.test_loader)
        for loader in (train_loader, test_loader):
            loader.generator = torch.Generator().manual_seed(data_seed(config.seed))
    lr_schedule(config, len(train_loader))  # refuses an empty epoch before anything runs
    m = Member(config, out, callbacks, model, train_loader, test_loader)
    if out is not None and (state := ckpt.resume_state(out)) is not None:
        ckpt.check_same_config(state["config"], config, out)
        model.load_state_dict(state["model"])
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        m.momentum = ckpt.momentum_of(state, trainable)
        train_loader.generator.set_state(state["rng"]["train_loader"])
        test_loader.generator.set_state(state["rng"]["test_loader"])
        m.history = [EpochMetrics(**h) for h in state["history"]]
    return m


def save_member(m: Member, model_state: dict, momentum: dict, steps_done: int) -> None:
    """The one checkpoint writer: member ``m`` after its last completed epoch."""
    ckpt.save_checkpoint(m.out, {
        "config": dataclasses.asdict(m.config),
        "model_config": dataclasses.asdict(m.model.config),
        "epoch": len(m.history),
        "step": steps_done,
        "model": model_state,
        "momentum": momentum,
        "history": [h.to_dict() for h in m.history],
        "rng": {"train_loader": m.train_loader.generator.get_state(),
                "test_loader": m.test_loader.generator.get_state()},
    })  # fmt: skip


def _make_step(members: list[Member], placement: Placement) -> Step:
    if len(members) > 1:
        return FusedStep([m.model for m in members], [m.config for m in members], placement)
    model = members[0].model.to(placement.device)
    if placement.channels_last:
        model = model.to(memory_format=torch.channels_last)
    return SingleStep(model, members[0].config, placement)


def train_members(
    members: list[Member], placement: Placement, execution: dict | None = None
) -> list[TrainResult]:
    """Train members at the same epoch until done or diverged; their results (result.json
    written for those with a run dir). execution: recorded in each result's provenance."""
    step = _make_step(members, placement)
    cfg = members[0].config
    step.forward = compiled_forward(step.network, placement, enabled=cfg.cuda_graphs,
                                    batch_size=cfg.batch_size)  # fmt: skip
    step.optimizer.load_buffers([m.momentum for m in members])
    _epochs(members, step, placement)
    results = []
    for m in members:
        results.append(_result(m, placement, {**engine_of(step.forward)}, execution))
        if m.out is not None:
            ckpt.save_result(m.out, results[-1].to_dict())
    return results


def _result(m: Member, placement: Placement, engine: dict, execution: dict | None):

    params, extra = count_parameters(m.model)
    prov = {**provenance(m.config, placement), **engine}
    if (coefficients := scheme_coefficients(m.model)) is not None:
        prov["coefficients"] = coefficients  # the learned lm k / learn-<tableau> A and b
    if execution is not None:
        prov["execution"] = execution
    return TrainResult.from_history(
        m.history, diverged=m.diverged, partial_seconds=m.partial_seconds, params=params,
        extra_params=extra, device=str(placement.device), provenance=prov,
    )  # fmt: skip


def _epochs(members: list[Member], step: Step, placement: Placement) -> None:
    """The epoch loop (see the module docstring for the reads and the divergence rule)."""
    k, cfg, dev = len(members), members[0].config, placement.device
    steps = len(members[0].train_loader)
    schedule = lr_schedule(cfg, steps)
    thresholds = torch.tensor([m.config.divergence_threshold for m in members],
                              dtype=torch.float64, device=dev)  # fmt: skip
    alive = torch.ones(k, dtype=torch.bool, device=dev)
    live = list(range(k))
    for epoch in range(len(members[0].history) + 1, cfg.epochs + 1):
        for i in live:
            members[i].callbacks.on_epoch_start(epoch, steps)
        step.network.train()
        synchronize(dev)
        start = time.perf_counter()
        before = (epoch - 1) * steps  # global steps taken before this epoch
        diverged_at = torch.zeros(k, dtype=torch.int64, device=dev)
        loss_sum = torch.zeros(k, dtype=torch.float64, device=dev)
        images = torch.zeros(k, dtype=torch.int64, device=dev)
        correct = torch.zeros(k, dtype=torch.int64, device=dev)
        window: list[Tensor] = []  # per-step losses (K,) since the last read
        batches = step.batches([m.train_loader for m in members])
        for s, (x, y) in enumerate(batches, start=1):
            losses, hits = step.losses(x, y)
            ok = losses.isfinite() & (losses.double() <= thresholds)
            diverged_at = torch.where(alive & ~ok, s, diverged_at)
            alive = alive & ok
            step.update(losses, alive, schedule(before + s - 1))
            loss_sum += torch.where(alive, losses.double() * y.shape[0], 0.0)
            images += alive.long() * y.shape[0]
            correct += torch.where(alive, hits, 0)
            window.append(losses)
            if s % READ_EVERY and s != steps:
                continue
            packed = [torch.stack(window).double().flatten(), diverged_at.double()]
            if s == steps:
                packed += [loss_sum, images.double(), correct.double()]
            values = host_read(torch.cat(packed))
            _report(members, live, values, epoch, s - len(window) + 1, s, before, start)
            window = []
            if not live:
                return
        sums = values[-3 * k :]
        synchronize(dev)
        train_seconds = time.perf_counter() - start
        test_sum, test_correct, seen = step.evaluate(members[live[0]].test_loader)
        test = host_read(torch.cat([test_sum, test_correct.double()]))
        seconds = time.perf_counter() - start
        for i in live:
            m, n = members[i], max(sums[k + i], 1)
            m.history.append(EpochMetrics(
                epoch, sums[i] / n, sums[2 * k + i] / n, test[i] / max(seen, 1),
                test[k + i] / max(seen, 1), m.config.lr * schedule(before + steps - 1), seconds,
                sums[k + i] / max(train_seconds, 1e-9),
            ))  # fmt: skip
        if any(members[i].out is not None for i in live):
            for i in live:  # a hook may stop the run before anything of the epoch is written
                if members[i].out is not None:
                    members[i].callbacks.on_checkpoint(epoch)
            states, momentum = step.member_states(), step.optimizer.member_buffers()
            for i in live:
                if members[i].out is not None:
                    save_member(members[i], states[i], momentum[i], before + steps)
        for i in live:  # after every checkpoint: a hook may interrupt the run
            members[i].callbacks.on_epoch_end(members[i].history[-1])


def _report(members: list[Member], live: list[int], values: list[float], epoch: int,
            first: int, last: int, before: int, start: float) -> None:  # fmt: skip
    """At a host read of steps first..last of ``epoch``: log rows and the latest loss to each
    live member's callbacks, and take the members that diverged out of ``live``.

    values: the window's losses (step-major, K per step), then each member's diverging step
    in this epoch (0: none).
    """
    k, cfg, steps = len(members), members[0].config, len(members[0].train_loader)
    schedule, interval = lr_schedule(cfg, steps), cfg.log_interval(steps)
    for i in list(live):
        m, div = members[i], int(values[(last - first + 1) * k + i])
        taken = div - 1 if div else last  # the member's last step taken
        rows = [StepLog(g, values[(t - first) * k + i], m.config.lr * schedule(g - 1))
                for t in range(first, taken + 1) if (g := before + t) % interval == 0]  # fmt: skip
        m.callbacks.on_log(rows)
        if taken >= first:
            m.callbacks.on_step(epoch, taken, values[(taken - first) * k + i])
        if div:
            m.diverged, m.partial_seconds = (epoch, div), time.perf_counter() - start
            live.remove(i)
