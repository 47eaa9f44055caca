"""Learning-rate robustness from stored results, per cell (odenet.studies.identity): every
axis of the study except lr and seed, i.e. (depth, scheme, swept values).

Definitions (a run's accuracy is its last completed epoch's test accuracy):

* an lr is *stable* when every one of its seeds finished without diverging (status done);
* best_acc: the highest mean accuracy over seeds among stable lrs; best_acc_std the std over
  seeds (ddof 1) at that lr, None for one seed (one run has no spread to report, and "± 0"
  would claim one); n the number of seeds behind best_acc; best_lr that lr;
* max_stable_lr: the largest stable lr;
* window_octaves: log2(hi / lo) of the contiguous range of stable lrs, around best_lr, whose
  mean accuracy is within one point of best_acc (0 when only best_lr qualifies);
* diverged: the number of diverged runs (all lrs and seeds);
* epochs_to_90: at best_lr, the first epoch whose test accuracy reaches 90% of best_acc,
  averaged over seeds (None if a seed never reaches it).

What a study's length cannot support is not reported: epochs_to_90 needs runs of at least
``MIN_EPOCHS_TO_90`` (5) epochs. With fewer, the first epoch to reach 90% of the final
accuracy is 1 or the last epoch almost by construction, so the number says nothing about
speed; the row then holds None and names the metric in ``unsupported``.

Pure functions over plain data: nothing here reads files or trains.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

from odenet.studies.identity import Axes

# One accuracy point in the units of test_acc (odenet.training reports fractions in [0, 1]).
POINT = 0.01
# Shortest runs (epochs) whose epochs-to-90% is reported (see the module docstring).
MIN_EPOCHS_TO_90 = 5


@dataclass(frozen=True)
class Outcome:
    """What robustness needs from one run."""

    depth: int
    solver: str
    lr: float
    seed: int
    status: str  # pending | running | done | diverged | failed
    test_acc: float | None  # last completed epoch (None if none)
    curve: tuple[float, ...] = ()  # test accuracy after epochs 1, 2, ...
    run_id: str = ""  # the store's id (for looking up per-epoch data)
    axes: tuple[tuple[str, object], ...] = ()  # (field, value) of the study's swept fields
    epochs: int = 0  # the run's configured length (0: unknown, taken as long enough)

    @property
    def identity(self) -> Axes:
        """The run's value on every axis (odenet.studies.identity)."""
        return Axes.of_run(self.depth, self.solver, self.lr, self.seed, self.axes)

    @property
    def label(self) -> str:
        """The scheme and the swept values: "rk4", "rk4 weight_decay=0.0005"."""
        return self.identity.label()


@dataclass(frozen=True)
class RobustnessRow:
    """One line of the summary table."""

    depth: int
    solver: str
    runs: int  # runs of this (depth, scheme), any status
    best_acc: float | None  # mean over seeds at best_lr
    best_acc_std: float | None  # std over seeds at best_lr
    best_lr: float | None
    max_stable_lr: float | None  # largest lr at which no seed diverged (all done)
    window_octaves: float | None  # width of the within-1-point lr window, log2 units
    diverged: int  # number of diverged runs
    failed: int  # number of failed runs (exceptions)
    epochs_to_90: float | None  # mean epochs to reach 90% of best_acc at best_lr
    n: int = 0  # seeds behind best_acc (0: no stable lr)
    unsupported: tuple[str, ...] = ()  # metrics the runs' length cannot support (None)
    axes: tuple[tuple[str, object], ...] = ()  # (field, value) of the study's swept fields

    @property
    def cell(self) -> Axes:
        """The row's axes: depth, scheme and the swept values (odenet.studies.identity)."""
        return Axes((("depth", self.depth), ("solver", self.solver), *self.axes))

    @property
    def label(self) -> str:
        """The scheme and the swept values: "rk4", "rk4 weight_decay=0.0005"."""
        return self.cell.label()

    def to_dict(self) -> dict:
        """The fields, each swept field as its own key (``"weight_decay": 0.0005``)."""
        out = asdict(self)
        del out["axes"]
        return out | {"unsupported": list(self.unsupported)} | dict(self.axes)


