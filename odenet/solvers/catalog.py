"""Plain-data description of the registry (for `odenet solvers` and notebooks)."""

from __future__ import annotations

from odenet.solvers.registry import aliases, available, get


def solver_table() -> list[dict]:
    """One dict per registered solver: name, aliases, family, order, stages, description."""
    alias_of: dict[str, list[str]] = {}
    for alias, name in aliases().items():
        alias_of.setdefault(name, []).append(alias)
    rows = []
    for name in available():
        s = get(name)
        rows.append(
            {
                "name": s.name,
                "aliases": sorted(alias_of.get(name, [])),
                "family": s.family,
                "order": s.order,
                "stages": s.stages,
                "description": s.description,
            }
        )
    return rows
