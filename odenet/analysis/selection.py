"""Which trained runs an analysis reads: one selection shared by ``landscape`` and ``analyze``.

Runs are told apart by their axes (``RunRecord.axes``, odenet.studies.identity): depth,
scheme, lr, every swept field, seed. A ``RunSelection`` names depths, schemes (RK orders and
registry names), learning rates, seeds and values of swept fields (``where``); empty fields
mean the defaults: every depth, scheme and swept value with finished runs; per cell (every
axis but lr and seed) the best lr by mean test accuracy over its seeds, and the smallest seed
trained at that lr. ``all_lrs`` / ``all_seeds`` (``--lr all`` / ``--seed all``) take every one.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from odenet import solvers as registry
from odenet.errors import ConfigError
from odenet.studies.identity import Axes
from odenet.studies.spec import parse_list
from odenet.studies.spec_values import coerce_axis, parse_assignment
from odenet.studies.store import RunRecord


@dataclass(frozen=True)
class RunSelection:
    """What to read from a study. Empty tuples mean "the default" (see the module docstring)."""

    depths: tuple[int, ...] = ()  # empty: every depth with finished runs
    orders: tuple[int, ...] = ()  # RK orders (1 euler, 2 heun, 3 rk3, 4 rk4) to include
    solvers: tuple[str, ...] = ()  # more registry names; orders and solvers empty: all schemes
    lrs: tuple[float, ...] = ()  # empty: per cell, the best lr by mean test accuracy
    all_lrs: bool = False  # every finished lr (overrides lrs)
    seeds: tuple[int, ...] = ()  # empty: the smallest seed trained at each chosen lr
    all_seeds: bool = False  # every finished seed (overrides seeds)
    where: tuple[tuple[str, tuple], ...] = ()  # (swept field, values to keep); empty: all

    def describe(self, swept: Sequence[str] = ()) -> dict:
        """JSON-able summary of the choices (what the output's "settings" record); ``swept``:
        the study's swept fields (they name the cells the best lr is chosen in)."""
        cell = ", ".join(("depth", "scheme", *swept))
        out = {
            "lr": "all" if self.all_lrs else (list(self.lrs) or f"best per ({cell})"),
            "seed": "all" if self.all_seeds else (list(self.seeds) or "smallest"),
        }
        if self.where:
            out["where"] = {name: list(values) for name, values in self.where}
        return out


@dataclass(frozen=True)
class Selection:
    """The runs chosen, in (depth, scheme, swept values, lr, seed) order, and the axes of the
    figures."""

    runs: tuple[RunRecord, ...]
    depths: list[int]
    schemes: list[str]
    notes: tuple[str, ...] = ()
    swept: tuple[str, ...] = ()  # the study's swept fields (the axes besides the familiar)


def parse_selection(
    depth: str | None = None,
    orders: str | None = None,
    solvers: str | None = None,
    lr: str | float | None = None,
    seed: str | int | None = None,
    where: Sequence[str] = (),
) -> RunSelection:
    """A RunSelection from command-line strings ("20,26", "1,2,4", "0.1,0.4" or "all";
    ``where``: "FIELD=V1,V2" strings, each value typed by the TrainConfig field)."""

    def _all(text: object) -> bool:
        return text is not None and str(text).strip().lower() == "all"

    lrs = () if lr is None or _all(lr) else parse_list(str(lr), float, "lr")
    for value in lrs:
        if not (math.isfinite(value) and value > 0):
            raise ConfigError(f"--lr: {value!r} is not a positive learning rate (or 'all')")
    kept: dict[str, tuple] = {}
    for text in where:
        name, value = parse_assignment(text, "where")
        kept[name] = coerce_axis(name, parse_list(value, str, f"where {name}"), "--where")
    return RunSelection(
        depths=parse_list(depth, int, "depth") if depth else (),
        orders=parse_list(orders, int, "orders") if orders else (),
        solvers=parse_list(solvers, str, "solvers") if solvers else (),
        lrs=lrs,
        all_lrs=_all(lr),
        seeds=() if seed is None or _all(seed) else parse_list(str(seed), int, "seed"),
        all_seeds=_all(seed),
        where=tuple(kept.items()),
    )


def _trained(done: list[RunRecord]) -> str:
    depths = ", ".join(str(d) for d in sorted({r.depth for r in done}))
    schemes = ", ".join(dict.fromkeys(r.solver for r in done))
    lrs = ", ".join(f"{lr:g}" for lr in sorted({r.lr for r in done}))
    swept = [name for name, _ in done[0].axes.swept]
    values = {n: ",".join(map(str, dict.fromkeys(r.axes[n] for r in done))) for n in swept}
    more = "".join(f"; {n} {v}" for n, v in values.items())
    return f"the study trained (finished runs): depths {depths}; schemes {schemes}; lrs {lrs}{more}"


def _nothing_finished(runs: list[RunRecord]) -> str:
    """Why a study has no trained model to measure, and what can help (for a study whose runs
    all ended diverged or failed, running the study again cannot)."""
    counts = Counter(r.status for r in runs)
    states = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "no runs"
    if counts["pending"] or counts["running"]:
        fix = "run the study's `odenet study` command (again) to train them"
    elif counts["failed"]:
        fix = (
            "see `odenet report` for the errors; fix the cause and run the study's command "
            "again to retry the failed runs"
        )
    else:
        fix = (
            "a diverged run leaves no trained model to measure; a study with smaller learning "
            "rates (--lrs) trains some"
        )
    return f"the study has no finished runs ({states}): {fix}"


def _has_lr(runs: list[RunRecord], lr: float) -> bool:
    return any(math.isclose(r.lr, lr, rel_tol=1e-9) for r in runs)


def _pick(cands: list[RunRecord], sel: RunSelection) -> list[RunRecord]:
    """The runs of one cell that the selection asks for, in (lr, seed) order."""
    if sel.all_lrs:
        pass
    elif sel.lrs:
        cands = [r for r in cands if any(math.isclose(r.lr, lr, rel_tol=1e-9) for lr in sel.lrs)]
    else:
        by_lr: dict[float, list[float]] = {}
        for r in cands:
            by_lr.setdefault(r.lr, []).append(r.test_acc if r.test_acc is not None else -1.0)
        if by_lr:
            best = max(sorted(by_lr), key=lambda k: sum(by_lr[k]) / len(by_lr[k]))
            cands = [r for r in cands if r.lr == best]
    if sel.all_seeds:
        pass
    elif sel.seeds:
        cands = [r for r in cands if r.seed in sel.seeds]
    else:  # the smallest seed of each configuration (in a cell: at each lr)
        first: dict[Axes, RunRecord] = {}
        for r in sorted(cands, key=lambda r: r.seed):
            first.setdefault(r.axes.configuration, r)
        cands = list(first.values())
    return sorted(cands, key=lambda r: (r.lr, r.seed))


def _check_where(done: list[RunRecord], sel: RunSelection, trained: str) -> None:
    """ConfigError for a ``sel.where`` field the study does not sweep or a value no finished
    run has."""
    swept = [name for name, _ in done[0].axes.swept]
    for name, values in sel.where:
        if name not in swept:
            axes = ", ".join(swept) or "none"
            raise ConfigError(
                f"--where {name}: not a swept axis of this study (its swept axes: {axes})"
            )
        missing = [v for v in values if all(r.axes[name] != v for r in done)]
        if missing:
            shown = ", ".join(map(str, missing))
            raise ConfigError(f"no finished run with {name} {shown}; {trained}")


def select_runs(runs: list[RunRecord], selection: RunSelection = RunSelection()) -> Selection:
    """The finished ('done') runs the selection names, cell by cell (``RunRecord.axes``: per
    depth and scheme, each combination of swept values in grid order).

    An explicitly asked depth, scheme, lr, seed or swept value with no finished run raises
    ConfigError listing what the study did train. A (depth, scheme) missing under a default
    (all depths or all schemes) is skipped with a note, and so is a cell without a finished
    run that the selection asks for when others of its (depth, scheme) have one.
    """

    sel = selection
    done = [r for r in runs if r.status == "done"]
    if not done:
        raise ConfigError(_nothing_finished(runs))
    trained = _trained(done)
    _check_where(done, sel, trained)
    want_depths = sorted(set(sel.depths)) if sel.depths else sorted({r.depth for r in done})
    asked = [registry.for_order(o) for o in sel.orders]
    asked += [registry.get(s).name for s in sel.solvers]
    schemes = list(dict.fromkeys(asked)) or list(dict.fromkeys(r.solver for r in done))
    lrs = [] if sel.all_lrs else [f"{lr:g}" for lr in sel.lrs if not _has_lr(done, lr)]
    seeds = [] if sel.all_seeds else [s for s in sel.seeds if all(r.seed != s for r in done)]
    for what, missing in (
        ("depth", [d for d in want_depths if all(r.depth != d for r in done)]),
        ("scheme", [s for s in schemes if all(r.solver != s for r in done)]),
        ("lr", lrs),
        ("seed", seeds),
    ):
        if missing:
            shown = ", ".join(map(str, missing))
            raise ConfigError(f"no finished run with {what} {shown}; {trained}")
    runs = [r for r in runs if all(r.axes[name] in values for name, values in sel.where)]
    asked_for = "".join(f", {name}={','.join(map(str, vs))}" for name, vs in sel.where)
    if sel.lrs and not sel.all_lrs:
        asked_for += ", lr " + ",".join(f"{lr:g}" for lr in sel.lrs)
    if sel.seeds and not sel.all_seeds:
        asked_for += ", seed " + ",".join(map(str, sel.seeds))
    picked, notes = [], []
    for d in want_depths:
        for s in schemes:
            cells: dict[Axes, list[RunRecord]] = {}  # every cell of (d, s), in grid order
            for r in runs:
                if r.depth == d and r.solver == s:
                    cells.setdefault(r.axes.cell, [])
                    if r.status == "done":
                        cells[r.axes.cell].append(r)
            chosen = {cell: _pick(cands, sel) for cell, cands in cells.items()}
            if any(chosen.values()):
                for cell, cell_runs in chosen.items():
                    picked += cell_runs
                    if not cell_runs:
                        notes.append(f"skipped {cell.describe()}{asked_for}: no finished run")
                continue
            cell = f"depth {d}, scheme {s}{asked_for}"
            if sel.depths and asked:
                raise ConfigError(f"no finished run at {cell}; {trained}")
            notes.append(f"skipped {cell}: no finished run")
    if not picked:
        raise ConfigError(f"no finished run matches the selection; {trained}")
    swept = tuple(name for name, _ in done[0].axes.swept)
    return Selection(tuple(picked), want_depths, schemes, tuple(notes), swept)
