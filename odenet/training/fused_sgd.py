"""SGD with momentum on a fused network (odenet.nets.fused), one learning rate per member."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from odenet.nets.fused import unfuse_state_dict
from odenet.training.config import TrainConfig


def member_rows(t: Tensor, members: int, member: int) -> Tensor:
    """Member ``member``'s block of rows (dim 0) of a fused tensor: a view, any memory format."""
    rows = t.shape[0] // members
    return t.narrow(0, member * rows, rows)


class FusedSGD:
    """torch.optim.SGD's update (dampening 0) on K fused members, with one peak lr per member.

    Every tensor of the fused network is the K members' tensors stacked along dim 0, so row
    block m of each parameter belongs to member m. The learning rate of member m at a step is
    ``lrs[m] * factor`` (the schedule's factor is shared by the group), applied through a
    per-element scale tensor of each parameter's shape, so the whole update is a handful of
    multi-tensor (``torch._foreach_*``) kernels, whatever the number of parameters: on a GPU a
    per-parameter loop would cost hundreds of kernel launches per step. Weight decay applies to
    tensors with ndim > 1 (conv and linear weights), as ``make_optimizer`` does.
    """

    def __init__(
        self, model: nn.Module, members: int, config: TrainConfig, lrs: Sequence[float]
    ) -> None:
        if len(lrs) != members:
            raise ValueError(f"give one lr per member: {len(lrs)} lrs for {members} members")
        self.members = members
        self.named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.momentum, self.nesterov = config.momentum, config.nesterov
        self.weight_decay = config.weight_decay
        self.buffers = [torch.zeros_like(p) for _, p in self.named]  # zero == torch's first step
        self.scales = [torch.empty_like(p) for _, p in self.named]  # p's memory format
        with torch.no_grad():
            for scale in self.scales:
                for m, lr in enumerate(lrs):
                    member_rows(scale, members, m).fill_(lr)

    def zero_grad(self) -> None:
        for _, p in self.named:
            p.grad = None

    @torch.no_grad()
    def step(self, factor: float) -> None:
        """One update: member m moves by ``-lrs[m] * factor`` times its SGD direction.

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
            buffers = [self.buffers[i] for i, _ in live]
            torch._foreach_mul_(buffers, self.momentum)
            torch._foreach_add_(buffers, grads)
            if self.nesterov:
                torch._foreach_add_(grads, buffers, alpha=self.momentum)
            else:
                direction = buffers
        torch._foreach_addcmul_(params, [self.scales[i] for i, _ in live], direction,
                                value=-factor)  # fmt: skip

    @torch.no_grad()
    def freeze(self, member: int) -> None:
        """Stop updating ``member``: its lr scale becomes zero for good and its momentum is reset
        (its buffer rows may refill from later gradients; scaled by zero, they move nothing)."""
        for t in (*self.scales, *self.buffers):
            member_rows(t, self.members, member).zero_()

    def load_buffers(self, members: Sequence[dict[str, Tensor] | None]) -> None:
        """Momentum buffers from the members' (name -> tensor; None: zeros)."""
        for i, (name, p) in enumerate(self.named):
            parts = [(m or {}).get(name) for m in members]
            if all(t is None for t in parts):
                continue
            parts = [torch.zeros_like(p[: p.shape[0] // self.members]) if t is None else t
                     for t in parts]  # fmt: skip
            self.buffers[i].copy_(torch.cat([t.to(p.device) for t in parts], dim=0))

    def member_buffers(self) -> list[dict[str, Tensor]] | None:
        """The K members' momentum buffers (name -> CPU tensor); None when momentum is 0."""
        if not self.momentum:
            return None
        names = [n for n, _ in self.named]
        return unfuse_state_dict({n: b.cpu() for n, b in zip(names, self.buffers)}, self.members)
