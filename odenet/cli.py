"""The `odenet` command line. Thin: options -> a frozen config -> one library call.

Every command lives here as a handful of lines; errors raised by the library as OdenetError
become one line on stderr and the error's exit code (2 for bad input).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path  # noqa: F401  (used by the commands' option types)
from typing import Optional  # noqa: F401

import typer
from rich.console import Console

from odenet.errors import OdenetError

app = typer.Typer(
    name="odenet",
    help="Residual networks as discretised ODEs: solvers, models, training and studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()


def _show_version(value: bool) -> None:
    if value:
        from odenet import __version__

        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Residual networks as discretised ODEs: solvers, models, training and studies."""


def _print_json(obj: object) -> None:
    typer.echo(json.dumps(obj, indent=2))


# ---- solvers -------------------------------------------------------------------------------
@app.command("solvers")
def solvers_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
) -> None:
    """List the registered solvers: name, family, order, stages, description."""
    from odenet.solvers.catalog import solver_table

    rows = solver_table()
    if as_json:
        _print_json(rows)
        return
    from rich.table import Table

    table = Table(title="odenet solvers")
    for col in ("name", "family", "order", "stages", "description"):
        table.add_column(col, justify="right" if col in ("order", "stages") else "left")
    for r in rows:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        table.add_row(name, r["family"], str(r["order"]), str(r["stages"]), r["description"])
    console.print(table)


# ---- describe (nets) -----------------------------------------------------------------------

# ---- train (training) ----------------------------------------------------------------------

# ---- study / report (studies) --------------------------------------------------------------

# ---- landscape (studies.landscape) ---------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: library errors become one line and their exit code."""
    try:
        app(args=argv, standalone_mode=True)
    except OdenetError as err:
        typer.echo(f"error: {err}", err=True)
        sys.exit(err.exit_code)
