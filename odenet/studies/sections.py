"""The sections of report.md that the analyses write (odenet.analysis: landscape, analyze).

The report reads no analysis's results: each analysis renders its own section whenever it
runs, as Markdown in ``<study>/<folder>/section.md`` (its figures beside it, every link
relative to the study directory), and report.md includes the sections it finds, folder by
folder in ``SECTION_FOLDERS`` order. A folder without a section (written by an odenet before
sections) shows its figures under the folder's name.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from odenet.studies.store import StudyLayout

SECTION_FILE = "section.md"
# The analyses' folders (StudyLayout properties, owned by odenet.analysis), in report order.
SECTION_FOLDERS = ("landscape", "analysis")


def section_path(study_dir: str | Path, folder: str) -> Path:
    """Where the analysis that owns ``folder`` writes its section."""
    if folder not in SECTION_FOLDERS:
        raise ValueError(f"unknown section folder {folder!r}; expected one of {SECTION_FOLDERS}")
    return getattr(StudyLayout(Path(study_dir)), folder) / SECTION_FILE


def figure_lines(study_dir: str | Path, pngs: Iterable[Path]) -> list[str]:
    """Markdown image lines for figures inside the study directory."""
    lines: list[str] = []
    for p in pngs:
        lines += [f"![{p.stem}]({p.relative_to(study_dir).as_posix()})", ""]
    return lines


def read_sections(study_dir: str | Path) -> list[str]:
    """The Markdown lines of every section found, in ``SECTION_FOLDERS`` order."""
    study_dir = Path(study_dir)
    lines: list[str] = []
    for folder in SECTION_FOLDERS:
        path = section_path(study_dir, folder)
        if path.is_file():
            text = path.read_text().strip("\n")
            lines += text.splitlines() + [""] if text else []
        elif path.parent.is_dir() and (pngs := sorted(path.parent.glob("*.png"))):
            lines += [f"## {folder}", "", *figure_lines(study_dir, pngs)]
    return lines
