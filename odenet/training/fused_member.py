"""One member of a fused group (odenet.training.fused): built exactly as ``train`` builds a
run, checkpointed and summarised in ``train``'s formats, so a member's files are a run's files."""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import Placement, data_seed, provenance
from odenet.training.results import EpochMetrics, TrainCallbacks, TrainResult
from odenet.training.trainer import make_optimization


@dataclass
class Member:
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


def build_member(config, out, callbacks, dataset, placement, first_loaders) -> Member:
    from odenet.data import make_loaders
    from odenet.nets import build_from_config

    model_config = config.model_config(dataset.in_channels, dataset.num_classes)
    model_config.validate()
    model = build_from_config(model_config, torch.Generator().manual_seed(config.seed))
    if first_loaders is None:
        loaders = make_loaders(
            dataset, batch_size=config.batch_size, device=placement.device,
            seed=data_seed(config.seed), limit_train=config.limit_train,
            limit_test=config.limit_test, augment=config.augment, pad=config.pad,
            channels_last=placement.channels_last,
        )  # fmt: skip
        train_loader, test_loader = loaders
    else:  # the same loader (shared device tensors) with this member's own generator
        train_loader = copy.copy(first_loaders[0])
        train_loader.generator = torch.Generator().manual_seed(data_seed(config.seed))
        test_loader = first_loaders[1]
    optimizer, scheduler = make_optimization(model, config, len(train_loader))
    m = Member(config, out, callbacks, model, optimizer, scheduler, train_loader, test_loader,
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


def save_member(
    m: Member, model_state: dict, buffers: dict | None, epoch: int, steps_done: int
) -> None:
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


def member_result(m: Member, placement: Placement, members: int) -> TrainResult:
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
