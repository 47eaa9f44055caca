"""Sharpness: the top Hessian eigenvalue (power iteration) and the Hessian trace (Hutchinson).

Both work on Hessian-vector products of a loss written as a sum of terms
(``loss_terms()`` yields scalar tensors whose sum is the loss, typically one per data batch, so
that only one batch's graph is alive at a time). Each product is one double backward
(``torch.autograd.grad`` with ``create_graph=True``, then the gradient of ``g . v``), as in
PyHessian (Yao et al. 2020). Randomness comes from an explicit CPU ``torch.Generator``.
Results are cached by ``odenet.analysis.landscape`` through ``Store.record_analysis``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from odenet.errors import ConfigError

Vector = list[Tensor]  # one tensor per parameter


@dataclass(frozen=True)
class SharpnessConfig:
    """Settings of both estimators."""

    power_iters: int = 20  # most power iterations (each one Hessian-vector product)
    power_tol: float = 1e-3  # stop when the eigenvalue changes by less than this, relative
    trace_probes: int = 10  # Rademacher probes of the Hutchinson trace estimate
    seed: int = 0  # seeds the start vector and the probes

    def validate(self) -> None:
        if self.power_iters < 1:
            raise ConfigError(f"power_iters must be >= 1, got {self.power_iters}")
        if not self.power_tol >= 0:
            raise ConfigError(f"power_tol must be >= 0, got {self.power_tol}")
        if self.trace_probes < 1:
            raise ConfigError(f"trace_probes must be >= 1, got {self.trace_probes}")


@dataclass(frozen=True)
class EigenEstimate:
    value: float  # the Rayleigh quotient v.Hv at the last iterate (largest |eigenvalue|)
    iterations: int  # Hessian-vector products used
    converged: bool  # the relative tolerance was met before power_iters


@dataclass(frozen=True)
class TraceEstimate:
    value: float  # mean of v.Hv over the probes
    stderr: float  # standard error of that mean (0 with one probe)
    probes: int


def _dot(a: Vector, b: Vector) -> Tensor:
    return sum((x * y).sum() for x, y in zip(a, b, strict=True))


def make_hvp(
    loss_terms: Callable[[], Iterable[Tensor]], params: Sequence[Tensor]
) -> Callable[[Vector], Vector]:
    """v -> H v for the Hessian of ``sum(loss_terms())`` with respect to ``params``."""
    params = list(params)

    def hvp(v: Vector) -> Vector:
        out = [torch.zeros_like(p) for p in params]
        for term in loss_terms():
            grads = torch.autograd.grad(term, params, create_graph=True, allow_unused=True)
            pairs = [(g, vi) for g, vi in zip(grads, v, strict=True) if g is not None]
            if not pairs:
                continue
            gv = sum((g * vi).sum() for g, vi in pairs)
            hv = torch.autograd.grad(gv, params, allow_unused=True)
            for acc, h in zip(out, hv, strict=True):
                if h is not None:
                    acc += h.detach()
        return out

    return hvp


def top_eigenvalue(
    hvp: Callable[[Vector], Vector],
    params: Sequence[Tensor],
    *,
    iters: int = 20,
    tol: float = 1e-3,
    generator: torch.Generator,
) -> EigenEstimate:
    """Power iteration for the eigenvalue of largest magnitude of the Hessian.

    Starts from a Gaussian vector drawn from ``generator`` (on the CPU, then moved); stops
    after ``iters`` products or when |lambda_k - lambda_{k-1}| <= tol |lambda_k|.
    """
    v = [torch.randn(p.shape, generator=generator).to(p) for p in params]
    norm = torch.sqrt(_dot(v, v))
    v = [x / norm for x in v]
    value = math.nan
    for k in range(1, iters + 1):
        hv = hvp(v)
        new = float(_dot(v, hv))
        hv_norm = float(torch.sqrt(_dot(hv, hv)))
        if hv_norm == 0.0:
            return EigenEstimate(0.0, k, True)
        v = [x / hv_norm for x in hv]
        if k > 1 and abs(new - value) <= tol * abs(new):
            return EigenEstimate(new, k, True)
        value = new
    return EigenEstimate(value, iters, False)


def hutchinson_trace(
    hvp: Callable[[Vector], Vector],
    params: Sequence[Tensor],
    *,
    probes: int = 10,
    generator: torch.Generator,
) -> TraceEstimate:
    """Hutchinson's estimate tr(H) ~ mean_i v_i.H v_i with Rademacher v_i from ``generator``."""
    samples = []
    for _ in range(probes):
        v = [(torch.randint(0, 2, p.shape, generator=generator) * 2 - 1).to(p) for p in params]
        samples.append(float(_dot(v, hvp(v))))
    t = torch.tensor(samples, dtype=torch.float64)
    stderr = float(t.std() / math.sqrt(probes)) if probes > 1 else 0.0
    return TraceEstimate(float(t.mean()), stderr, probes)


@dataclass(frozen=True)
class Sharpness:
    """Both estimates for one model on one data subset."""

    lambda_max: float
    trace: float
    trace_stderr: float
    power_iterations: int
    converged: bool
    config: SharpnessConfig

    def to_dict(self) -> dict:
        return {**asdict(self), "config": asdict(self.config)}


def model_sharpness(
    model: nn.Module, batches: Sequence[tuple[Tensor, Tensor]], config: SharpnessConfig
) -> Sharpness:
    """Sharpness of the mean cross-entropy of ``model`` (eval mode) over ``batches``.

    The Hessian is taken with respect to every trainable parameter, BN statistics fixed.
    """
    config.validate()
    model.eval()
    params = [p for p in model.parameters() if p.requires_grad]
    count = sum(int(y.shape[0]) for _, y in batches)

    def loss_terms() -> Iterable[Tensor]:
        for x, y in batches:
            yield F.cross_entropy(model(x).float(), y, reduction="sum") / count

    hvp = make_hvp(loss_terms, params)
    gen = torch.Generator().manual_seed(int(config.seed))
    eig = top_eigenvalue(hvp, params, iters=config.power_iters, tol=config.power_tol, generator=gen)
    tr = hutchinson_trace(hvp, params, probes=config.trace_probes, generator=gen)
    return Sharpness(eig.value, tr.value, tr.stderr, eig.iterations, eig.converged, config)
