"""The member-wide part of a training step, behind one small interface.

The engine (odenet.training.engine) trains K >= 1 members with one loop; what differs between
one run and K fused runs is only how a batch becomes K losses, how the update is applied and
how the members are evaluated:

* ``SingleStep``: one network, the loss exactly as a plain training loop computes it;
* ``FusedStep``: K networks fused into one grouped network (odenet.nets.fused), the members'
  own batches stacked along channels, the sum of the members' mean losses differentiated (so
  each member gets its separate gradient) and one lr per member.

Both update through ``MemberSGD``, masked per member on the device: a member whose ``keep``
flag is off is not changed by the step.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.data.loader import member_batches
from odenet.nets.fused import fuse, unfuse_state_dict
from odenet.training.config import TrainConfig
from odenet.training.device import Placement, autocast, host_read
from odenet.training.sgd import MemberSGD

if TYPE_CHECKING:
    from odenet.data import DeviceLoader


class Step(ABC):
    """K members' forward, loss, update and evaluation; subclasses are final."""

    members: int  # K
    network: nn.Module  # what is trained: the member's network, or the fused one
    optimizer: MemberSGD
    forward: object  # callable x -> logits: ``network`` or its capture (same parameters)

    @abstractmethod
    def batches(self, loaders: list[DeviceLoader]) -> Iterable[tuple[Tensor, Tensor]]:
        """One epoch of training batches of the members' loaders."""

    @abstractmethod
    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        """Training-mode forward: (per-member mean loss float32 (K,), correct int64 (K,))."""

    @abstractmethod
    def evaluate(self, loader: DeviceLoader) -> tuple[Tensor, Tensor, int]:
        """Eval mode over ``loader``: (loss sums float64 (K,), correct int64 (K,), images)."""

    @abstractmethod
    def member_states(self) -> list[dict[str, Tensor]]:
        """Each member's network state dict, as its own (unfused) network names it, on CPU."""

    def update(self, losses: Tensor, keep: Tensor, factor: float) -> None:
        """Backward of the summed losses, then SGD on the members with ``keep``."""
        self.optimizer.zero_grad()
        losses.sum().backward()  # members are independent: each gets its own gradient
        self.optimizer.step(keep, factor)


class SingleStep(Step):
    """One network: ``F.cross_entropy(logits, y)`` as a plain loop computes it."""

    def __init__(self, model: nn.Module, config: TrainConfig, placement: Placement) -> None:
        self.members, self.config, self.placement = 1, config, placement
        self.network = model
        self.optimizer = MemberSGD(model, 1, config, [config.lr])
        self.forward = model

    def batches(self, loaders: list[DeviceLoader]) -> Iterable[tuple[Tensor, Tensor]]:
        return loaders[0]

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with autocast(self.placement):
            logits = self.forward(x)
        ls = self.config.label_smoothing
        loss = F.cross_entropy(logits.float(), y, label_smoothing=ls)
        return loss.reshape(1), (logits.detach().argmax(1) == y).sum().reshape(1)

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader) -> tuple[Tensor, Tensor, int]:
        return _evaluate_one(self.network, loader, self.placement)

    def member_states(self) -> list[dict[str, Tensor]]:
        return [{k: v.detach().cpu().clone() for k, v in self.network.state_dict().items()}]


class FusedStep(Step):
    """K networks of one config as one grouped network, one lr per member."""

    def __init__(
        self, models: list[nn.Module], configs: list[TrainConfig], placement: Placement
    ) -> None:

        self.members, self.config, self.placement = len(models), configs[0], placement
        fused = fuse(models).to(placement.device)
        if placement.channels_last:
            fused = fused.to(memory_format=torch.channels_last)
        self.network = fused
        self.optimizer = MemberSGD(fused, self.members, configs[0], [c.lr for c in configs])
        self.forward = fused

    def batches(self, loaders: list[DeviceLoader]) -> Iterable[tuple[Tensor, Tensor]]:

        return member_batches(loaders)

    def losses(self, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        with autocast(self.placement):
            logits = self.forward(x)  # (B, K, classes)
        losses = F.cross_entropy(logits.float().transpose(1, 2), y, reduction="none",
                                 label_smoothing=self.config.label_smoothing).mean(0)  # fmt: skip
        return losses, (logits.detach().argmax(2) == y).sum(0)

    @torch.no_grad()
    def evaluate(self, loader: DeviceLoader) -> tuple[Tensor, Tensor, int]:
        """Every member sees the same images (the shared test split)."""
        k = self.members
        self.network.eval()
        loss_sum = torch.zeros(k, dtype=torch.float64, device=self.placement.device)
        correct = torch.zeros(k, dtype=torch.int64, device=self.placement.device)
        seen = 0
        for x, y in loader:
            with autocast(self.placement):
                logits = self.network(x.repeat(1, k, 1, 1))  # (B, K, classes)
            target = y[:, None].expand(-1, k)
            ce = F.cross_entropy(logits.float().transpose(1, 2), target, reduction="none")
            loss_sum += ce.sum(0).double()
            correct += (logits.argmax(2) == target).sum(0)
            seen += y.numel()
        return loss_sum, correct, seen

    def member_states(self) -> list[dict[str, Tensor]]:

        state = {k: v.detach().cpu() for k, v in self.network.state_dict().items()}
        return [{k: v.clone() for k, v in s.items()}
                for s in unfuse_state_dict(state, self.members)]  # fmt: skip


def _evaluate_one(model: nn.Module, loader: DeviceLoader, placement: Placement):
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
    return loss_sum.reshape(1), correct.reshape(1), seen


@torch.no_grad()
def evaluate(model: nn.Module, loader: DeviceLoader, placement: Placement) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of ``model`` in eval mode over ``loader`` (one host read)."""
    loss_sum, correct, seen = _evaluate_one(model, loader, placement)
    loss, hits = host_read(torch.cat([loss_sum, correct.double()]))
    return loss / max(seen, 1), hits / max(seen, 1)
