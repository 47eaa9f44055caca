"""Loss and accuracy of a model at many perturbed parameter points, batched over points.

``SliceEvaluator`` evaluates P points ``theta + sum_j c[p, j] d_j`` on a fixed list of data
batches. In "vmap" mode a chunk of ``points_per_batch`` points is one call of
``torch.func.vmap(functional_call)`` over stacked parameters (buffers shared, eval mode, so BN
uses its running statistics): each data batch is read once per chunk, and the convolutions of
the chunk run as one grouped convolution. "loop" mode evaluates the points one at a time (the
reference; also the fallback for a model that vmap cannot trace, e.g. an adaptive ODE solver
whose step control reads tensor values).

``compute_slice`` walks a 1D or 2D grid chunk by chunk, saving after every chunk (atomically)
so that an interrupted surface resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
import math
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.func import functional_call, vmap

from odenet.analysis.directions import Direction, perturbed_parameters
from odenet.errors import ConfigError
from odenet.files import atomic_write
from odenet.sizes import check_count

Batch = tuple[Tensor, Tensor]  # x (B, C, H, W) float, y (B,) int64, on the model's device
EVAL_MODES = ("auto", "vmap", "loop")
# Most points of one grid (500 x 500 in 2D): each is a pass over the data, and the slice file
# is saved after every chunk of points.
MAX_POINTS = 250_000


class SliceEvaluator:
    """Mean cross-entropy loss and accuracy over ``batches`` at perturbed parameter points.

    model: any nn.Module mapping x (B, ...) to logits (B, K); it is put in eval mode and never
    modified (parameters are substituted with ``functional_call``). mode: "vmap", "loop", or
    "auto" (vmap, falling back to the loop on the first failure; ``note`` then says why).
    """

    def __init__(
        self,
        model: nn.Module,
        batches: Sequence[Batch],
        *,
        points_per_batch: int = 8,
        mode: str = "auto",
    ) -> None:
        if mode not in EVAL_MODES:
            raise ConfigError(f"unknown evaluation mode {mode!r}; expected one of: {EVAL_MODES}")
        if points_per_batch < 1:
            raise ConfigError(f"points_per_batch must be >= 1, got {points_per_batch}")
        if not batches:
            raise ConfigError("no data to evaluate the slice on: the subset is empty")
        self.model = model.eval()
        self.batches = list(batches)
        self.points_per_batch = int(points_per_batch)
        self.mode = mode
        self.note: str | None = None
        self.count = sum(int(y.shape[0]) for _, y in self.batches)
        self._buffers = dict(model.named_buffers())

    def _logits_one(self, params: Direction, x: Tensor) -> Tensor:
        return functional_call(self.model, (params, self._buffers), (x,))

    def _chunk_vmap(self, stacked: Direction) -> tuple[Tensor, Tensor]:
        fn = vmap(self._logits_one, in_dims=(0, None), randomness="error")
        p = next(iter(stacked.values())).shape[0]
        loss = torch.zeros(p, dtype=torch.float64)
        correct = torch.zeros(p, dtype=torch.float64)
        for x, y in self.batches:
            logits = fn(stacked, x)  # (P, B, K)
            k = logits.shape[-1]
            ce = F.cross_entropy(logits.reshape(-1, k).float(), y.repeat(p), reduction="none")
            loss += ce.view(p, -1).sum(1).double().cpu()
            correct += (logits.argmax(-1) == y).sum(1).double().cpu()
        return loss, correct

    def _chunk_loop(self, stacked: Direction) -> tuple[Tensor, Tensor]:
        p = next(iter(stacked.values())).shape[0]
        loss = torch.zeros(p, dtype=torch.float64)
        correct = torch.zeros(p, dtype=torch.float64)
        for i in range(p):
            params = {name: v[i] for name, v in stacked.items()}
            for x, y in self.batches:
                logits = self._logits_one(params, x)
                loss[i] += F.cross_entropy(logits.float(), y, reduction="sum").double().cpu()
                correct[i] += (logits.argmax(-1) == y).sum().double().cpu()
        return loss, correct

    @torch.no_grad()
    def evaluate(
        self, theta: Direction, directions: list[Direction], coords: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Loss and accuracy at each of the P points ``coords`` (P, k): two float64 (P,) tensors.

        The loss is the mean cross-entropy over the whole subset; the accuracy is in [0, 1].
        Points are evaluated ``points_per_batch`` at a time.
        """
        losses, accs = [], []
        for start in range(0, coords.shape[0], self.points_per_batch):
            chunk = coords[start : start + self.points_per_batch]
            stacked = perturbed_parameters(theta, directions, chunk)
            loss, correct = self._run_chunk(stacked)
            losses.append(loss / self.count)
            accs.append(correct / self.count)
        return torch.cat(losses), torch.cat(accs)

    def _run_chunk(self, stacked: Direction) -> tuple[Tensor, Tensor]:
        if self.mode == "loop":
            return self._chunk_loop(stacked)
        if self.mode == "vmap":
            return self._chunk_vmap(stacked)
        try:
            out = self._chunk_vmap(stacked)
        except Exception as err:  # noqa: BLE001  (any tracing failure: fall back, say why)
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            self.note = (
                f"vmap failed for {type(self.model).__name__} ({first[:160]}); "
                "evaluated one point at a time"
            )
            self.mode = "loop"
            return self._chunk_loop(stacked)
        self.mode = "vmap"
        return out


