"""Paper-ready matplotlib figures of a study (PNG at 200 dpi and SVG).

Accuracies are shown in percent. Each function takes plain data (robustness Outcomes,
RobustnessRows, per-epoch dicts), a path stem and a ``note`` drawn as a footnote (the
report's: the recipe, the images, the seeds per point: odenet.studies.recipe), writes
``stem.png`` and ``stem.svg`` (through the atomic writer, ``odenet.files.write_figure``) and
returns both paths. A line is a variant (odenet.studies.identity: the scheme and the swept
values) and is labelled by it; a mean is over the seeds of one configuration. Figures are
``matplotlib.figure.Figure`` objects rendered by their own Agg canvas: nothing here selects a
backend or imports pyplot, so a notebook keeps its own.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import blended_transform_factory

from odenet.files import write_figure
from odenet.studies.identity import Axes
from odenet.studies.robustness import POINT, Outcome, RobustnessRow, lr_curve

_MARKERS = "osD^v<>ph*"


def _style(variants: Sequence[Axes]) -> dict[Axes, dict]:
    colors = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    return {
        v: {"color": colors[i % len(colors)], "marker": _MARKERS[i % len(_MARKERS)]}
        for i, v in enumerate(variants)
    }


def _figure(**kwargs) -> Figure:
    """A Figure with its own Agg canvas (no pyplot, no global backend, nothing to close)."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def footnote(fig: Figure, text: str) -> None:
    """A small caption under the figure (the recipe, which images, how many seeds)."""
    fig.text(0.0, -0.02, text, fontsize=7, ha="left", va="top", wrap=True, gid="footnote")


def _save(fig: Figure, stem: Path, note: str = "") -> list[Path]:
    fig.tight_layout()
    if note:
        footnote(fig, note)
    return write_figure(fig, stem, dpi=200, bbox_inches="tight")


def _legend(ax, **kwargs) -> None:
    """A legend when something is labelled (a study with no finished run has nothing)."""
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _pct(acc: float) -> float:
    return acc / POINT


def accuracy_vs_lr(outcomes: Sequence[Outcome], stem: Path, note: str = "") -> list[Path]:
    """One panel per depth: test accuracy vs peak lr (log2 axis), one line per scheme, error
    bars over seeds; an lr where a run diverged (or failed) is an 'x' at the bottom of the axis."""
    depths = sorted({o.depth for o in outcomes})
    style = _style(list(dict.fromkeys(o.identity.variant for o in outcomes)))
    fig = _figure(figsize=(4.2 * len(depths), 3.6))
    axes = fig.subplots(1, len(depths), squeeze=False, sharey=True)
    for ax, depth in zip(axes[0], depths):
        bottom = blended_transform_factory(ax.transData, ax.transAxes)
        for variant in style:
            runs = [o for o in outcomes if o.depth == depth and o.identity.variant == variant]
            if not runs:
                continue
            label = variant.label()
            curve = lr_curve(runs)
            ok = [(lr, ms) for lr, ms in curve.items() if ms is not None]
            if ok:
                ax.errorbar(
                    [lr for lr, _ in ok],
                    [_pct(m) for _, (m, _s) in ok],
                    yerr=[_pct(s or 0.0) for _, (_m, s) in ok],  # one seed: no bar
                    capsize=3,
                    label=label,
                    **style[variant],
                )
            bad = sorted({o.lr for o in runs if o.status in ("diverged", "failed")})
            if bad:
                ax.scatter(
                    bad,
                    [0.03] * len(bad),
                    marker="x",
                    s=50,
                    color=style[variant]["color"],
                    transform=bottom,
                    clip_on=False,
                    gid=f"diverged-d{depth}-{label}",  # an id in the SVG (tests look for it)
                    label=None if ok else label,
                )
        ax.set_xscale("log", base=2)
        # Limits from the grid itself: the diverged markers do not set data limits, so a
        # panel where every run diverged would otherwise have no positive x to log-scale.
        lrs = sorted({o.lr for o in outcomes if o.depth == depth})
        ax.set_xlim(lrs[0] / 2**0.5, lrs[-1] * 2**0.5)
        ax.set_title(f"ResNet-{depth}")
        ax.set_xlabel("peak learning rate (log2 scale)")
        ax.grid(True, alpha=0.3)
    axes[0][0].set_ylabel("test accuracy (%)")
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    x_marker = Line2D([], [], color="gray", marker="x", linestyle="none")
    axes[0][-1].legend(handles + [x_marker], labels + ["diverged"], title="scheme", fontsize=8)
    return _save(fig, stem, note)


def accuracy_vs_depth(rows: Sequence[RobustnessRow], stem: Path, note: str = "") -> list[Path]:
    """Best test accuracy (mean +- std over seeds, at each scheme's best lr) vs depth."""
    style = _style(list(dict.fromkeys(r.cell.variant for r in rows)))
    fig = _figure(figsize=(4.8, 3.6))
    ax = fig.subplots()
    for variant in style:
        pts = sorted(
            (r.depth, r.best_acc, r.best_acc_std)
            for r in rows
            if r.cell.variant == variant and r.best_acc is not None
        )
        if pts:
            ax.errorbar(
                [p[0] for p in pts],
                [_pct(p[1]) for p in pts],
                yerr=[_pct(p[2] or 0.0) for p in pts],  # one seed: no bar
                capsize=3,
                label=variant.label(),
                **style[variant],
            )
    ax.set_xlabel("depth (layers, 6n + 2)")
    ax.set_ylabel("best test accuracy (%)")
    ax.set_xticks(sorted({r.depth for r in rows}))
    ax.grid(True, alpha=0.3)
    _legend(ax, title="scheme", fontsize=8)
    return _save(fig, stem, note)


