"""Figures of ``odenet analyze`` (pyplot-free Figures; PNG at 200 dpi and SVG).

Per depth d, in ``<study>/analysis/``:

* ``responses_d{d}``: He et al. Fig. 7, both panels: the std of each field's output in
  network order, and the same values sorted in descending order;
* ``step_ratios_d{d}``: ||k_i|| / ||s|| per field;
* ``grad_norms_d{d}``: ||dL/dx_i|| of the state and ||dL/d theta_i|| of the parameters per
  field, at the trained (solid) and initial (dashed) weights;
* ``eigenvalues_d{d}``: a panel per (variant, lr): each field's mean dominant eigenvalue over
  the scheme's stability region (when odenet.solvers.stability provides it), hollow where an
  estimate did not converge to the tolerance;
* ``outside_region``: fields outside the region against lr, per (depth, variant).

A variant is the scheme and the study's swept values (odenet.studies.identity: "rk4
downsample=field"); lines are means over the seeds of one configuration (a variant at one lr
and depth), never over runs that differ in another axis. Every legend and title says n, the
number of seeds behind it, and a footnote says which images were used.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from matplotlib import rcParams
from matplotlib.ticker import MaxNLocator

from odenet.analysis.analyze_results import ConfigurationMeans, RunAnalysis
from odenet.analysis.plotting import new_figure, save
from odenet.errors import ConfigError
from odenet.solvers import stability
from odenet.studies.figures import footnote
from odenet.studies.identity import Axes

_STYLES = ("-", "--", "-.", (0, (6, 2)))  # ":" is kept for the initial weights


Cells = dict[tuple[Axes, float], list[RunAnalysis]]  # (variant, lr) -> its seeds' runs


def _cells(models: list[RunAnalysis], depth: int) -> Cells:
    """The runs of one depth by configuration: (variant, lr), in the order they come."""
    out: Cells = {}
    for m in models:
        if m.axes["depth"] == depth:
            out.setdefault((m.axes.variant, m.axes["lr"]), []).append(m)
    return out


def _by_variant(cells: Cells) -> dict[Axes, list[RunAnalysis]]:
    """The runs of each variant, one per seed (the initial weights do not depend on lr)."""
    out: dict[Axes, dict[int, RunAnalysis]] = {}
    for (variant, _), ms in cells.items():
        for m in ms:
            out.setdefault(variant, {}).setdefault(m.axes["seed"], m)
    return {variant: list(by_seed.values()) for variant, by_seed in out.items()}


def _mean(rows: list[list[float | None]]) -> np.ndarray:
    """Column means over the rows, ignoring missing values (NaN where all are missing)."""
    arr = np.array([[np.nan if v is None else v for v in r] for r in rows], dtype=float)
    seen = np.isfinite(arr).sum(axis=0)
    total = np.where(np.isfinite(arr), arr, 0.0).sum(axis=0)
    return np.where(seen > 0, total / np.maximum(seen, 1), np.nan)


def _style(variants: list[Axes], lrs: list[float], variant: Axes, lr: float, colors) -> dict:
    return {
        "color": colors[variants.index(variant) % len(colors)],
        "linestyle": _STYLES[lrs.index(lr) % len(_STYLES)],
        "marker": "o",
        "ms": 3,
    }


def _note(fig, models: list[RunAnalysis]) -> None:
    images = "; ".join(sorted({m.values["data"] for m in models}))
    footnote(fig, f"eval mode, on {images}. Lines: mean over the n seeds of each configuration.")


def _per_field_figure(models, depth, stem: Path, panels) -> list[Path]:
    """One figure with a panel per (title, ylabel, [(value: run values -> list, initial)],
    log y, sorted): a line per (variant, lr), or per variant for values at the initial
    weights."""
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    cells = _cells(models, depth)
    variants = list(dict.fromkeys(v for v, _ in cells))
    lrs = sorted({lr for _, lr in cells})
    fig = new_figure(figsize=(5 * len(panels), 3.8), constrained_layout=True)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (title, ylabel, value, log, sort) in zip(axes, panels, strict=True):
        for get, initial in value:
            # trained weights: a line per (variant, lr); initial weights depend on the seed
            # and the variant only: a dotted grey-edged line per variant
            groups = _by_variant(cells) if initial else cells
            for key, ms in groups.items():
                y = _mean([get(m.values) for m in ms])
                if not np.isfinite(y).any():
                    continue
                if sort:
                    y = np.sort(y)[::-1]
                variant = key if initial else key[0]
                if initial:
                    style = {"color": colors[variants.index(variant) % len(colors)],
                             "linestyle": ":", "marker": "x", "ms": 4, "alpha": 0.7}  # fmt: skip
                    label = f"{variant.label()}, initial weights (n={len(ms)})"
                else:
                    style = _style(variants, lrs, variant, key[1], colors)
                    label = f"{variant.label()}, lr {key[1]:g} (n={len(ms)})"
                ax.plot(np.arange(1, len(y) + 1), y, label=label, **style)
        ax.set(
            title=f"{title}, depth {depth}",
            ylabel=ylabel,
            xlabel="field (sorted by value)" if sort else "field (network order)",
        )
        if log:
            ax.set_yscale("log")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    _note(fig, [m for ms in cells.values() for m in ms])
    return save(fig, stem)


def _region(ax, scheme: str, points: list[complex]) -> bool:
    """Shade ``scheme``'s stability region (grey) and draw its boundary over a window that
    holds the region's real extent and every point; False when the scheme has none."""
    try:
        locus = np.asarray(stability.boundary_locus(scheme))
    except ConfigError:  # plain and continuous schemes have no region
        return False
    finite = locus[np.isfinite(locus)]
    xs = [*finite.real, *(p.real for p in points), 0.5]
    ys = [*np.abs(finite.imag), *(abs(p.imag) for p in points), 0.5]
    lo, hi, top = 1.1 * min(xs), 1.1 * max(xs), 1.1 * max(ys)
    re, im = np.meshgrid(np.linspace(lo, hi, 240), np.linspace(-top, top, 240))
    inside = stability.in_region(scheme, re + 1j * im).astype(float)
    ax.contourf(re, im, inside, levels=[0.5, 1.5], colors=["0.85"], zorder=0)
    ax.plot(locus.real, locus.imag, color="0.4", lw=0.8, zorder=1, label=f"{scheme} region")
    return True


