"""Figures of the ODE tests (``odenet analyze --ode-tests``; pyplot-free, PNG + SVG).

Per depth d, in ``<study>/analysis/``:

* ``swap_d{d}``: the integrator swap as a matrix: a row per configuration (the trained scheme,
  its swept values and lr, n seeds), a column per evaluated scheme, the cell the test accuracy
  % (mean over the seeds, colour and number), the trained scheme's cell outlined;
* ``refine_d{d}``: the depth refinement: the relative change of the logits
  ||y_m - y_{m/2}|| / ||y_m|| against m on log-log axes (a line per configuration, its mean
  over the seeds; each seed a small point) with reference slopes m^-1, m^-2, m^-4 (dotted grey,
  labelled by their order), and the test accuracy against m.

Means are over the seeds of one configuration only (odenet.studies.identity); every label says
n, and a footnote says which images were used.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib import rcParams
from matplotlib.patches import Rectangle

from odenet.analysis.analyze_results import ConfigurationMeans, RunAnalysis
from odenet.analysis.plotting import new_figure, save
from odenet.studies.figures import footnote

_SLOPES = (1, 2, 4)  # reference orders drawn on the refinement figure
_LINES = ("-", "--", "-.", ":")


def _label(row: ConfigurationMeans) -> str:
    return f"{row.axes.variant.label()}, lr {row.axes['lr']:g} (n={row.n})"


def _images(models: list[RunAnalysis]) -> str:
    return "; ".join(sorted({m.values["test_data"] for m in models if "test_data" in m.values}))


def swap_figure(rows: list[ConfigurationMeans], depth: int, images: str, stem: Path) -> list[Path]:
    """The trained-scheme x evaluated-scheme accuracy matrix of one depth."""
    schemes = list(dict.fromkeys(s.scheme for r in rows for s in r.ode.swap))
    acc = np.full((len(rows), len(schemes)), np.nan)
    for i, r in enumerate(rows):
        for s in r.ode.swap:
            if s.test_acc.mean is not None:
                acc[i, schemes.index(s.scheme)] = 100 * s.test_acc.mean
    fig = new_figure(
        figsize=(1.3 * len(schemes) + 3.5, 0.45 * len(rows) + 1.8), constrained_layout=True
    )
    ax = fig.subplots()
    image = ax.imshow(acc, cmap="viridis", vmin=0, vmax=100, aspect="auto")
    for i, r in enumerate(rows):
        for s in r.ode.swap:
            j = schemes.index(s.scheme)
            if np.isfinite(acc[i, j]):
                dark = acc[i, j] < 60
                ax.text(j, i, f"{acc[i, j]:.1f}", ha="center", va="center", fontsize=8,
                        color="white" if dark else "black")  # fmt: skip
            if s.trained:
                ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=2, ec="red"))
    steps = {s.scheme: s.steps for r in rows for s in r.ode.swap}
    ax.set_xticks(range(len(schemes)), [f"{n}\n({steps[n]})" for n in schemes], fontsize=8)
    ax.set_yticks(range(len(rows)), [_label(r) for r in rows], fontsize=8)
    ax.set(xlabel="evaluated with (its steps per stage)", ylabel="trained as")
    ax.set_title(f"integrator swap, depth {depth}: test accuracy %", fontsize=10)
    fig.colorbar(image, ax=ax, label="test accuracy % (mean over seeds)")
    footnote(fig, f"eval mode, on {images}. Outlined: the trained scheme.")
    return save(fig, stem)


def refine_figure(
    rows: list[ConfigurationMeans], models: list[RunAnalysis], depth: int, images: str, stem: Path
) -> list[Path]:
    """Change of the logits and test accuracy against the refinement factor m, one depth."""
    colors = rcParams["axes.prop_cycle"].by_key()["color"]
    variants = list(dict.fromkeys(r.axes.variant for r in rows))
    lrs = sorted({r.axes["lr"] for r in rows})
    fig = new_figure(figsize=(11, 4.2), constrained_layout=True)
    change_ax, acc_ax = fig.subplots(1, 2)
    firsts = []
    for r in rows:
        style = {"color": colors[variants.index(r.axes.variant) % len(colors)],
                 "linestyle": _LINES[lrs.index(r.axes["lr"]) % len(_LINES)]}  # fmt: skip
        points = [(f.factor, f.rel_change.mean) for f in r.ode.refine if f.rel_change.mean]
        if points:
            change_ax.plot(*zip(*points), marker="o", label=_label(r), **style)
            firsts.append(points[0])
        seeds = [m for m in models if m.axes.configuration == r.axes and "refine" in m.values]
        for m in seeds:
            own = [(f["factor"], f["rel_change"]) for f in m.values["refine"] if f["rel_change"]]
            if own:
                change_ax.scatter(*zip(*own), s=8, alpha=0.5, color=style["color"])
        acc = [
            (f.factor, 100 * f.test_acc.mean) for f in r.ode.refine if f.test_acc.mean is not None
        ]
        if acc:
            acc_ax.plot(*zip(*acc), marker="o", label=_label(r), **style)
    if firsts:  # reference slopes from the geometric mean of the first changes
        m0 = min(m for m, _ in firsts)
        c0 = float(np.exp(np.mean([np.log(c) for m, c in firsts if m == m0])))
        ms = np.array(sorted({f.factor for r in rows for f in r.ode.refine if f.factor >= m0}))
        for p in _SLOPES:
            ref = c0 * (ms / m0) ** -float(p)
            change_ax.plot(ms, ref, color="0.5", lw=0.8, linestyle=(0, (2, 2)))
            change_ax.annotate(f"order {p}", (ms[-1], ref[-1]), fontsize=7, color="0.4",
                               xytext=(3, 0), textcoords="offset points", va="center")  # fmt: skip
    change_ax.set_xscale("log", base=2)
    change_ax.set_yscale("log")
    change_ax.set(xlabel="refinement factor m", ylabel="||y_m - y_m/2|| / ||y_m|| (logits)",
                  title=f"depth refinement, depth {depth}: change of the logits")  # fmt: skip
    acc_ax.set_xscale("log", base=2)
    acc_ax.set(xlabel="refinement factor m", ylabel="test accuracy %",
               title=f"depth refinement, depth {depth}: test accuracy")  # fmt: skip
    factors = sorted({f.factor for r in rows for f in r.ode.refine})
    changed = [m for m in factors if m > factors[0]]  # the first factor has no change
    for ax, ticks in ((change_ax, changed), (acc_ax, factors)):
        ax.set_xticks(ticks, [str(m) for m in ticks])
        ax.minorticks_off()
        ax.grid(alpha=0.3)
    change_ax.legend(fontsize=6)
    footnote(
        fig,
        f"eval mode, on {images}. Each step taken m times at h/m through the same fields; "
        "lines: mean over the n seeds of a configuration, points: each seed.",
    )
    return save(fig, stem)


def draw_ode_tests(
    models: list[RunAnalysis], table: list[ConfigurationMeans], out_dir: Path
) -> list[Path]:
    """Both figures for every depth with ODE tests; returns the written paths."""
    paths: list[Path] = []
    images = _images(models)
    for depth in sorted({r.axes["depth"] for r in table if r.ode is not None}):
        rows = [r for r in table if r.ode is not None and r.axes["depth"] == depth]
        if any(r.ode.swap for r in rows):
            paths += swap_figure(rows, depth, images, out_dir / f"swap_d{depth}")
        if any(f.rel_change.mean for r in rows for f in r.ode.refine):
            paths += refine_figure(rows, models, depth, images, out_dir / f"refine_d{depth}")
    return paths
