"""The study report: the robustness table, figures and report.md, read back from the store.

Reads files only (the store and the analyses' sections); never trains. Writes into the study
directory: ``figures/{accuracy_vs_lr,accuracy_vs_depth,training_curves,loss_by_step}``
``.{png,svg}`` and ``report.md`` (the table, every figure, the sections the analyses wrote
(odenet.studies.sections) and a per-run table). Runs are grouped and labelled by their axes
(``RunRecord.axes``): a study's swept fields (besides depth, scheme, lr and seed) are columns
of every table and part of each line's label.

What an analysis measured reaches the report only in forms the analysis made for it: its
section, and the flat table stored beside each result (``Store.record_analysis(table=)``),
whose columns join the per-run table when the table has one row per run.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

from odenet.files import atomic_write_text
from odenet.strict_json import finite
from odenet.studies import figures, frames
from odenet.studies.recipe import recipe, seeds_per_point
from odenet.studies.robustness import (
    MIN_EPOCHS_TO_90,
    Outcome,
    RobustnessRow,
    robustness_table,
)
from odenet.studies.robustness_tables import table_cells, table_header
from odenet.studies.sections import read_sections
from odenet.studies.store import Owner, RunRecord, Store, StudyLayout
from odenet.studies.store.leases import wall_clock
from odenet.tables import FlatTable, markdown_cell, markdown_table

RUN_FIELDS = (
    "id",
    "depth",
    "solver",
    "lr",
    "seed",
    "status",
    "test_acc",
    "best_test_acc",
    "epochs_done",
    "diverged_epoch",
    "train_loss",
    "params",
    "extra_params",
    "seconds",
    "device",
    "executor",
    "error",
)
_AXES_END = RUN_FIELDS.index("seed") + 1  # the swept fields follow the familiar axes


@dataclass
class StudyData:
    """Everything the report needs, loaded from a study directory."""

    study_dir: Path
    records: list[RunRecord]
    epochs: dict[str, list[dict]]  # run id -> per-epoch metrics in epoch order
    table: list[RobustnessRow]
    swept: tuple[str, ...] = ()  # the study's swept TrainConfig fields besides the familiar
    steps: list[dict] = field(default_factory=list)  # {run_id, step, loss, lr} by run, step
    # analysis kind -> run id -> the flat table stored beside its newest result
    tables: dict[str, dict[str, FlatTable]] = field(default_factory=dict)
    sections: list[str] = field(default_factory=list)  # Markdown lines the analyses wrote
    warnings: list[str] = field(default_factory=list)  # e.g. a read-only directory
    holders: dict[str, str] = field(default_factory=dict)  # 'running' run id -> who holds it
    recipe: str = ""  # how the runs were trained, on which images (odenet.studies.recipe)

    @property
    def outcomes(self) -> list[Outcome]:
        return [_outcome(r, self.epochs.get(r.id, [])) for r in self.records]

    @property
    def analysis_columns(self) -> list[str]:
        """The columns of the analyses' one-row-per-run tables (e.g. landscape's sharpness),
        in order of first appearance."""
        cols = (t.columns for runs in self.tables.values() for t in runs.values() if not t.index)
        return list(dict.fromkeys(c for columns in cols for c in columns))

    def run_rows(self) -> list[dict]:
        """One plain dict per run: RUN_FIELDS with every swept field after seed, ``members``
        (how many runs trained together with it: 1 run by run, K in a fused group; None
        before it ran), then the columns of the analyses' one-row-per-run tables (None for a
        run without them), when there are any."""
        extra = self.analysis_columns
        rows = []
        for r in self.records:
            row = {k: getattr(r, k) for k in RUN_FIELDS[:_AXES_END]}  # id, depth .. seed
            row |= dict(r.axes.swept)
            row |= {k: getattr(r, k) for k in RUN_FIELDS[_AXES_END:]}
            row["members"] = r.provenance.get("execution", {}).get("members")
            row |= dict.fromkeys(extra)
            for runs in self.tables.values():
                table = runs.get(r.id)
                if table is not None and not table.index and table.rows:
                    row |= table.records()[0]
            rows.append(row)
        return rows

    def dataframe(self, kind: str):
        """The study as a pandas DataFrame (odenet.studies.frames): ``"runs"`` (``run_rows``:
        a row per run, a column per axis), ``"epochs"`` (a row per run and epoch),
        ``"steps"`` (the step log, as ``to_json``'s steps) or ``"analysis"`` (a row per run
        and field of each analysis that has one). Needs pandas (odenet[pandas])."""
        frames.check_kind(kind)
        if kind == "runs":
            return frames.to_frame(self.run_rows(), ())
        if kind == "epochs":
            rows = frames.epoch_rows(self.records, self.epochs)
            return frames.to_frame(rows, frames.epoch_columns(self.swept))
        if kind == "steps":
            return frames.to_frame(self.steps, frames.STEP_COLUMNS)
        rows = frames.analysis_rows(self.records, self.tables)
        return frames.to_frame(rows, frames.analysis_columns(self.swept, self.tables))

    def to_json(self) -> dict:
        """``{"table": [...], "runs": [...], "steps": [{run_id, step, loss, lr}, ...]}``; a
        non-finite number (a diverging step's loss, a diverged run's) is null, so the output
        is strict JSON."""
        return finite(
            {
                "table": [row.to_dict() for row in self.table],
                "runs": self.run_rows(),
                "steps": self.steps,
            }
        )

    @property
    def failed(self) -> list[str]:
        """Ids of the runs that failed (an exception, not a divergence)."""
        return [r.id for r in self.records if r.status == "failed"]


def load_study_data(study_dir: str | Path) -> StudyData:
    """Read a study's runs, epochs, robustness table, the analyses' flat tables and sections."""
    store = Store.open(study_dir)
    records = store.runs()
    epochs: dict[str, list[dict]] = {}
    for m in store.epochs():
        epochs.setdefault(m["run_id"], []).append(m)
    outcomes = [_outcome(r, epochs.get(r.id, [])) for r in records]
    tables: dict[str, dict[str, FlatTable]] = {}
    for row in store.analyses():  # oldest first: the newest result of a run wins
        if row["table"] is not None:
            tables.setdefault(row["kind"], {})[row["run_id"]] = row["table"]
    t, me = wall_clock(), Owner.me()
    holders = {i: h.describe(t, me) for i, h in store.holders().items()}
    spec = store.spec()
    return StudyData(
        store.dir, records, epochs, robustness_table(outcomes), spec.swept,
        store.steps(), tables, read_sections(store.dir), holders=holders,
        recipe=recipe(spec.base, spec.swept),
    )  # fmt: skip


def write_report(study_dir: str | Path) -> StudyData:
    """Write the figures (PNG + SVG) and report.md into ``study_dir``; return the data.

    A study directory that cannot be written (read-only) is still read: the data comes back
    with a warning saying that nothing was written.
    """
    data = load_study_data(study_dir)
    if not os.access(data.study_dir, os.W_OK):
        data.warnings.append(
            f"{str(data.study_dir)!r} is read-only: figures and report.md were not written "
            "(copy the study directory somewhere writable to draw them)"
        )
        return data
    layout = StudyLayout(data.study_dir)
    fig_dir = layout.figures
    outcomes = data.outcomes
    paths = []
    seeds = seeds_per_point(outcomes)
    mean = f"{data.recipe} Points: mean ± std over the seeds of a configuration ({seeds})."
    every = f"{data.recipe} Every seed drawn ({seeds})."
    if data.records:
        paths += figures.accuracy_vs_lr(outcomes, fig_dir / "accuracy_vs_lr", mean)
        paths += figures.accuracy_vs_depth(data.table, fig_dir / "accuracy_vs_depth", mean)
        paths += figures.training_curves(
            data.table, outcomes, data.epochs, fig_dir / "training_curves", every
        )
    if data.steps:
        paths += figures.loss_by_step(
            outcomes,
            data.steps,
            fig_dir / "loss_by_step",
            f"{data.recipe} Lines: mean over the seeds (n in the legend).",
        )
    pngs = [p for p in paths if p.suffix == ".png"]
    atomic_write_text(layout.report, _markdown(data, pngs))
    return data


def check_csv_path(study_dir: str | Path, path: str | Path) -> Path:
    """``path`` (absolute) if a CSV may be written there; ConfigError otherwise. Writes
    nothing. Refused: the study's own files, links to them, directories, missing or unwritable
    parents (``StudyLayout.check_export``)."""
    return StudyLayout(Path(study_dir)).check_export(path, "--csv")


def write_csv(data: StudyData, path: str | Path) -> Path:
    """Export the per-run rows as CSV (header = RUN_FIELDS [+ the analyses' run columns]);
    non-finite numbers are empty cells. The path is checked first (``check_csv_path``); the
    file is written whole through the atomic writer, so a link at ``path`` is replaced, never
    written through."""
    rows = finite(data.run_rows())
    path = check_csv_path(data.study_dir, path)
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=list(rows[0]) if rows else list(RUN_FIELDS))
    writer.writeheader()
    writer.writerows(rows)
    return atomic_write_text(path, text.getvalue())


def _markdown(data: StudyData, pngs: list[Path]) -> str:
    counts = {}
    for r in data.records:
        counts[r.status] = counts.get(r.status, 0) + 1
    lines = [
        f"# Study report: {data.study_dir.name}",
        "",
        f"{len(data.records)} runs: " + ", ".join(f"{n} {s}" for s, n in counts.items()),
        "",
        f"Recipe: {data.recipe}",
        "",
        *(f"- {i} is running: {who}" for i, who in data.holders.items()),
        *([""] if data.holders else []),
        "## Learning-rate robustness per (depth, scheme"
        + "".join(f", {name}" for name in data.swept)
        + ")",
        "",
        "Best accuracy: mean ± std over the n seeds at the best stable lr (an lr is stable "
        "when no seed diverged); one seed shows its accuracy and n=1, without a spread. The lr "
        "window is the contiguous range of stable lrs within one point of the best accuracy, "
        f"in octaves (log2). Epochs to 90% needs runs of at least {MIN_EPOCHS_TO_90} epochs "
        "(n/a otherwise: with fewer it is 1 or the last epoch almost by construction).",
        "",
    ]
    header = table_header(data.swept)
    lines += markdown_table(header, [table_cells(r, data.swept) for r in data.table])
    lines += ["", "## Figures", ""]
    for p in pngs:
        lines += [f"![{p.stem.replace('_', ' ')}]({p.relative_to(data.study_dir).as_posix()})", ""]
    lines += data.sections
    lines += ["## Runs", ""]
    rows = data.run_rows()
    cols = [
        "id",
        *data.swept,
        "status",
        "test_acc",
        "best_test_acc",
        "epochs_done",
        "diverged_epoch",
        "params",
        "seconds",
        "error",
        *data.analysis_columns,
    ]
    lines += markdown_table(cols, [[markdown_cell(row.get(c)) for c in cols] for row in rows])
    return "\n".join(lines) + "\n"


def _outcome(r: RunRecord, hist: list[dict]) -> Outcome:
    curve = tuple(m["test_acc"] for m in hist if m.get("test_acc") is not None)
    return Outcome(
        r.depth, r.solver, r.lr, r.seed, r.status, r.test_acc, curve, r.id, r.axes.swept,
        r.config.epochs,
    )  # fmt: skip
