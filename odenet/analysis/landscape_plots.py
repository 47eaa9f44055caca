"""Figures of loss-surface slices (pyplot-free Figures; PNG at 200 dpi and SVG).

* ``slice1d_d{depth}``: loss (log scale) and accuracy along the direction, every model of that
  depth overlaid;
* ``slice2d``: a grid of contour panels, a row per model of one depth (its axes but depth) and
  a column per depth, on one shared, log-spaced colour scale with one colour bar;
* ``surface2d`` (optional): the same grid as 3D surfaces of log10(loss).

A model is labelled by its axes (odenet.studies.identity): the scheme with the study's swept
values ("rk4 downsample=field"), lr and seed. Only complete slices are drawn; each figure says
which images the loss is measured on. Functions take ``ModelLandscape`` objects and return the
written paths.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm

from odenet.analysis.landscape_results import ModelLandscape
from odenet.analysis.plotting import new_figure, save
from odenet.studies.figures import footnote
from odenet.studies.identity import Axes

LEVELS = 20  # contour levels, log-spaced between the smallest and largest loss shown


def _save(fig, stem: Path, models: Sequence[ModelLandscape]) -> list[Path]:
    images = "; ".join(sorted({m.data for m in models}))
    footnote(fig, f"loss and accuracy on {images}; one training seed per curve")
    return save(fig, stem)


def _label(axes: Axes) -> str:
    """ "rk4 downsample=field (lr 0.1, seed 0)", and the depth first when ``axes`` has one; a
    line break after the variant when it holds swept values (a panel title stays narrow)."""
    head = axes.variant.label()
    if "depth" in axes:
        head += ("\n" if axes.swept else ", ") + f"depth {axes['depth']}"
    return f"{head} (lr {axes['lr']:g}, seed {axes['seed']})"


def plot_1d(models: Sequence[ModelLandscape], depth: int, stem: Path) -> list[Path]:
    """Loss and accuracy along d for every model of one depth, overlaid."""
    fig = new_figure(figsize=(10, 4), constrained_layout=True)
    ax_loss, ax_acc = fig.subplots(1, 2)
    for m in models:
        a = m.slice.grid.axis()
        label = _label(m.run.axes.without("depth"))
        line = ax_loss.plot(a, m.slice.loss, label=label)[0]
        ax_acc.plot(a, 100 * m.slice.acc, color=line.get_color(), label=label)
    ax_loss.set_yscale("log")
    ax_loss.set(xlabel="a", ylabel="train loss (subset)", title=f"L(θ + a d), depth {depth}")
    ax_acc.set(xlabel="a", ylabel="train accuracy (%)", title=f"accuracy, depth {depth}")
    for ax in (ax_loss, ax_acc):
        ax.axvline(0.0, color="0.7", lw=0.8, zorder=0)
        ax.grid(alpha=0.3)
    ax_loss.legend(fontsize=8)
    return _save(fig, stem, models)


def _shared_levels(models: Sequence[ModelLandscape]) -> tuple[np.ndarray, LogNorm]:
    losses = np.concatenate([m.slice.loss.ravel() for m in models])
    losses = losses[np.isfinite(losses) & (losses > 0)]
    lo, hi = (float(losses.min()), float(losses.max())) if losses.size else (1e-3, 1.0)
    if hi <= lo * (1 + 1e-9):
        hi = lo * 1.01
    return np.geomspace(lo, hi, LEVELS), LogNorm(vmin=lo, vmax=hi)


def _grid(models: Sequence[ModelLandscape], depths: Sequence[int]):
    """Cells keyed by (row, depth): a row is a model's every axis but depth, in order."""
    rows = list(dict.fromkeys(m.run.axes.without("depth") for m in models))
    cells = {(m.run.axes.without("depth"), m.run.depth): m for m in models}
    return cells, rows, len(depths)


def plot_2d(models: Sequence[ModelLandscape], depths: Sequence[int], stem: Path) -> list[Path]:
    """Contour panels: a row per model's axes but depth, a column per depth, one log colour
    scale."""
    cells, row_keys, cols = _grid(models, depths)
    rows = len(row_keys)
    levels, norm = _shared_levels(models)
    fig = new_figure(figsize=(3.2 * cols + 1.2, 3.0 * rows), constrained_layout=True)
    axes = fig.subplots(rows, cols, squeeze=False)
    mappable = None
    for i, s in enumerate(row_keys):
        for j, d in enumerate(depths):
            ax = axes[i][j]
            m = cells.get((s, d))
            if m is None:
                ax.text(0.5, 0.5, "not trained", ha="center", va="center", transform=ax.transAxes)
                ax.set_axis_off()
                continue
            a = m.slice.grid.axis()
            z = np.clip(m.slice.loss.T, levels[0], levels[-1])  # rows of z follow b
            mappable = ax.contourf(a, a, z, levels=levels, norm=norm, cmap="viridis")
            ax.contour(a, a, z, levels=levels, norm=norm, colors="k", linewidths=0.3)
            ax.plot([0], [0], "r+", ms=8)
            ax.set_aspect("equal")
            ax.set_title(_label(m.run.axes), fontsize=9)
            ax.set_xlabel("a (d1)")
            ax.set_ylabel("b (d2)")
    if mappable is not None:
        ticks = np.geomspace(levels[0], levels[-1], 6)
        fig.colorbar(
            mappable,
            ax=axes,
            label="train loss (subset, log scale)",
            shrink=0.9,
            ticks=ticks,
            format="%.3g",
        )
    return _save(fig, stem, models)


def plot_surface(models: Sequence[ModelLandscape], depths: Sequence[int], stem: Path) -> list[Path]:
    """3D surfaces of log10(loss) on a shared z range, same grid as ``plot_2d``."""
    cells, row_keys, cols = _grid(models, depths)
    rows = len(row_keys)
    levels, norm = _shared_levels(models)
    zlo, zhi = np.log10(levels[0]), np.log10(levels[-1])
    fig = new_figure(figsize=(3.6 * cols, 3.4 * rows))
    for i, s in enumerate(row_keys):
        for j, d in enumerate(depths):
            m = cells.get((s, d))
            ax = fig.add_subplot(rows, cols, i * cols + j + 1, projection="3d")
            if m is None:
                ax.set_axis_off()
                continue
            a = m.slice.grid.axis()
            aa, bb = np.meshgrid(a, a, indexing="ij")
            z = np.log10(np.clip(m.slice.loss, levels[0], levels[-1]))
            ax.plot_surface(aa, bb, z, cmap="viridis", vmin=zlo, vmax=zhi, linewidth=0)
            ax.set_zlim(zlo, zhi)
            ax.set(xlabel="a", ylabel="b", zlabel="log10 loss")
            ax.set_title(_label(m.run.axes), fontsize=9)
    return _save(fig, stem, models)


def draw_figures(
    models: Sequence[ModelLandscape],
    depths: Sequence[int],
    dims: int,
    out_dir: Path,
    *,
    surface: bool = False,
) -> list[Path]:
    """Every figure for these (complete) slices; returns the written paths."""
    done = [m for m in models if m.slice.complete]
    paths: list[Path] = []
    if dims == 1:
        for d in depths:
            at_depth = [m for m in done if m.run.depth == d]
            if at_depth:
                paths += plot_1d(at_depth, d, out_dir / f"slice1d_d{d}")
    elif done:
        paths += plot_2d(done, depths, out_dir / "slice2d")
        if surface:
            paths += plot_surface(done, depths, out_dir / "surface2d")
    return paths
