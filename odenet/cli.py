"""The `odenet` command line. Thin: options -> a frozen config -> one library call.

Every command is a handful of lines: solvers, describe and train here; study, report,
landscape, analyze and reset in odenet.cli_study, registered here in that order.

Exit codes (``main``): 0 success (a study whose runs all finished or diverged: a divergence
is a result); 1 a study that ended with failed runs, a full disk ("no space left on device
(PATH)": a study stops at once), or another runtime error; 2 bad input
(usage, config, a damaged or unusable study database), decided before anything is written;
130 interrupted (Ctrl-C) and 143 terminated (SIGTERM: a cluster's or container's stop, also
as PID 1 of a PID namespace), each with one line saying how to resume.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import typer
from rich.console import Console

from odenet import __version__
from odenet.cli_output import console, print_json
from odenet.cli_settings import with_settings
from odenet.cli_study import (
    analyze_cmd,
    landscape_cmd,
    report_cmd,
    reset_cmd,
    study_cmd,
)
from odenet.errors import OdenetError, Terminated
from odenet.nets import ModelConfig, describe
from odenet.nets.budget import summary_table
from odenet.solvers.catalog import solver_table
from odenet.solvers.stability_plot import write_stability_figure
from odenet.studies.api import check_out_dir
from odenet.tables import rich_table
from odenet.training import train
from odenet.training.config import SETTINGS, TrainConfig, model_settings
from odenet.training.console import EpochProgress, print_result

INTERRUPTED = "interrupted; run the same command to resume"
TERMINATED = "terminated (SIGTERM); run the same command to resume"

app = typer.Typer(
    name="odenet",
    help="Residual networks as discretised ODEs: solvers, models, training and studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _show_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print the version."
    ),
) -> None:
    """Residual networks as discretised ODEs: solvers, models, training and studies."""


# ---- solvers -------------------------------------------------------------------------------
@app.command("solvers")
def solvers_cmd(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    stability: bool = typer.Option(
        False, "--stability", help="Draw every scheme's stability region in one figure."
    ),
    out: Path = typer.Option(
        Path("stability.png"), "--out", help="With --stability: the figure (PNG + SVG)."
    ),
) -> None:
    """List the registered schemes: name, family, order, stages, stability extents.

    Runge-Kutta methods of orders 1 to 8 (euler, heun, rk3, rk4, nystrom5, huta6, cv8, ...), multistep (lm, ab2, leapfrog), plain (no identity path, no ODE order: '-'), learned tableaux (learn-<tableau>) and continuous torchdiffeq schemes (ode-*). --stability draws every region in one figure.
    """  # noqa: E501  (one paragraph: the help text is re-wrapped, not the source)

    if stability:
        paths = write_stability_figure(out)
        if as_json:
            print_json({"figures": [str(p) for p in paths]})
        else:
            console.print("\n".join(f"wrote {p}" for p in paths))
        return
    rows = solver_table()
    if as_json:
        print_json(rows)
        return

    def _cells(r: dict) -> list[str]:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        order = str(r["order"]) if r["order"] else "-"
        extents = (r["real_extent"], r["imag_extent"])
        re, im = ("-", "-") if extents[0] is None else (f"{e:.3f}" for e in extents)
        return [name, r["family"], order, str(r["stages"]), re, im, r["description"]]

    header = ("name", "family", "order", "stages", "real", "imag", "description")
    left = ("name", "family", "description")
    console.print(rich_table(header, map(_cells, rows), title="odenet solvers", left=left))


# ---- describe (nets) -----------------------------------------------------------------------
@app.command("describe")
@with_settings(model_settings().values())
def describe_cmd(
    values: dict,
    image_size: int | None = typer.Option(
        None, "--image-size", help="Input height = width (default: 224 ImageNet family, else 32)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Layers, parameters, forward FLOPs and the steps of each stage of one network."""
    summary = describe(ModelConfig(**values), image_size=image_size)
    if as_json:
        print_json(summary.to_dict())
    else:
        console.print(summary_table(summary))


# ---- train (training) ----------------------------------------------------------------------
@app.command("train")
@with_settings(SETTINGS.values())
def train_cmd(
    values: dict,
    out: str | None = typer.Option(None, "--out", help="Checkpoint/resume directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
) -> None:
    """Train one network; a diverged run is a result (diverged: true), not an error."""
    config = TrainConfig().replace(**values)
    if out is not None:  # a file, or a directory that cannot be written: refused before training
        check_out_dir(out, holds="run")
    con = Console(stderr=True) if as_json else console
    result = train(
        config, out_dir=out, callbacks=EpochProgress(con, config.epochs, config.batch_size)
    )
    if as_json:
        print_json(result.to_dict())
    else:
        print_result(console, config, result)


# ---- study / report / landscape / analyze / reset (odenet.cli_study) -----------------------
# Registered here, after train, so that --help lists the commands in this order.
app.command("study")(study_cmd)
app.command("report")(report_cmd)
app.command("landscape")(landscape_cmd)
app.command("analyze")(analyze_cmd)
app.command("reset")(reset_cmd)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every outcome is an exit code, every error one line.

    Library errors (OdenetError) print ``error: <message>`` and exit with their code; a file
    system refusal (OSError) exits 1; usage errors exit 2; Ctrl-C prints INTERRUPTED and exits
    130, SIGTERM prints TERMINATED and exits 143 (the runner has given the unfinished runs
    back, so the same command resumes).
    """
    code: int | str | None = 0
    try:  # typer prints usage errors (exit 2) and turns Ctrl-C into a silent exit 130
        with _signal_handlers():
            app(args=argv, standalone_mode=True)
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:  # outside typer's own handling (e.g. while it builds the app)
        code = 130
    except Terminated:
        code = 143
    except OdenetError as err:
        typer.echo(f"error: {err}", err=True)
        code = err.exit_code
    except OSError as err:  # the file system said no (disk full, permissions): one line too
        where = f" {err.filename!r}" if err.filename else ""
        typer.echo(f"error: {err.strerror or err}{where}", err=True)
        code = 1
    if code in (130, 143):
        typer.echo(INTERRUPTED if code == 130 else TERMINATED, err=True)
    sys.exit(code)


@contextmanager
def _signal_handlers() -> Iterator[None]:
    """While a command runs (in the main thread): Ctrl-C raises KeyboardInterrupt and SIGTERM
    raises Terminated (a handler, so that a container's PID 1, which has no default action,
    stops too); a signal ignored by the parent stays ignored. The previous handlers are back
    afterwards (``main`` called in-process: a test, a notebook)."""
    if not _main_thread():
        yield
        return
    sigint = _install(signal.SIGINT, signal.default_int_handler)
    sigterm = _install(signal.SIGTERM, _terminate)
    try:
        yield
    finally:
        _restore(signal.SIGINT, sigint)
        _restore(signal.SIGTERM, sigterm)


def _install(signum: int, handler) -> object:
    """``handler`` for ``signum`` unless it is ignored; the handler there before."""
    before = signal.getsignal(signum)
    if before is not signal.SIG_IGN:
        signal.signal(signum, handler)
    return before


def _restore(signum: int, handler) -> None:
    if handler is not None:  # None: installed outside Python, cannot be put back
        signal.signal(signum, handler)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM: Terminated in the main thread (as Ctrl-C raises KeyboardInterrupt); later
    SIGTERMs are ignored while the study gives its runs back."""
    signal.signal(signal.SIGTERM, _ignore)
    raise Terminated


def _ignore(signum: int, frame: object) -> None:
    return None


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