@dataclass(frozen=True)
class GridSpec:
    """A 1D (points) or 2D (points x points) grid over [lo, hi] per axis."""

    dims: int  # 1: L(theta + a d); 2: L(theta + a d1 + b d2)
    lo: float = -1.0  # first coordinate of each axis
    hi: float = 1.0  # last coordinate of each axis
    points: int = 51  # points per axis

    def validate(self) -> None:
        """ConfigError for a grid that is not one: dims, fewer than 2 or more than MAX_POINTS
        points, a range that is not finite, empty, or whose points float32 (the precision of
        the weights they perturb) cannot hold apart."""
        if self.dims not in (1, 2):
            raise ConfigError(f"--dims must be 1 or 2, got {self.dims}")
        if self.points < 2:
            raise ConfigError(f"--points must be at least 2, got {self.points}")
        check_count(  # before any array of the grid exists
            self.points**self.dims,
            MAX_POINTS,
            f"the number of grid points (--points {self.points} in {self.dims}D)",
            f"use --points {math.isqrt(MAX_POINTS) if self.dims == 2 else MAX_POINTS} or fewer",
        )
        if not (math.isfinite(self.lo) and math.isfinite(self.hi)):
            raise ConfigError(f"--range A:B must be finite, got {self.lo}:{self.hi}")
        if not self.lo < self.hi:
            raise ConfigError(f"--range A:B needs A < B, got {self.lo}:{self.hi}")
        where = f"--range {self.lo:.8g}:{self.hi:.8g}"
        if max(-self.lo, self.hi) > float(np.finfo(np.float32).max):
            raise ConfigError(
                f"{where}: the grid's ends must fit float32, the weights' precision "
                "(|A|, |B| <= 3.4e38); use a range such as -1:1"
            )
        if not np.all(np.diff(self.axis().astype(np.float32)) > 0):
            raise ConfigError(
                f"{where}: float32, the weights' precision, cannot tell its {self.points} "
                "points apart; use a wider range or fewer --points"
            )

    def axis(self) -> np.ndarray:
        """The coordinates of one axis; a point within rounding of 0 is snapped to exactly 0
        (so that the trained weights are evaluated exactly, e.g. -1:1 at 99 points)."""
        a = np.linspace(self.lo, self.hi, self.points)
        a[np.abs(a) <= 1e-9 * (self.hi - self.lo)] = 0.0
        return a

    @property
    def shape(self) -> tuple[int, ...]:
        return (self.points,) * self.dims

    def coords(self) -> Tensor:
        """(points ** dims, dims) float64, row-major (the last axis varies fastest)."""
        axis = torch.as_tensor(self.axis(), dtype=torch.float64)
        if self.dims == 1:
            return axis[:, None]
        a, b = torch.meshgrid(axis, axis, indexing="ij")
        return torch.stack([a.reshape(-1), b.reshape(-1)], dim=1)


