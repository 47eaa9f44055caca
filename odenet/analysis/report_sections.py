"""The analyses' sections of a study's report.md (odenet.studies.sections).

Each analysis renders its own section whenever it runs, from everything it has stored (the
newest result of each run) and every figure in its folder, so that the report includes it
without knowing what was measured: ``<study>/landscape/section.md`` (the loss-landscape
figures) and ``<study>/analysis/section.md`` (a row per analysed run, the ODE tests' means per
configuration when they ran, and the figures).
"""

from __future__ import annotations

from pathlib import Path

from odenet.analysis.analyze_results import RunAnalysis, aggregate, ode_table_rows
from odenet.analysis.ode_results import ode_tables
from odenet.files import atomic_write_text
from odenet.studies.sections import figure_lines, section_path
from odenet.studies.store import Store
from odenet.tables import markdown_cell, markdown_table


def _write(study_dir: Path, folder: str, lines: list[str]) -> Path:
    path = section_path(study_dir, folder)
    atomic_write_text(path, "\n".join(lines).rstrip("\n") + "\n")
    return path


def _figures(study_dir: Path, folder: str) -> list[str]:
    pngs = sorted(section_path(study_dir, folder).parent.glob("*.png"))
    return figure_lines(study_dir, pngs)


def write_landscape_section(study_dir: Path) -> Path:
    """The loss-landscape figures (every PNG in ``<study>/landscape/``; none: no section)."""
    figures = _figures(study_dir, "landscape")
    return _write(study_dir, "landscape", ["## Loss landscape", "", *figures] if figures else [])


def write_analyze_section(store: Store) -> Path:
    """What ``odenet analyze`` measured: per analysed run (its newest result) the fields
    outside their scheme's stability region (flagged when built on unconverged eigenvalue
    estimates), the mean response and step ratio over its fields and the images measured on;
    the ODE tests (``ode_lines``); then the figures."""
    newest = {r["run_id"]: r["result"] for r in store.analyses("analyze")}  # oldest first
    cols = ["run", "fields outside region", "mean response", "mean step ratio", "images"]
    rows = []
    for run_id, a in sorted(newest.items()):
        out = a.get("outside_region")
        resp, ratios = a["responses"]["network_order"], a["step_ratios"]
        outside = "-" if out is None else f"{out}/{a.get('fields_with_region')}"
        if a.get("unconverged_fields"):  # flag counts built on unconverged eigenvalues
            outside += f" ({a['unconverged_fields']} unconverged)"
        mean_resp, mean_ratio = sum(resp) / len(resp), sum(ratios) / len(ratios)
        rows.append([run_id, outside, markdown_cell(mean_resp), markdown_cell(mean_ratio),
                     markdown_cell(a.get("data"))])  # fmt: skip
    lines = ["## What the instruments show (odenet analyze)", ""]
    lines += markdown_table(cols, rows) + [""] + ode_lines(store, newest)
    lines += _figures(store.dir, "analysis")
    return _write(store.dir, "analysis", lines)


def ode_lines(store: Store, newest: dict[str, dict]) -> list[str]:
    """The ODE tests' tables (the newest result of each run, beside its newest ``analyze``
    result in ``newest``): means ± std over the seeds of each configuration; [] when none
    ran."""
    ode = {r["run_id"]: r["result"] for r in store.analyses("ode_tests")}  # oldest first
    axes = {r.id: r.axes for r in store.runs()}
    models = [RunAnalysis(axes[i], {**newest[i], **v}) for i, v in sorted(ode.items())
              if i in axes and i in newest]  # fmt: skip
    rows = ode_table_rows(aggregate(models))
    if not rows:
        return []
    swept = list(dict.fromkeys(k for m in models for k, _ in m.axes.swept))
    images = "; ".join(sorted({m.values["test_data"] for m in models}))
    lines = [
        "### Is the trained network an ODE? (odenet analyze --ode-tests)",
        "",
        f"Eval mode, on {images}; mean ± std over the n seeds of each configuration.",
        "",
    ]
    for title, header, cells in ode_tables(rows, ["depth", "scheme", *swept, "lr"]):
        lines += [f"{title[0].upper()}{title[1:]}:", "", *markdown_table(header, cells), ""]
    return lines