def training_curves(
    rows: Sequence[RobustnessRow],
    outcomes: Sequence[Outcome],
    epochs: dict[str, list[dict]],
    stem: Path,
    note: str = "",
) -> list[Path]:
    """Per depth: training loss and test accuracy vs epoch for each scheme at its best lr
    (every seed drawn; thin lines)."""
    depths = sorted({r.depth for r in rows})
    style = _style(list(dict.fromkeys(r.cell.variant for r in rows)))
    last = max((m["epoch"] for hist in epochs.values() for m in hist), default=1)
    fig = _figure(figsize=(4.2 * len(depths), 6.4))
    axes = fig.subplots(2, len(depths), squeeze=False, sharex="col")
    for col, depth in enumerate(depths):
        loss_ax, acc_ax = axes[0][col], axes[1][col]
        for r in rows:
            if r.depth != depth or r.best_lr is None:
                continue
            label = f"{r.label} (lr {r.best_lr:g})"
            for o in outcomes:
                if o.identity.cell != r.cell or o.lr != r.best_lr:
                    continue
                hist = epochs.get(o.run_id, [])
                ep = [m["epoch"] for m in hist]
                kw = {
                    "color": style[r.cell.variant]["color"],
                    "marker": style[r.cell.variant]["marker"],
                    "markersize": 3,
                    "linewidth": 1.2,
                    "label": label,
                }
                loss_ax.plot(ep, [m["train_loss"] for m in hist], **kw)
                acc_ax.plot(ep, [_pct(m["test_acc"]) for m in hist], **kw)
                label = None
        loss_ax.set_title(f"ResNet-{depth}")
        loss_ax.set_ylabel("training loss (cross-entropy)")
        acc_ax.set_ylabel("test accuracy (%)")
        acc_ax.set_xlabel("epoch")
        for ax in (loss_ax, acc_ax):
            ax.grid(True, alpha=0.3)
            ax.xaxis.set_major_locator(MaxNLocator(nbins=8, integer=True, min_n_ticks=1))
            ax.set_xlim(0.5, max(last, 1) + 0.5)
        _legend(acc_ax, fontsize=8)
    return _save(fig, stem, note)


def loss_by_step(
    outcomes: Sequence[Outcome], steps: Sequence[dict], stem: Path, note: str = ""
) -> list[Path]:
    """Training loss against optimizer step: a row of panels per depth, a panel per lr, a line
    per scheme (and swept values): the mean over the seeds that logged each step, labelled
    with how many seeds stand behind it. Non-finite losses (a diverging step) are left out;
    the step axis is log-scaled when the steps span two decades or more."""
    by_run: dict[str, list[dict]] = {}
    for row in steps:
        by_run.setdefault(row["run_id"], []).append(row)
    runs = [o for o in outcomes if by_run.get(o.run_id)]
    depths = sorted({o.depth for o in runs})
    lrs = sorted({o.lr for o in runs})
    style = _style(list(dict.fromkeys(o.identity.variant for o in runs)))
    last = max((r["step"] for r in steps), default=1)
    fig = _figure(figsize=(4.2 * len(lrs), 3.4 * len(depths)))
    axes = fig.subplots(len(depths), len(lrs), squeeze=False, sharex=True, sharey="row")
    for i, depth in enumerate(depths):
        for j, lr in enumerate(lrs):
            ax = axes[i][j]
            for variant in style:
                group = [
                    o for o in runs
                    if (o.depth, o.lr) == (depth, lr) and o.identity.variant == variant
                ]  # fmt: skip
                if not group:
                    continue
                xs, ys = _seed_mean([by_run[o.run_id] for o in group])
                n, label = len(group), variant.label()
                ax.plot(
                    xs, ys, color=style[variant]["color"], linewidth=1.2,
                    label=f"{label} (n={n} seed{'s' if n > 1 else ''})",
                    gid=f"steps-d{depth}-lr{lr:g}-{label}",
                )  # fmt: skip
            if last >= 100:
                ax.set_xscale("log")
            ax.set_title(f"ResNet-{depth}, lr {lr:g}")
            ax.grid(True, alpha=0.3)
            _legend(ax, fontsize=7)
        axes[i][0].set_ylabel("training loss (batch mean)")
    for ax in axes[-1]:
        ax.set_xlabel("optimizer step" + (" (log scale)" if last >= 100 else ""))
    return _save(fig, stem, note)


def _seed_mean(curves: Sequence[Sequence[dict]]) -> tuple[list[int], list[float]]:
    """Steps and the mean finite loss over the curves that logged each step."""
    sums: dict[int, list[float]] = {}
    for curve in curves:
        for row in curve:
            loss = row["loss"]
            if loss is not None and math.isfinite(loss):
                sums.setdefault(row["step"], []).append(loss)
    xs = sorted(sums)
    return xs, [sum(sums[x]) / len(sums[x]) for x in xs]