def eigenvalue_figure(models: list[RunAnalysis], depth: int, stem: Path, images: int) -> list[Path]:
    cells = _cells(models, depth)
    variants = list(dict.fromkeys(v for v, _ in cells))
    lrs = sorted({lr for _, lr in cells})
    fig = new_figure(figsize=(3.4 * len(lrs), 3.2 * len(variants)), constrained_layout=True)
    axes = fig.subplots(len(variants), len(lrs), squeeze=False)
    for i, variant in enumerate(variants):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            ms = [m.values for m in cells.get((variant, lr), [])]
            if not ms:
                ax.set_axis_off()
                continue
            points = [
                complex(e["re"], e["im"])
                for m in ms
                for e in m["eigenvalues"]
                if e["re"] is not None
            ]
            # shade the region of the scheme most fields' steps use (a depth-20 rk4 stage is
            # one rk3 step); each point is judged against its own step's scheme (red: outside)
            steps = [e["scheme"] for m in ms for e in m["eigenvalues"] if e["re"] is not None]
            drew = bool(steps) and _region(ax, Counter(steps).most_common(1)[0][0], points)
            for m in ms:
                z = [e for e in m["eigenvalues"] if e["re"] is not None]
                if z:
                    colors = ["tab:blue" if e["inside"] is not False else "tab:red" for e in z]
                    # hollow: some sample's estimate did not converge (cached before: filled)
                    faces = ["none" if e.get("unconverged") else c for e, c in zip(z, colors)]
                    ax.scatter(
                        [e["re"] for e in z],
                        [e["im"] for e in z],
                        facecolors=faces,
                        edgecolors=colors,
                        s=14,
                        marker="o" if m["seed"] % 2 == 0 else "^",
                        zorder=2,
                    )
            outside = [m["outside_region"] for m in ms if m["outside_region"] is not None]
            count = (
                f"outside: {np.mean(outside):.1f}/{ms[0]['fields_with_region']}"
                if outside
                else "no region"
            )
            ax.set_title(f"{variant.label()}, lr {lr:g} (n={len(ms)}): {count}", fontsize=8)
            ax.axhline(0, color="0.6", lw=0.5)
            ax.axvline(0, color="0.6", lw=0.5)
            ax.set_aspect("equal", adjustable="datalim")
            ax.set_xlabel("Re z", fontsize=8)
            ax.set_ylabel("Im z", fontsize=8)
            if drew:
                ax.legend(fontsize=6, loc="upper left")
    footnote(
        fig,
        "z: dominant eigenvalue of each field's Jacobian (mean over the first "
        f"{images} images, Im >= 0); "
        "red: outside the region of the field's step scheme; hollow: an estimate that did "
        "not converge to the tolerance. "
        + "; ".join(sorted({m.values["data"] for ms in cells.values() for m in ms})),
    )
    return save(fig, stem)


