"""Random, filter-normalised directions in parameter space (Li et al. 2018, arXiv 1712.09913).

A direction is a ``dict[str, Tensor]`` keyed like ``model.named_parameters()``, each tensor with
the shape, dtype and device of its parameter. Buffers (BN running statistics) are never part of
a direction: they are not perturbed.

* every parameter gets a Gaussian draw from the explicit generator, in ``named_parameters``
  order, whether or not it is kept: the kept entries are therefore identical with and without
  ``include_1d``;
* a parameter of dim >= 2 (conv/linear weight) is filter-normalised: each output filter
  ``d[i]`` is rescaled to ``||theta[i]||`` (``d[i] * ||theta[i]|| / (||d[i]|| + 1e-10)``);
* a parameter of dim <= 1 (bias, norm affine, LM-ResNet's k) is zeroed by default; with
  ``include_1d`` it is set to theta itself, as the reference code does
  (tomgoldstein/loss-landscape ``normalize_direction``, ignore != "biasbn").
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import Tensor, nn

Direction = dict[str, Tensor]

_EPS = 1e-10  # the reference implementation's guard against an all-zero filter


def trained_parameters(model: nn.Module) -> Direction:
    """theta: detached views of the model's parameters, keyed by name (no copy)."""
    return {name: p.detach() for name, p in model.named_parameters()}


def random_direction(model: nn.Module, generator: torch.Generator) -> Direction:
    """A raw Gaussian direction: one standard-normal draw per parameter entry.

    Drawn on the CPU from ``generator`` (float32) and then moved to each parameter's device and
    dtype, so the same seed gives the same direction on any device.
    """
    out: Direction = {}
    for name, p in model.named_parameters():
        d = torch.randn(p.shape, generator=generator, dtype=torch.float32)
        out[name] = d.to(device=p.device, dtype=p.dtype)
    return out


def filter_normalize(
    direction: Mapping[str, Tensor], theta: Mapping[str, Tensor], *, include_1d: bool = False
) -> Direction:
    """Filter normalisation of ``direction`` against the trained weights ``theta``.

    Returns a new dict; the inputs are untouched. For dim >= 2 each slice along dim 0 (an
    output filter) gets the norm of the matching slice of theta. For dim <= 1 the entry is
    zero, or theta itself when ``include_1d``.
    """
    out: Direction = {}
    for name, d in direction.items():
        w = theta[name]
        if d.shape != w.shape:
            raise ValueError(
                f"direction {name!r} has shape {tuple(d.shape)}, theta {tuple(w.shape)}"
            )
        if d.dim() <= 1:
            out[name] = w.clone() if include_1d else torch.zeros_like(d)
            continue
        d_norm = d.flatten(1).norm(dim=1)
        w_norm = w.flatten(1).norm(dim=1)
        scale = (w_norm / (d_norm + _EPS)).view(-1, *([1] * (d.dim() - 1)))
        out[name] = d * scale
    return out


def make_directions(
    model: nn.Module, count: int, seed: int, *, include_1d: bool = False
) -> list[Direction]:
    """``count`` filter-normalised directions for ``model``, from a generator seeded ``seed``.

    The directions are drawn one after the other from one generator (d1 then d2), so
    ``make_directions(m, 2, s)[0] == make_directions(m, 1, s)[0]``.
    """
    generator = torch.Generator().manual_seed(int(seed))
    theta = trained_parameters(model)
    return [
        filter_normalize(random_direction(model, generator), theta, include_1d=include_1d)
        for _ in range(count)
    ]


def perturbed_parameters(
    theta: Mapping[str, Tensor], directions: list[Direction], coords: Tensor
) -> Direction:
    """Stacked parameters for P grid points: ``theta + sum_j coords[p, j] * d_j``.

    coords: (P, k) with k == len(directions). Returns name -> (P, *shape) tensors.
    """
    if coords.dim() != 2 or coords.shape[1] != len(directions):
        raise ValueError(f"coords must be (P, {len(directions)}), got {tuple(coords.shape)}")
    out: Direction = {}
    for name, w in theta.items():
        stacked = w.unsqueeze(0).expand(coords.shape[0], *w.shape)
        delta = sum(
            coords[:, j].to(w).view(-1, *([1] * w.dim())) * d[name]
            for j, d in enumerate(directions)
        )
        out[name] = stacked + delta
    return out
