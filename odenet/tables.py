"""Tables: the one renderer (rows of cells as a rich Table for the terminal, or Markdown
lines) and ``FlatTable``, the flat form in which an analysis hands its values to the studies.

Every command that prints a table builds (header, rows) and calls ``rich_table``; report.md
uses ``markdown_table`` on the same rows. rich is imported when a table is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from rich.table import Table


def rich_table(
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    *,
    title: object = None,
    caption: str | None = None,
    left: Iterable[str] = (),
):
    """A ``rich.table.Table``: columns named ``header`` (right-aligned, except those in
    ``left``), one row per item of ``rows`` (cells: str or rich renderables)."""
    left = set(left)
    out = Table(title=title, caption=caption)
    for col in header:
        out.add_column(col, justify="left" if col in left else "right")
    for row in rows:
        out.add_row(*row)
    return out


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[str]]) -> list[str]:
    """GitHub-flavoured Markdown lines of the same table (cells already formatted)."""
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(row) + " |" for row in rows]
    return out


def markdown_cell(v: object) -> str:
    """A value as one Markdown table cell: None "-", floats to 4 significant digits, "|" and
    line breaks escaped."""
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v).replace("|", "\\|").replace("\n", " ")


@dataclass(frozen=True)
class FlatTable:
    """A result in flat, self-describing form: named columns and rows of JSON scalars.

    ``index`` names the columns that tell one run's rows apart (``("field",)`` for a row per
    field); empty, the table has one row per run. An analysis stores this form beside each
    result (``Store.record_analysis(..., table=)``) so that studies can show its values (the
    report's run columns, data frames) without knowing what the result holds.
    """

    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    index: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if any(len(row) != len(self.columns) for row in self.rows):
            raise ValueError(f"every row of a FlatTable needs {len(self.columns)} values")
        if not set(self.index) <= set(self.columns):
            raise ValueError(f"index {self.index} names columns not in {self.columns}")

    def records(self) -> list[dict[str, object]]:
        """One dict per row: column -> value."""
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]

    def to_json(self) -> dict:
        return {"columns": list(self.columns), "rows": [list(r) for r in self.rows],
                "index": list(self.index)}  # fmt: skip

    @classmethod
    def from_json(cls, data: dict) -> FlatTable:
        return cls(
            tuple(data["columns"]), tuple(tuple(r) for r in data["rows"]), tuple(data["index"])
        )
