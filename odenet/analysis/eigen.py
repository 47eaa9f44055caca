"""The dominant eigenvalue of each field's Jacobian at the data, and its place on the
stability region of the scheme that wires the field.

In a stacked step the field F_i plays the role of h*f (h absorbed), so an eigenvalue z of
its Jacobian dF_i/dx at the data is the z = h*lambda of the scheme's linear stability
analysis: the step is stable for that mode when z lies in the scheme's region |R(z)| <= 1.

In eval mode a field maps every sample on its own, so its Jacobian over a batch is block
diagonal: ``dominant_eigenvalues`` runs one Arnoldi iteration per sample, all samples at
once, each matrix-vector product one Jacobian-vector product (``torch.func.jvp``) of the
whole batch. Each cycle builds an m-dimensional Krylov space (modified Gram-Schmidt, twice),
takes the Ritz value of largest modulus of the Hessenberg matrix, and restarts from the real
part of its Ritz vector (which spans the eigenvector and, for a complex pair, its conjugate).
Eigenvalues come in conjugate pairs and the regions are symmetric about the real axis, so
each is reported with Im >= 0. Fields whose output shape differs from their input (the
downsampling ones) have no eigenvalues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.solvers import stability


@dataclass(frozen=True)
class EigenConfig:
    """Settings of the per-sample Arnoldi estimate."""

    krylov: int = 10  # Krylov dimension m per cycle (Jacobian-vector products per cycle)
    restarts: int = 4  # cycles; the estimate is the last cycle's dominant Ritz value
    images: int = 64  # samples of the data the eigenvalues are averaged over
    seed: int = 0  # seeds the start vectors

    def validate(self) -> None:
        for name in ("krylov", "restarts", "images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() * b.double()).sum(1)


def dominant_eigenvalues(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    krylov: int = 8,
    restarts: int = 3,
) -> tuple[Tensor, Tensor]:
    """Per-row dominant eigenvalue of a block-diagonal linear map.

    matvec: (N, D) -> (N, D), linear and row-wise (row n of the output depends only on row n
    of the input). start: (N, D) nonzero start vectors. Returns complex128 (N,): for each
    row, the Ritz value of largest modulus after ``restarts`` cycles of ``krylov`` steps, and
    float64 (N,): its relative change over the last cycle (a convergence check; nan after
    one cycle).
    """
    v = start
    value = torch.full((start.shape[0],), complex("nan"), dtype=torch.complex128)
    change = torch.full((start.shape[0],), float("nan"), dtype=torch.float64)
    for _ in range(restarts):
        basis, hess = _arnoldi(matvec, v, krylov)
        ritz, vecs = torch.linalg.eig(hess)  # (N, m), (N, m, m)
        best = ritz.abs().argmax(dim=1)
        rows = torch.arange(ritz.shape[0])
        change = (ritz[rows, best] - value).abs() / ritz[rows, best].abs().clamp_min(1e-300)
        value = ritz[rows, best]
        y = vecs[rows, :, best]  # (N, m) complex
        # restart from Re(V y) with the phase fixed (largest component real): for a real
        # eigenpair that is the Ritz vector itself, for a complex pair it spans both.
        big = y.abs().argmax(dim=1)
        phase = y[rows, big] / y[rows, big].abs().clamp_min(1e-300)
        y = y / phase[:, None]
        u = torch.einsum("mnd,nm->nd", basis.to(torch.complex128), y).real
        norm = u.norm(dim=1, keepdim=True)
        v = torch.where(norm > 0, u / norm.clamp_min(1e-300), start.double()).to(start.dtype)
    return value, change


def _arnoldi(matvec: Callable[[Tensor], Tensor], v0: Tensor, m: int) -> tuple[Tensor, Tensor]:
    """m Arnoldi steps from v0 (N, D): basis (m, N, D) and Hessenberg matrices (N, m, m)."""
    n = v0.shape[0]
    hess = torch.zeros(n, m + 1, m, dtype=torch.float64)
    v = v0 / v0.double().norm(dim=1, keepdim=True).to(v0.dtype)
    basis = [v]
    for j in range(m):
        w = matvec(basis[j]).double()
        for _ in range(2):  # Gram-Schmidt twice keeps the basis orthogonal in float32
            for i in range(j + 1):
                h = _dot(basis[i], w)
                hess[:, i, j] += h
                w = w - h[:, None] * basis[i].double()
        norm = w.norm(dim=1)
        hess[:, j + 1, j] = norm
        if j + 1 < m:
            # breakdown below the rounding of the products: the space is invariant (to
            # working precision); normalising the rounding noise would add spurious values
            tol = 100 * torch.finfo(v0.dtype).eps * hess[:, : j + 1, j].abs().amax(1)
            scale = torch.where(norm > tol, norm, 0.0)
            # an invariant subspace was found: continue with zero vectors (eigenvalues 0)
            nxt = torch.where(scale[:, None] > 0, w / scale.clamp_min(1e-300)[:, None], 0.0)
            basis.append(nxt.to(v0.dtype))
    return torch.stack(basis), hess[:, :m, :m]


def field_eigenvalues(
    field: nn.Module, x: Tensor, config: EigenConfig = EigenConfig()
) -> tuple[Tensor, Tensor] | None:
    """Dominant eigenvalue of dF/dx at each sample of ``x`` (N, C, H, W), Im >= 0.

    Returns (complex128 (N,), the relative change of each over the last restart), or None
    when F changes the shape (no square Jacobian). The field is evaluated as it is (call
    ``eval()`` first for BN running statistics).
    """
    config.validate()
    x = x.detach()
    with torch.no_grad():
        out = field(x)
    if out.shape != x.shape:
        return None
    shape = x.shape

    def matvec(v: Tensor) -> Tensor:
        _, tangent = torch.func.jvp(field, (x,), (v.view(shape),))
        return tangent.reshape(shape[0], -1)

    gen = torch.Generator().manual_seed(int(config.seed))
    start = torch.randn(shape, generator=gen).to(x).reshape(shape[0], -1)
    with torch.no_grad():
        z, change = dominant_eigenvalues(
            matvec, start, krylov=config.krylov, restarts=config.restarts
        )
    return torch.complex(z.real, z.imag.abs()), change


def place_on_region(scheme: str, z: Tensor, **kwargs) -> Tensor | None:
    """Whether each z is inside ``scheme``'s absolute-stability region
    (``odenet.solvers.stability.in_region``); None when the scheme has none (plain,
    continuous)."""
    try:
        inside = stability.in_region(scheme, z.numpy(), **kwargs)
    except ConfigError:
        return None
    return torch.as_tensor(inside, dtype=torch.bool)
