"""SGD with momentum on K >= 1 members (one network, or a fused one), masked on the device.

``MemberSGD.step(keep, factor)`` applies torch.optim.SGD's update (dampening 0, optional
Nesterov, weight decay on tensors with ndim > 1) to every member whose ``keep`` flag is set and
leaves the weights and momentum of the others exactly as they were, without reading the flags
on the host: the candidate update is computed out of place and selected per member with
``torch.where`` (a member's NaN gradients never reach its own or anyone's weights).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from odenet.training.config import TrainConfig


def member_rows(t: Tensor, members: int, member: int) -> Tensor:
    """Member ``member``'s block of rows (dim 0) of a fused tensor: a view, any memory format."""
    rows = t.shape[0] // members
    return t.narrow(0, member * rows, rows)


def _by_member(t: Tensor, members: int) -> Tensor:
    """``t`` viewed as (members, rows, ...): member m's rows at index m (dim 0 split)."""
    return t.unflatten(0, (members, -1))


class MemberSGD:
    """The SGD update of K members whose tensors are stacked along dim 0 (K = 1: a plain net).

    Member m's learning rate at a step is ``lrs[m] * factor`` (the schedule's factor is shared).
    For K = 1 the arithmetic is torch.optim.SGD's own, op for op (``p + (-lr) d``), so a single
    run is bitwise the run torch's optimizer gives; for K > 1 the per-member lr is a
    per-element scale tensor (``p - factor (scale d)``), so the update is a handful of
    multi-tensor (``torch._foreach_*``) kernels whatever the number of members. Selecting the
    kept members costs two ``torch.where`` per parameter (weights and momentum).
    """

    def __init__(
        self, model: nn.Module, members: int, config: TrainConfig, lrs: Sequence[float]
    ) -> None:
        if len(lrs) != members:
            raise ValueError(f"give one lr per member: {len(lrs)} lrs for {members} members")
        self.members, self.lrs = members, list(lrs)
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.momentum, self.nesterov = config.momentum, config.nesterov
        self.weight_decay = config.weight_decay
        self.buffers = [torch.zeros_like(p) for _, p in self.named]  # zero == torch's first step
        self.scales: list[Tensor] = []
        if members > 1:
            self.scales = [torch.empty_like(p) for _, p in self.named]  # p's memory format
            with torch.no_grad():
                for scale in self.scales:
                    for m, lr in enumerate(lrs):
                        member_rows(scale, members, m).fill_(lr)

    def zero_grad(self) -> None:
        for _, p in self.named:
            p.grad = None

    @torch.no_grad()
    def step(self, keep: Tensor, factor: float) -> None:
        """Update the members with ``keep[m]`` (bool (K,), on the device); the others stay.

        Gradients are used as scratch space (weight decay is added to them in place).
        """
        live = [(i, p) for i, (_, p) in enumerate(self.named) if p.grad is not None]
        params = [p for _, p in live]
        grads = [p.grad for p in params]
        decayed = [p for p in params if p.ndim > 1]
        if self.weight_decay and decayed:
            torch._foreach_add_([p.grad for p in decayed], decayed, alpha=self.weight_decay)
        direction = grads
        if self.momentum:
            old = [self.buffers[i] for i, _ in live]
            new = torch._foreach_mul(old, self.momentum)
            torch._foreach_add_(new, grads)
            self._select(keep, old, new)
            if self.nesterov:
                torch._foreach_add_(grads, new, alpha=self.momentum)
            else:
                direction = new
        if self.members == 1:
            moved = torch._foreach_add(params, direction, alpha=-(self.lrs[0] * factor))
        else:
            scales = [self.scales[i] for i, _ in live]
            moved = torch._foreach_addcmul(params, scales, direction, value=-factor)
        self._select(keep, params, moved)

    def _select(self, keep: Tensor, into: list[Tensor], new: list[Tensor]) -> None:
        """into[j] <- new[j] in the rows of the kept members (in place, no host read)."""
        for t, n in zip(into, new):
            if self.members == 1:  # any shape, LM-ResNet's 0-dim k scalars included
                t.copy_(torch.where(keep.view([1] * t.ndim), n, t))
                continue
            mask = keep.view(self.members, *([1] * t.ndim))
            rows, candidate = _by_member(t, self.members), _by_member(n, self.members)
            rows.copy_(torch.where(mask, candidate, rows))

    def load_buffers(self, members: Sequence[dict[str, Tensor] | None]) -> None:
        """Momentum buffers from the members' (name -> tensor; None or missing: zeros)."""
        for i, (name, p) in enumerate(self.named):
            parts = [(m or {}).get(name) for m in members]
            if all(t is None for t in parts):
                continue
            parts = [torch.zeros_like(p[: p.shape[0] // self.members]) if t is None else t
                     for t in parts]  # fmt: skip
            self.buffers[i].copy_(torch.cat([t.to(p.device) for t in parts], dim=0))

    def member_buffers(self) -> list[dict[str, Tensor]]:
        """The K members' momentum buffers (name -> CPU tensor); empty dicts when momentum is 0."""
        if not self.momentum:
            return [{} for _ in range(self.members)]
        out: list[dict[str, Tensor]] = [{} for _ in range(self.members)]
        for (name, _), b in zip(self.named, self.buffers):
            for m in range(self.members):
                out[m][name] = member_rows(b, self.members, m).cpu().clone()
        return out