def robustness_table(outcomes: Iterable[Outcome], point: float = POINT) -> list[RobustnessRow]:
    """One row per cell (depth, scheme, swept values) in order of first appearance."""
    groups: dict[Axes, list[Outcome]] = {}
    for o in outcomes:
        groups.setdefault(o.identity.cell, []).append(o)
    return [_row(cell, runs, point) for cell, runs in groups.items()]


def lr_curve(runs: Sequence[Outcome]) -> dict[float, tuple[float, float | None] | None]:
    """lr -> (mean, std) of accuracy over seeds (std None for one seed), or None when the lr
    is not stable."""
    by_lr: dict[float, list[Outcome]] = {}
    for o in runs:
        by_lr.setdefault(o.lr, []).append(o)
    out: dict[float, tuple[float, float] | None] = {}
    for lr in sorted(by_lr):
        group = by_lr[lr]
        if all(o.status == "done" and o.test_acc is not None for o in group):
            out[lr] = _mean_std([o.test_acc for o in group])
        else:
            out[lr] = None
    return out


def _row(cell: Axes, runs: list[Outcome], point: float) -> RobustnessRow:
    depth, solver, axes = cell["depth"], cell["solver"], cell.swept
    curve = lr_curve(runs)
    stable = {lr: ms for lr, ms in curve.items() if ms is not None}
    diverged = sum(o.status == "diverged" for o in runs)
    failed = sum(o.status == "failed" for o in runs)
    # a metric the runs' length cannot support (module docstring) is not reported
    short = any(0 < o.epochs < MIN_EPOCHS_TO_90 for o in runs)
    unsupported = ("epochs_to_90",) if short else ()
    if not stable:
        return RobustnessRow(
            depth, solver, len(runs), None, None, None, None, None, diverged, failed, None,
            unsupported=unsupported, axes=axes,
        )  # fmt: skip
    best_lr = max(stable, key=lambda lr: (stable[lr][0], -lr))  # ties: the smaller lr
    best, best_std = stable[best_lr]
    return RobustnessRow(
        depth=depth,
        solver=solver,
        runs=len(runs),
        best_acc=best,
        best_acc_std=best_std,
        best_lr=best_lr,
        max_stable_lr=max(stable),
        window_octaves=_window(curve, best_lr, best - point),
        diverged=diverged,
        failed=failed,
        epochs_to_90=None if short else _epochs_to(runs, best_lr, 0.9 * best),
        n=sum(o.lr == best_lr for o in runs),
        unsupported=unsupported,
        axes=axes,
    )


def _window(curve: dict[float, tuple[float, float] | None], best_lr: float, floor: float) -> float:
    lrs = list(curve)  # sorted ascending
    i = lo = hi = lrs.index(best_lr)

    def ok(j: int) -> bool:
        return curve[lrs[j]] is not None and curve[lrs[j]][0] >= floor

    while lo - 1 >= 0 and ok(lo - 1):
        lo -= 1
    while hi + 1 < len(lrs) and ok(hi + 1):
        hi += 1
    assert ok(i)
    return math.log2(lrs[hi] / lrs[lo])


def _epochs_to(runs: Sequence[Outcome], lr: float, target: float) -> float | None:
    firsts = []
    for o in runs:
        if o.lr != lr:
            continue
        hit = next((e for e, acc in enumerate(o.curve, start=1) if acc >= target), None)
        if hit is None:
            return None
        firsts.append(hit)
    return statistics.fmean(firsts) if firsts else None


def _mean_std(values: list[float]) -> tuple[float, float | None]:
    """Mean and std (ddof 1); the std of a single value is None (it has none)."""
    mean = statistics.fmean(values)
    return mean, (statistics.stdev(values) if len(values) > 1 else None)
