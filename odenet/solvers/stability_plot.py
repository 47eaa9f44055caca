"""One figure of every stability region (``odenet solvers --stability``).

Drawn on a ``matplotlib.figure.Figure`` (matplotlib is imported when a figure is made, never
at import; no pyplot, no backend), one panel per scheme: the region filled, its boundary
locus drawn over it, the axes through 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from odenet.errors import ConfigError
from odenet.files import write_figure
from odenet.solvers.registry import available, get
from odenet.solvers.stability import boundary_locus, extents, in_region


def region_schemes() -> list[str]:
    """Registered schemes that have a stability region (RK and two-step), registry order.

    learn-<tableau> schemes are left out: their region at initialisation is their tableau's
    (already drawn), and after training it is a run's, not the registry's."""
    return [
        name
        for name in available()
        if get(name).family != "learned-rk" and extents(name) is not None
    ]


def _window(locus: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1): the boundary's bounding box with a margin, at least 2 wide/high."""
    z = locus[np.isfinite(locus)]
    x0, x1 = float(z.real.min()), float(z.real.max())
    y = max(float(np.abs(z.imag).max()), 1.0)
    x0, x1 = min(x0, -1.0), max(x1, 0.5)
    pad = 0.15 * max(x1 - x0, 2 * y)
    return x0 - pad, x1 + pad, -y - pad, y + pad


def stability_figure(names: Sequence[str] | None = None, *, columns: int = 4, grid: int = 241):
    """A Figure with the stability region of each scheme in ``names`` (default: all)."""
    # the solvers floor imports only torch and numpy: matplotlib when a figure is drawn
    from matplotlib.figure import Figure  # noqa: PLC0415

    names = list(names) if names is not None else region_schemes()
    if not names:
        raise ConfigError("no scheme to draw: give at least one Runge-Kutta or multistep scheme")
    rows = -(-len(names) // columns)
    fig = Figure(figsize=(3.2 * columns, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False).ravel()
    for ax, name in zip(axes, names):
        locus = boundary_locus(name)
        x0, x1, y0, y1 = _window(locus)
        xs, ys = np.linspace(x0, x1, grid), np.linspace(y0, y1, grid)
        inside = in_region(name, xs[None, :] + 1j * ys[:, None])
        ax.imshow(
            inside, origin="lower", extent=(x0, x1, y0, y1), cmap="Blues", vmin=0, vmax=1.6,
            aspect="equal", interpolation="nearest",
        )  # fmt: skip
        ax.plot(locus.real, locus.imag, color="C3", lw=1.0)
        ax.axhline(0.0, color="0.4", lw=0.5)
        ax.axvline(0.0, color="0.4", lw=0.5)
        re, im = extents(name) or (0.0, 0.0)
        title = name + (" (k=0)" if name == "lm" else "")
        ax.set_title(f"{title}\nreal {re:.3f}, imag {im:.3f}", fontsize=9)
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.tick_params(labelsize=7)
    for ax in axes[len(names) :]:
        ax.set_axis_off()
    fig.suptitle("Regions of absolute stability |R(h lambda)| <= 1 (shaded), boundary locus (red)")
    return fig


def write_stability_figure(out: str | Path, names: Sequence[str] | None = None) -> list[Path]:
    """Draw the figure and save it as PNG and SVG through the atomic writer (``out``'s suffix
    is replaced; a directory gets stability.png/.svg inside it); the paths written."""
    path = Path(out)
    if path.is_dir():
        path = path / "stability.png"
    if path.suffix.lower() not in ("", ".png", ".svg"):
        raise ConfigError(f"--out {str(out)!r}: give a .png or .svg name (both are written)")
    if not path.parent.exists():
        raise ConfigError(f"--out {str(out)!r}: directory {str(path.parent)!r} does not exist")
    stem = path.with_suffix("") if path.suffix.lower() in (".png", ".svg") else path
    return write_figure(stability_figure(names), stem, dpi=120)
