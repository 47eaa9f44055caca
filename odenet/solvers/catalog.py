"""Plain-data description of the registry (for `odenet solvers` and notebooks)."""

from __future__ import annotations

from odenet.solvers.registry import aliases, available, get
from odenet.solvers.stability import extents


def solver_table() -> list[dict]:
    """One dict per registered solver: name, aliases, family, order, stages, description,
    real_extent and imag_extent (the stability region's reach along each axis; lm at k = 0;
    None where a scheme has no region: plain, continuous)."""
    alias_of: dict[str, list[str]] = {}
    for alias, name in aliases().items():
        alias_of.setdefault(name, []).append(alias)
    rows = []
    for name in available():
        s = get(name)
        ext = extents(name)
        rows.append(
            {
                "name": s.name,
                "aliases": sorted(alias_of.get(name, [])),
                "family": s.family,
                "order": s.order,
                "stages": s.stages,
                "description": s.description,
                "real_extent": ext[0] if ext else None,
                "imag_extent": ext[1] if ext else None,
            }
        )
    return rows
