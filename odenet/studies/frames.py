"""A study as pandas DataFrames (``StudyData.dataframe(kind)``): the rows of each kind, built
from what the report reads, so that ``report --csv``, ``report --json`` and the frames agree.

Kinds: ``"runs"`` (``StudyData.run_rows``: one row per run, a column per axis, the results,
``members`` and the analyses' one-row-per-run columns such as landscape's sharpness),
``"epochs"`` (one row per run and epoch: run_id, the run's axes, every stored metric; the
epoch's last learning rate is ``epoch_lr``, as ``lr`` is the axis),
``"steps"`` (the step log: run_id, step, loss, lr) and ``"analysis"`` (one row per run and
row of an analysis's flat table with an index, e.g. analyze's row per field: run_id, kind,
the run's axes, the table's columns). pandas is an optional extra, imported only in
``to_frame``.
"""

from __future__ import annotations

from collections.abc import Iterable

from odenet.errors import ConfigError
from odenet.extras import require
from odenet.studies.identity import FAMILIAR
from odenet.studies.records import RunRecord
from odenet.studies.store.schema import EPOCH_COLUMNS
from odenet.tables import FlatTable

KINDS = ("runs", "epochs", "steps", "analysis")
STEP_COLUMNS = ("run_id", "step", "loss", "lr")


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigError(f"unknown dataframe kind {kind!r}; expected one of {', '.join(KINDS)}")


def axis_names(swept: Iterable[str]) -> list[str]:
    """Every axis of a study in grid order: depth, solver, lr, the swept fields, seed."""
    return [*FAMILIAR[:3], *swept, FAMILIAR[3]]


def epoch_rows(records: list[RunRecord], epochs: dict[str, list[dict]]) -> list[dict]:
    """One dict per (run, epoch), in run then epoch order: run_id, axes, epoch, metrics (the
    epoch's last learning rate as ``epoch_lr``: ``lr`` is the run's axis, its peak lr)."""
    rows = []
    for r in records:
        for m in epochs.get(r.id, []):
            metrics = {_metric(k): v for k, v in m.items() if k != "run_id"}
            rows.append({"run_id": r.id, **dict(r.axes.items), **metrics})
    return rows


def epoch_columns(swept: Iterable[str]) -> list[str]:
    return ["run_id", *axis_names(swept), "epoch", *map(_metric, EPOCH_COLUMNS)]


def _metric(name: str) -> str:
    """An epoch metric's column: its name, but ``epoch_lr`` for lr (the axis keeps ``lr``)."""
    return "epoch_lr" if name == "lr" else name


def analysis_rows(records: list[RunRecord], tables: dict[str, dict[str, FlatTable]]) -> list[dict]:
    """One dict per row of every indexed flat table (kind by kind, runs in grid order):
    run_id, kind, the run's axes, then the table's columns."""
    rows = []
    for kind, runs in tables.items():
        for r in records:
            table = runs.get(r.id)
            if table is not None and table.index:
                head = {"run_id": r.id, "kind": kind, **dict(r.axes.items)}
                rows += [head | record for record in table.records()]
    return rows


def analysis_columns(swept: Iterable[str], tables: dict[str, dict[str, FlatTable]]) -> list[str]:
    cols = (t.columns for runs in tables.values() for t in runs.values() if t.index)
    return ["run_id", "kind", *axis_names(swept), *dict.fromkeys(c for cs in cols for c in cs)]


def to_frame(rows: list[dict], columns: Iterable[str]):
    """A pandas DataFrame of ``rows`` with ``columns`` first (then any other keys, in order
    of first appearance); ConfigError naming odenet[pandas] when pandas is missing."""
    pandas = require("pandas", "pandas", "dataframe()")
    names = list(dict.fromkeys([*columns, *(k for row in rows for k in row)]))
    return pandas.DataFrame.from_records(rows, columns=names)
