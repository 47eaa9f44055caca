"""Which trained runs ``odenet landscape`` slices: one finished run per (depth, scheme) cell."""

from __future__ import annotations

import math
from dataclasses import dataclass

from odenet.errors import ConfigError
from odenet.studies.records import RunRecord


@dataclass(frozen=True)
class Selection:
    """The runs to slice, in (depth, scheme) order, and the axes of the figure grid."""

    runs: tuple[RunRecord, ...]
    depths: list[int]
    schemes: list[str]
    notes: tuple[str, ...] = ()


def _trained(done: list[RunRecord]) -> str:
    depths = ", ".join(str(d) for d in sorted({r.depth for r in done}))
    schemes = ", ".join(dict.fromkeys(r.solver for r in done))
    lrs = ", ".join(f"{lr:g}" for lr in sorted({r.lr for r in done}))
    return f"the study trained (finished runs): depths {depths}; schemes {schemes}; lrs {lrs}"


def _pick(cands: list[RunRecord], lr: float | None, seed: int | None) -> RunRecord | None:
    """The run at ``lr`` (default: best mean test_acc over seeds) and ``seed`` (default: lowest)."""
    if lr is not None:
        cands = [r for r in cands if math.isclose(r.lr, lr, rel_tol=1e-9)]
    else:
        by_lr: dict[float, list[float]] = {}
        for r in cands:
            by_lr.setdefault(r.lr, []).append(r.test_acc if r.test_acc is not None else -1.0)
        if by_lr:
            best = max(sorted(by_lr), key=lambda k: sum(by_lr[k]) / len(by_lr[k]))
            cands = [r for r in cands if r.lr == best]
    if seed is not None:
        cands = [r for r in cands if r.seed == seed]
    return min(cands, key=lambda r: r.seed) if cands else None


def select_runs(
    runs: list[RunRecord],
    *,
    depths: tuple[int, ...] | None = None,
    orders: tuple[int, ...] = (),
    solvers: tuple[str, ...] = (),
    lr: float | None = None,
    seed: int | None = None,
) -> Selection:
    """One finished ('done') run per (depth, scheme) cell.

    An explicitly asked depth, scheme, lr or seed with no finished run raises ConfigError
    listing what the study did train. A cell missing under a default (all depths or all
    schemes) is skipped with a note.
    """
    from odenet import solvers as registry

    done = [r for r in runs if r.status == "done"]
    if not done:
        states = ", ".join(sorted({r.status for r in runs})) or "no runs"
        raise ConfigError(f"the study has no finished runs yet ({states}); run `odenet study`")
    trained = _trained(done)
    want_depths = sorted(set(depths)) if depths else sorted({r.depth for r in done})
    asked = [registry.for_order(o) for o in orders] + [registry.get(s).name for s in solvers]
    schemes = list(dict.fromkeys(asked)) or list(dict.fromkeys(r.solver for r in done))
    for what, missing in (
        ("depth", [d for d in want_depths if all(r.depth != d for r in done)]),
        ("scheme", [s for s in schemes if all(r.solver != s for r in done)]),
        (
            "lr",
            []
            if lr is None or any(math.isclose(r.lr, lr, rel_tol=1e-9) for r in done)
            else [f"{lr:g}"],
        ),
        ("seed", [] if seed is None or any(r.seed == seed for r in done) else [seed]),
    ):
        if missing:
            shown = ", ".join(map(str, missing))
            raise ConfigError(f"no finished run with {what} {shown}; {trained}")
    picked, notes = [], []
    for d in want_depths:
        for s in schemes:
            run = _pick([r for r in done if r.depth == d and r.solver == s], lr, seed)
            if run is not None:
                picked.append(run)
                continue
            cell = (
                f"depth {d}, scheme {s}"
                + (f", lr {lr:g}" if lr is not None else "")
                + (f", seed {seed}" if seed is not None else "")
            )
            if depths and asked:
                raise ConfigError(f"no finished run at {cell}; {trained}")
            notes.append(f"skipped {cell}: no finished run")
    if not picked:
        raise ConfigError(f"no finished run matches the selection; {trained}")
    return Selection(tuple(picked), want_depths, schemes, tuple(notes))
