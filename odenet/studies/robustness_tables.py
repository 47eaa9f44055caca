"""The robustness table as text: for the terminal (``summary_table``, a rich Table), for
report.md (``table_header`` / ``table_cells``, odenet.studies.report) and the dry run's
budget table (``plan_table``). A study's swept fields are columns after depth and scheme."""

from __future__ import annotations

from odenet.studies.robustness import POINT, RobustnessRow
from odenet.tables import markdown_cell, rich_table


def summary_table(table: list[RobustnessRow], title: str = "LR robustness"):
    """A rich Table of the robustness rows (for the terminal); a column per swept field."""
    swept = _swept(table)
    header = table_header(swept)
    cells = [table_cells(row, swept) for row in table]
    return rich_table(header, cells, title=title, left=("depth", "scheme", *swept))


def plan_table(rows: list, runs: int):
    """A rich Table of a dry run: each model's budget (api.PlanRow) and the number of runs."""
    header = ("depth", "scheme", "runs", "params", "extra params", "FLOPs", "matched")
    cells = [
        [str(r.depth), r.solver, str(r.runs), f"{r.params:,}", str(r.extra_params),
         f"{r.flops / 1e6:,.2f}M", "yes" if r.matched else "NO"]
        for r in rows
    ]  # fmt: skip
    caption = "matched: same params and conv FLOPs as the first scheme at that depth"
    return rich_table(
        header, cells, title=f"study grid: {runs} runs", caption=caption, left=header[:2]
    )


def _swept(table: list[RobustnessRow]) -> tuple[str, ...]:
    return tuple(name for name, _ in table[0].axes) if table else ()


def table_header(swept: tuple[str, ...]) -> tuple[str, ...]:
    return (
        "depth", "scheme", *swept, "best acc %", "best lr", "max stable lr", "lr window (oct)",
        "diverged", "failed", "epochs to 90%",
    )  # fmt: skip


def table_cells(r: RobustnessRow, swept: tuple[str, ...]) -> list[str]:
    """One robustness row as text: accuracy 'mean ± std (n=k)', or 'mean (n=1)' for one
    seed (no spread to show); 'n/a' for a metric the runs' length cannot support."""
    if r.best_acc is None:
        acc = "-"
    elif r.best_acc_std is None:
        acc = f"{r.best_acc / POINT:.2f} (n={r.n})"
    else:
        acc = f"{r.best_acc / POINT:.2f} ± {r.best_acc_std / POINT:.2f} (n={r.n})"
    to_90 = "n/a" if "epochs_to_90" in r.unsupported else _num(r.epochs_to_90, ".1f")
    values = dict(r.axes)
    return [
        str(r.depth),
        r.solver,
        *(markdown_cell(values.get(name)) for name in swept),
        acc,
        _num(r.best_lr),
        _num(r.max_stable_lr),
        _num(r.window_octaves, ".2f"),
        str(r.diverged),
        str(r.failed),
        to_90,
    ]


def _num(x: float | None, fmt: str = "g") -> str:
    return "-" if x is None else format(x, fmt)
