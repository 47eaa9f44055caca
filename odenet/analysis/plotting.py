"""Figure helpers of the analyses: pyplot-free ``Figure`` objects, saved atomically.

Figures are ``matplotlib.figure.Figure`` instances (no pyplot, no backend selection), so
importing or running an analysis never changes a notebook's backend. ``save`` writes
``stem.png`` (200 dpi) and ``stem.svg`` through the atomic writer (``odenet.files``).
"""

from __future__ import annotations

from pathlib import Path

from matplotlib.figure import Figure

from odenet.files import write_figure


def new_figure(**kwargs) -> Figure:
    return Figure(**kwargs)


def save(fig: Figure, stem: Path) -> list[Path]:
    """Write ``stem.png`` (200 dpi) and ``stem.svg`` (``odenet.files.write_figure``); return
    both paths."""
    return write_figure(fig, stem, dpi=200, bbox_inches="tight")
