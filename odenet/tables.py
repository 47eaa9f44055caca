"""The one table renderer: rows of cells as a rich Table (terminal) or Markdown lines.

Every command that prints a table builds (header, rows) and calls ``rich_table``; report.md
uses ``markdown_table`` on the same rows. rich is imported when a table is drawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence


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
    from rich.table import Table

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