@dataclass
class SliceResult:
    """A computed (or partly computed) slice. loss/acc have ``grid.shape``; NaN where not done."""

    grid: GridSpec
    loss: np.ndarray
    acc: np.ndarray
    done: np.ndarray  # bool, grid.shape
    settings: dict
    path: Path | None = None

    @property
    def complete(self) -> bool:
        return bool(self.done.all())

    def at_origin(self) -> tuple[float, float]:
        """(loss, acc) at a = b = 0 when 0 lies on the grid, else at the point nearest it."""
        i = int(np.abs(self.grid.axis()).argmin())
        idx = (i,) * self.grid.dims
        return float(self.loss[idx]), float(self.acc[idx])


def slice_key(settings: dict) -> str:
    digest = hashlib.sha1(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-._" else "_" for c in settings["run_id"])
    return f"slice{settings['dims']}d-{safe}-{digest}"


def load_slice(path: Path, grid: GridSpec, settings: dict) -> SliceResult:
    """The stored slice at ``path`` when its settings match, else a fresh (empty) one."""
    empty = SliceResult(
        grid,
        np.full(grid.shape, np.nan),
        np.full(grid.shape, np.nan),
        np.zeros(grid.shape, dtype=bool),
        dict(settings),
        path,
    )
    if not path.exists():
        return empty
    try:
        with np.load(path) as z:
            if json.loads(str(z["settings"])) != json.loads(json.dumps(settings)):
                return empty
            loss, acc, done = z["loss"].copy(), z["acc"].copy(), z["done"].copy()
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return empty  # a damaged file: computed again (and replaced)
    if loss.shape != grid.shape or acc.shape != grid.shape or done.shape != grid.shape:
        return empty
    return SliceResult(grid, loss, acc, done, dict(settings), path)


def save_slice(result: SliceResult) -> None:
    """Write result to result.path (the atomic writer, ``odenet.files``)."""
    assert result.path is not None

    def write(fh) -> None:
        np.savez(
            fh,
            axis=result.grid.axis(),
            loss=result.loss,
            acc=result.acc,
            done=result.done,
            settings=np.array(json.dumps(result.settings)),
        )

    atomic_write(result.path, write)


def compute_slice(
    evaluator: SliceEvaluator,
    theta: Direction,
    directions: list[Direction],
    grid: GridSpec,
    *,
    path: Path | None = None,
    settings: dict | None = None,
    on_chunk: Callable[[int, int], None] | None = None,
) -> SliceResult:
    """Evaluate every not-yet-done point of ``grid`` along ``directions`` (len == grid.dims).

    With ``path`` the slice resumes from a stored file with the same ``settings`` and is saved
    after every chunk of ``evaluator.points_per_batch`` points. ``on_chunk(done, total)``
    reports progress.
    """
    grid.validate()
    if len(directions) != grid.dims:
        raise ValueError(f"{grid.dims}D slice: needs {grid.dims} directions, got {len(directions)}")
    settings = dict(settings or {})
    if path is not None:
        result = load_slice(path, grid, settings)
    else:
        result = SliceResult(
            grid,
            np.full(grid.shape, np.nan),
            np.full(grid.shape, np.nan),
            np.zeros(grid.shape, dtype=bool),
            settings,
        )
    coords = grid.coords()
    todo = np.flatnonzero(~result.done.reshape(-1))
    step = evaluator.points_per_batch
    for start in range(0, len(todo), step):
        idx = todo[start : start + step]
        loss, acc = evaluator.evaluate(theta, directions, coords[idx])
        result.loss.reshape(-1)[idx] = loss.numpy()
        result.acc.reshape(-1)[idx] = acc.numpy()
        result.done.reshape(-1)[idx] = True
        if path is not None:
            save_slice(result)
        if on_chunk is not None:
            on_chunk(int(result.done.sum()), result.done.size)
    return result