def outside_figure(table: list[ConfigurationMeans], stem: Path) -> list[Path]:
    """Fields outside the region against lr: a line per cell (depth and variant)."""
    fig = new_figure(figsize=(5.5, 3.8), constrained_layout=True)
    ax = fig.subplots()
    for cell in dict.fromkeys(r.axes.cell for r in table):
        rows = [r for r in table if r.axes.cell == cell and r.outside_region is not None]
        if not rows:
            continue
        ns = sorted({r.n for r in rows})
        ax.plot(
            [r.axes["lr"] for r in rows],
            [r.outside_region for r in rows],
            marker="o",
            label=f"{cell.variant.label()}, depth {cell['depth']} (n={','.join(map(str, ns))})",
        )
    ax.set_xscale("log")
    ax.set(
        xlabel="peak learning rate",
        ylabel="fields outside the stability region",
        title="field spectra outside the scheme's region (mean over seeds)",
    )
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    return save(fig, stem)


def draw_analysis(
    models: list[RunAnalysis], table: list[ConfigurationMeans], out_dir: Path, eigen_images: int
) -> list[Path]:
    """Every figure of an analysis (spectra on the first ``eigen_images`` images); returns the
    written paths."""

    def initial(key: str):
        return lambda m: (m["grad_norms"]["initial"] or {key: [None] * len(m["fields"])})[key]

    def trained(key: str):
        return lambda m: m["grad_norms"]["trained"][key]

    def responses(m):
        return m["responses"]["network_order"]

    paths: list[Path] = []
    for depth in sorted({m.axes["depth"] for m in models}):
        paths += _per_field_figure(models, depth, out_dir / f"responses_d{depth}", [
            ("responses", "std of the field's output", [(responses, False)], False, False),
            ("responses, sorted", "std of the field's output", [(responses, False)], False, True),
        ])  # fmt: skip
        paths += _per_field_figure(models, depth, out_dir / f"step_ratios_d{depth}", [
            ("step ratios", "||k_i|| / ||s||", [(lambda m: m["step_ratios"], False)], True,
             False),
        ])  # fmt: skip
        paths += _per_field_figure(models, depth, out_dir / f"grad_norms_d{depth}", [
            ("state gradient", "||dL/dx_i||", [(trained("states"), False),
                                                (initial("states"), True)], True, False),
            ("parameter gradient", "||dL/dθ_i||", [(trained("params"), False),
                                                    (initial("params"), True)], True, False),
        ])  # fmt: skip
        paths += eigenvalue_figure(models, depth, out_dir / f"eigenvalues_d{depth}", eigen_images)
    if any(r.outside_region is not None for r in table):
        paths += outside_figure(table, out_dir / "outside_region")
    return paths
