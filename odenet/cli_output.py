"""What the `odenet` commands print on: one rich console, and strict JSON on stdout."""

from __future__ import annotations

import typer
from rich.console import Console

from odenet.strict_json import dumps

console = Console()


def print_json(obj: object) -> None:
    """Strict JSON on stdout: a non-finite number (NaN, Infinity) is printed as null."""
    typer.echo(dumps(obj, indent=2))
