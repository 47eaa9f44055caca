"""The training engine: ``train(config)`` -> TrainResult, with divergence detection and resume.

One run = SGD (momentum, optional Nesterov, weight decay on conv/linear weights only) with a
per-step lr schedule, cross-entropy with optional label smoothing, evaluation on the test
split after every epoch. Reproducibility: the model is initialised from
``torch.Generator().manual_seed(seed)``; shuffling and augmentation draw from the loaders'
generator, seeded with ``device.data_seed(seed)``; torch's global RNG is never used. With
``out_dir`` a checkpoint is written after every epoch, and a run found there is resumed: on
CPU the resumed run ends bitwise equal to one that never stopped.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn

from odenet.errors import ConfigError
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
from odenet.training.results import EpochMetrics, TrainCallbacks, TrainResult
from odenet.training.schedules import LRSchedule, make_scheduler

if TYPE_CHECKING:
    from odenet.data import ArrayDataset, DeviceLoader


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD; weight decay only on tensors with ndim > 1 (conv/linear weights), not on norm
    scales/shifts, biases or LM-ResNet's k scalars."""
    params = [p for p in model.parameters() if p.requires_grad]
    groups = [
        {"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
        {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0},
    ]
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, nesterov=config.nesterov)


def make_optimization(
    model: nn.Module, config: TrainConfig, steps: int
) -> tuple[torch.optim.SGD, torch.optim.lr_scheduler.LRScheduler]:
    """SGD and its per-step lr schedule for ``steps`` batches an epoch (ConfigError for 0)."""
    if steps == 0:
        raise ConfigError(
            f"no training batches: {config.limit_train or 'the'} images at batch size "
            f"{config.batch_size}; lower --batch-size or raise --limit-train"
        )
    optimizer = make_optimizer(model, config)
    warmup = round(config.warmup_epochs * steps)
    schedule = LRSchedule(config.schedule, steps * config.epochs, warmup)
    return optimizer, make_scheduler(optimizer, schedule)


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, placement: Placement) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode over ``loader``."""
    model.eval()
    loss_sum = torch.zeros((), dtype=torch.float64, device=placement.device)
    correct = torch.zeros((), dtype=torch.int64, device=placement.device)
    seen = 0
    for x, y in loader:
        with autocast(placement):
            logits = model(x)
        loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
        correct += (logits.argmax(1) == y).sum()
        seen += y.numel()
    return loss_sum.item() / max(seen, 1), correct.item() / max(seen, 1)


@dataclass
class _EpochOutcome:
    loss: float
    acc: float
    lr: float  # of the last step taken
    train_seconds: float
    images: int
    diverged_step: int | None


def _train_epoch(
    model: nn.Module,
    forward: Callable[[torch.Tensor], torch.Tensor],
    loader: DeviceLoader,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    config: TrainConfig,
    placement: Placement,
    epoch: int,
    callbacks: TrainCallbacks,
) -> _EpochOutcome:
    """One pass over ``loader``. Stops before the optimizer step of a diverging batch.

    forward: ``model`` itself, or its CUDA-graph capture (same parameters).
    """
    model.train()
    synchronize(placement.device)
    start = time.perf_counter()
    loss_sum, images, lr = 0.0, 0, optimizer.param_groups[0]["lr"]
    correct = torch.zeros((), dtype=torch.int64, device=placement.device)
    for step, (x, y) in enumerate(loader, start=1):
        with autocast(placement):
            logits = forward(x)
        loss = F.cross_entropy(logits.float(), y, label_smoothing=config.label_smoothing)
        value = loss.item()  # one sync per step: divergence is checked before the update
        if not math.isfinite(value) or value > config.divergence_threshold:
            seconds = time.perf_counter() - start
            return _EpochOutcome(math.nan, math.nan, lr, seconds, images, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        lr = optimizer.param_groups[0]["lr"]
        optimizer.step()
        scheduler.step()
        loss_sum += value * y.numel()
        images += y.numel()
        correct += (logits.detach().argmax(1) == y).sum()
        callbacks.on_step(epoch, step, value)
    synchronize(placement.device)
    seconds = time.perf_counter() - start
    acc = correct.item() / max(images, 1)
    return _EpochOutcome(loss_sum / max(images, 1), acc, lr, seconds, images, None)


@dataclass
class _Run:
    """The live objects of one run, and how they go to and come back from a checkpoint."""

    model_config: Any  # odenet.nets.ModelConfig
    model: nn.Module
    train_loader: DeviceLoader
    test_loader: DeviceLoader
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler

    def state(self, config: TrainConfig, history: list[EpochMetrics]) -> dict[str, Any]:
        """The checkpoint payload after ``len(history)`` completed epochs."""
        return {
            "config": dataclasses.asdict(config),
            "model_config": dataclasses.asdict(self.model_config),
            "epoch": len(history),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "history": [m.to_dict() for m in history],
            "rng": {
                "train_loader": self.train_loader.generator.get_state(),
                "test_loader": self.test_loader.generator.get_state(),
            },
        }

    def restore(self, state: dict[str, Any]) -> list[EpochMetrics]:
        """Load a checkpoint payload into the live objects; return its history."""
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.train_loader.generator.set_state(state["rng"]["train_loader"])
        self.test_loader.generator.set_state(state["rng"]["test_loader"])
        return [EpochMetrics(**m) for m in state["history"]]


def _setup(config: TrainConfig, dataset: ArrayDataset, placement: Placement) -> _Run:
    """Model (init from Generator(seed)), loaders (seeded with data_seed(seed)), SGD, schedule."""
    from odenet.data import make_loaders
    from odenet.nets import build_from_config

    model_config = config.model_config(dataset.in_channels, dataset.num_classes)
    model_config.validate()
    model = build_from_config(model_config, torch.Generator().manual_seed(config.seed))
    model = model.to(placement.device)
    if placement.channels_last:
        model = model.to(memory_format=torch.channels_last)
    train_loader, test_loader = make_loaders(
        dataset, batch_size=config.batch_size, device=placement.device,
        seed=data_seed(config.seed), limit_train=config.limit_train,
        limit_test=config.limit_test, augment=config.augment,
        channels_last=placement.channels_last,
    )  # fmt: skip
    optimizer, scheduler = make_optimization(model, config, len(train_loader))
    return _Run(model_config, model, train_loader, test_loader, optimizer, scheduler)


def train(
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    dataset: ArrayDataset | None = None,
    callbacks: TrainCallbacks | None = None,
) -> TrainResult:
    """Train one model as ``config`` says; never raises on divergence (status "diverged").

    dataset: an already loaded ArrayDataset whose ``name`` is ``config.dataset`` (None: load
    it with ``odenet.data.load_dataset(config.dataset, config.data_dir)``).
    out_dir: checkpoint after every epoch, resume from a checkpoint found there, write
    result.json at the end; a finished run found there is returned as it is. A checkpoint or
    result of a different config there raises ConfigError.
    """
    from odenet.data import load_dataset
    from odenet.nets import count_parameters
    from odenet.nets.stage import scheme_coefficients

    config.validate()
    callbacks = callbacks if callbacks is not None else TrainCallbacks()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and (stored := ckpt.load_result(out)) is not None:
        ckpt.check_same_config(stored.get("provenance", {}).get("config", {}), config, out)
        return TrainResult.from_dict(stored)
    placement = resolve(config)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir)
    elif dataset.name != config.dataset:
        raise ConfigError(
            f"dataset {dataset.name!r} was passed for a config naming {config.dataset!r}: "
            "set TrainConfig.dataset to the dataset's name"
        )
    run = _setup(config, dataset, placement)
    model, optimizer, scheduler = run.model, run.optimizer, run.scheduler
    train_loader, test_loader, steps = run.train_loader, run.test_loader, len(run.train_loader)
    history: list[EpochMetrics] = []
    if out is not None and (state := ckpt.load_checkpoint(out)) is not None:
        ckpt.check_same_config(state["config"], config, out)
        history = run.restore(state)

    forward = compiled_forward(
        model, placement, enabled=config.cuda_graphs, batch_size=config.batch_size
    )
    params, extra_params = count_parameters(model)
    diverged: tuple[int, int] | None = None  # (epoch, step) of a diverging step
    partial_seconds = 0.0
    for epoch in range(len(history) + 1, config.epochs + 1):
        callbacks.on_epoch_start(epoch, steps)
        outcome = _train_epoch(
            model, forward, train_loader, optimizer, scheduler, config, placement, epoch, callbacks
        )
        if outcome.diverged_step is not None:
            diverged = (epoch, outcome.diverged_step)
            partial_seconds = outcome.train_seconds
            break
        test_start = time.perf_counter()
        test_loss, test_acc = evaluate(model, test_loader, placement)
        seconds = outcome.train_seconds + time.perf_counter() - test_start
        metrics = EpochMetrics(
            epoch, outcome.loss, outcome.acc, test_loss, test_acc, outcome.lr, seconds,
            outcome.images / max(outcome.train_seconds, 1e-9),
        )  # fmt: skip
        history.append(metrics)
        if out is not None:
            ckpt.save_checkpoint(out, run.state(config, history))
        callbacks.on_epoch_end(metrics)

    prov = provenance(config, placement)
    if (coefficients := scheme_coefficients(model)) is not None:
        prov["coefficients"] = coefficients  # the learned lm k / learn-<tableau> A and b
    result = TrainResult.from_history(
        history,
        diverged=diverged,
        partial_seconds=partial_seconds,
        params=params,
        extra_params=extra_params,
        device=str(placement.device),
        provenance=prov,
    )
    if out is not None:
        ckpt.save_result(out, result.to_dict())
    return result
