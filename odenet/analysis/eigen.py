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
Cycles go on until every sample's Ritz pair (z, u) has a relative residual
||J u - z u|| / (|z| ||u||) <= ``EigenConfig.tol`` or ``restarts`` cycles have run; each
estimate carries its residual and whether it converged, so an unconverged one is never
reported as if it had (two close dominant eigenvalues, |l2|/|l1| = 0.97, need many cycles).
Eigenvalues come in conjugate pairs and the regions are symmetric about the real axis, so
each is reported with Im >= 0. Fields whose output shape differs from their input (the
downsampling ones) have no eigenvalues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import torch
from torch import Tensor, nn

from odenet.errors import ConfigError
from odenet.sizes import check_memory
from odenet.solvers import stability


@dataclass(frozen=True)
class EigenConfig:
    """Settings of the per-sample Arnoldi estimate."""

    krylov: int = 20  # Krylov dimension m per cycle (Jacobian-vector products per cycle)
    restarts: int = 20  # most cycles; it stops earlier once every sample's estimate converged
    # converged: relative residual ||J u - z u|| <= tol |z| ||u||. float32 Jacobian-vector
    # products put a floor of ~1e-6-1e-5 under the residual; 1e-4 stays clear of it
    tol: float = 1e-4
    images: int = 64  # samples of the data the eigenvalues are averaged over
    seed: int = 0  # seeds the start vectors

    def validate(self) -> None:
        for name in ("krylov", "restarts", "images"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0 < self.tol < 1:  # also rejects nan
            raise ConfigError(
                f"eigen tol (--eigen-tol) must be in (0, 1), a relative residual such as 1e-4; "
                f"got {self.tol}"
            )


@dataclass(frozen=True)
class EigenEstimate:
    """Per-sample dominant eigenvalue of a row-wise linear map, with its convergence.

    For each row: ``value`` (complex128 (N,)) is the Ritz value of largest modulus of the cycle
    whose Ritz pair (z, u) had the smallest relative residual ``residual`` = ||J u - z u|| /
    (|z| ||u||) (float64 (N,)); ``converged`` (bool (N,)) is residual <= tol. A residual r
    makes z an exact eigenvalue of a map within relative distance r of J; for a normal J
    (orthogonal eigenvectors) z is then within r |z| of an eigenvalue of J. ``cycles`` is the
    number of Arnoldi cycles run (the cap, or fewer when every row converged).
    """

    value: Tensor
    residual: Tensor
    converged: Tensor
    cycles: int


def krylov_bytes(krylov: int, samples: int, state: int) -> int:
    """Peak memory of one field's Arnoldi cycle: ``krylov`` basis vectors and their products
    for ``samples`` states of ``state`` values (float32), one of them combined as complex128
    at a time, and the Hessenberg matrices with their eigenvectors (float64, complex128)."""
    return (4 + 4 + 16) * krylov * samples * state + (8 + 8 + 16) * samples * krylov**2


def check_krylov_fits(config: EigenConfig, samples: int, state: int, what: str) -> None:
    """ConfigError naming the sizes and the fix when the field spectra of ``samples`` states
    of ``state`` values cannot fit in memory (``what``: whose spectra)."""
    check_memory(
        krylov_bytes(config.krylov, samples, state),
        f"the Arnoldi estimate of the field spectra of {what}",
        "use a smaller --krylov (or --eigen-images)",
        f" ({config.krylov:,} Krylov vectors for each of {samples} images' states of "
        f"{state:,} values)",
    )


def _dot(a: Tensor, b: Tensor) -> Tensor:
    return (a.double() * b.double()).sum(1)


def dominant_eigenvalues(
    matvec: Callable[[Tensor], Tensor],
    start: Tensor,
    *,
    krylov: int = 20,
    restarts: int = 20,
    tol: float = 1e-4,
) -> EigenEstimate:
    """Per-row dominant eigenvalue of a block-diagonal linear map, to a relative residual tol.

    matvec: (N, D) -> (N, D), linear and row-wise (row n of the output depends only on row n
    of the input). start: (N, D) nonzero start vectors. Runs cycles of ``krylov`` Arnoldi
    steps, each restarted from the last Ritz vector of largest modulus, until every row's
    Ritz pair has a relative residual <= ``tol`` or ``restarts`` cycles have run. The residual
    is exact for the products as computed: J u = W y with W the stored products of the basis.
    """
    n = start.shape[0]
    rows = torch.arange(n)
    v = start
    value = torch.full((n,), complex("nan"), dtype=torch.complex128, device=start.device)
    residual = torch.full((n,), float("inf"), dtype=torch.float64, device=start.device)
    cycles = 0
    while cycles < restarts and not bool((residual <= tol).all()):
        cycles += 1
        basis, products, hess = _arnoldi(matvec, v, krylov)
        ritz, vecs = torch.linalg.eig(hess.cpu())  # (N, m), (N, m, m)
        best = ritz.abs().argmax(dim=1)
        z, y = ritz[rows, best], vecs[rows, :, best]  # (N,), (N, m) complex
        # fix the phase (largest component real): for a real eigenpair u is then real
        big = y.abs().argmax(dim=1)
        y = y / (y[rows, big] / y[rows, big].abs().clamp_min(1e-300))[:, None]
        z, y = z.to(start.device), y.to(start.device)
        u = torch.einsum("mnd,nm->nd", basis.to(torch.complex128), y)
        ju = torch.einsum("mnd,nm->nd", products.to(torch.complex128), y)
        res = (ju - z[:, None] * u).abs().norm(dim=1)
        scale = z.abs() * u.abs().norm(dim=1)
        res = torch.where(res == 0, 0.0, res / scale)  # 0/0: an exact eigenpair
        better = res < residual
        value = torch.where(better, z, value)
        residual = torch.where(better, res, residual)
        # restart from Re(u): the eigenvector itself, or for a complex pair a vector that
        # spans it with its conjugate
        w = u.real
        norm = w.norm(dim=1, keepdim=True)
        v = torch.where(norm > 0, w / norm.clamp_min(1e-300), start.double()).to(start.dtype)
    return EigenEstimate(value, residual, residual <= tol, cycles)


def _arnoldi(
    matvec: Callable[[Tensor], Tensor], v0: Tensor, m: int
) -> tuple[Tensor, Tensor, Tensor]:
    """m Arnoldi steps from v0 (N, D): basis (m, N, D), the products J v_j (m, N, D) and the
    Hessenberg matrices (N, m, m)."""
    n = v0.shape[0]
    hess = torch.zeros(n, m + 1, m, dtype=torch.float64, device=v0.device)
    v = v0 / v0.double().norm(dim=1, keepdim=True).to(v0.dtype)
    basis, products = [v], []
    for j in range(m):
        products.append(matvec(basis[j]))
        w = products[j].double()
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
    return torch.stack(basis), torch.stack(products), hess[:, :m, :m]


def field_eigenvalues(
    field: nn.Module, x: Tensor, config: EigenConfig = EigenConfig()
) -> EigenEstimate | None:
    """Dominant eigenvalue of dF/dx at each sample of ``x`` (N, C, H, W), Im >= 0, with its
    residual and whether it converged to ``config.tol`` (``EigenEstimate``).

    None when F changes the shape (no square Jacobian). The field is evaluated as it is (call
    ``eval()`` first for BN running statistics).
    """
    config.validate()
    x = x.detach()
    with torch.no_grad():
        out = field(x)
    if out.shape != x.shape:
        return None
    shape = x.shape
    check_krylov_fits(config, shape[0], x[0].numel(), f"a field of state {tuple(shape[1:])}")

    def matvec(v: Tensor) -> Tensor:
        _, tangent = torch.func.jvp(field, (x,), (v.view(shape),))
        return tangent.reshape(shape[0], -1)

    gen = torch.Generator().manual_seed(int(config.seed))
    start = torch.randn(shape, generator=gen).to(x).reshape(shape[0], -1)
    with torch.no_grad():
        found = dominant_eigenvalues(
            matvec, start, krylov=config.krylov, restarts=config.restarts, tol=config.tol
        )
    return replace(found, value=torch.complex(found.value.real, found.value.imag.abs()))


def place_on_region(scheme: str, z: Tensor, **kwargs) -> Tensor | None:
    """Whether each z is inside ``scheme``'s absolute-stability region
    (``odenet.solvers.stability.in_region``); None when the scheme has none (plain,
    continuous)."""
    try:
        inside = stability.in_region(scheme, z.numpy(), **kwargs)
    except ConfigError:
        return None
    return torch.as_tensor(inside, dtype=torch.bool)
