"""Figure helpers of the analyses: pyplot-free ``Figure`` objects, saved atomically.

Figures are ``matplotlib.figure.Figure`` instances (no pyplot, no backend selection), so
importing or running an analysis never changes a notebook's backend. ``save`` writes
``stem.png`` (200 dpi) and ``stem.svg`` through unique temp files and atomic renames.
"""

from __future__ import annotations

import os
from pathlib import Path

from matplotlib.figure import Figure

from odenet.files import atomic_write


def publish(path: Path) -> None:
    """Give a file written through a private temp file (mode 0600) the usual mode 0644."""
    os.chmod(path, 0o644)


def new_figure(**kwargs) -> Figure:
    return Figure(**kwargs)


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` and ``stem.svg``; return both paths."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    paths = [stem.with_suffix(".png"), stem.with_suffix(".svg")]
    atomic_write(paths[0], lambda fh: fig.savefig(fh, format="png", dpi=200, bbox_inches="tight"))
    atomic_write(paths[1], lambda fh: fig.savefig(fh, format="svg", bbox_inches="tight"))
    for path in paths:
        publish(path)
    return paths


def footnote(fig: Figure, text: str) -> None:
    """A small caption under the figure (which images, how many seeds)."""
    fig.text(0.0, -0.02, text, fontsize=7, ha="left", va="top", wrap=True)
