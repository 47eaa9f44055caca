"""The `odenet` command line. Thin: options -> a frozen config -> one library call.

Every command is a handful of lines: solvers, describe and train here; study, report,
landscape, analyze and reset in odenet.cli_study, registered here in that order.

Exit codes (``main``): 0 success (a study whose runs all finished or diverged: a divergence
is a result); 1 a study that ended with failed runs, or another runtime error; 2 bad input
(usage, config, a damaged or unusable study database), decided before anything is written;
130 interrupted (Ctrl-C), with one line saying how to resume.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path  # noqa: F401  (used by the commands' option types)
from typing import Optional  # noqa: F401

import typer
from rich.console import Console

from odenet.cli_output import console, print_json
from odenet.cli_study import (
    analyze_cmd,
    landscape_cmd,
    report_cmd,
    reset_cmd,
    study_cmd,
)
from odenet.errors import OdenetError
from odenet.training.config import TrainConfig

INTERRUPTED = "interrupted; run the same command to resume"

app = typer.Typer(
    name="odenet",
    help="Residual networks as discretised ODEs: solvers, models, training and studies.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


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
    from odenet.solvers.catalog import solver_table

    if stability:
        from odenet.solvers.stability_plot import write_stability_figure

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
    from odenet.tables import rich_table

    def _cells(r: dict) -> list[str]:
        name = r["name"] + (f" ({', '.join(r['aliases'])})" if r["aliases"] else "")
        order = str(r["order"]) if r["order"] else "-"
        extents = (r["real_extent"], r["imag_extent"])
        re, im = ("-", "-") if extents[0] is None else (f"{e:.3f}" for e in extents)
        return [name, r["family"], order, str(r["stages"]), re, im, r["description"]]

    header = ("name", "family", "order", "stages", "real", "imag", "description")
    left = ("name", "family", "description")
    console.print(rich_table(header, map(_cells, rows), title="odenet solvers", left=left))


_T = TrainConfig()  # option defaults come from the config (never re-typed here)


# ---- describe (nets) -----------------------------------------------------------------------
@app.command("describe")
def describe_cmd(
    depth: int = typer.Option(
        _T.depth, "--depth", help="cifar: 6n + 2 (20, 56, ...); single: 2N + 2."
    ),
    solver: str = typer.Option(
        _T.solver, "--solver", help="A registry name (see `odenet solvers`)."
    ),
    arch: str = typer.Option(_T.arch, "--arch", help="cifar | single | resnet18 ... resnet152."),
    downsample: str = typer.Option(
        _T.downsample, "--downsample", help="single arch: stem | field."
    ),
    block: str = typer.Option(_T.block, "--block", help="postact | preact."),
    shortcut: str = typer.Option(
        _T.shortcut, "--shortcut", help="A (zero-pad) | B (1x1 projection) | C (on every step)."
    ),
    norm: str | None = typer.Option(None, "--norm", help="bn | gn (default: bn; ODE field gn)."),
    width: int = typer.Option(_T.width, "--width", help="Channels of stage 1."),
    in_channels: int = typer.Option(3, "--in-channels", help="Image channels."),
    num_classes: int | None = typer.Option(
        None, "--num-classes", help="Number of classes (default: 1000 ImageNet family, else 10)."
    ),
    image_size: int | None = typer.Option(
        None, "--image-size", help="Input height = width (default: 224 ImageNet family, else 32)."
    ),
    ode_t1: float = typer.Option(1.0, "--ode-t1", help="Continuous mode: integrate over [0, T]."),
    ode_rtol: float = typer.Option(1e-3, "--ode-rtol", help="Continuous mode: rtol."),
    ode_atol: float = typer.Option(1e-4, "--ode-atol", help="Continuous mode: atol."),
    ode_step_size: float | None = typer.Option(None, "--ode-step-size", help="Fixed grids."),
    as_json: bool = typer.Option(False, "--json", help="Print the summary as JSON."),
) -> None:
    """Layers, parameters, forward FLOPs and the steps of each stage of one network."""
    from odenet.nets import ModelConfig, default_num_classes, describe
    from odenet.nets.budget import summary_table

    config = ModelConfig(
        arch=arch,
        downsample=downsample,
        depth=depth,
        solver=solver,
        block=block,
        shortcut=shortcut,
        norm=norm,
        width=width,
        in_channels=in_channels,
        num_classes=default_num_classes(arch) if num_classes is None else num_classes,
        ode_t1=ode_t1,
        ode_rtol=ode_rtol,
        ode_atol=ode_atol,
        ode_step_size=ode_step_size,
    )
    summary = describe(config, image_size=image_size)
    if as_json:
        print_json(summary.to_dict())
    else:
        console.print(summary_table(summary))


# ---- train (training) ----------------------------------------------------------------------
@app.command("train")
def train_cmd(
    dataset: str = typer.Option(
        _T.dataset,
        "--dataset",
        help="cifar10 | cifar100 | fashion-mnist | mnist | synthetic | imagefolder:PATH[,size=N].",
    ),
    depth: int = typer.Option(
        _T.depth, "--depth", help="cifar: 6n + 2 (8, 14, 20, ...); single: 2N + 2."
    ),
    arch: str = typer.Option(_T.arch, "--arch", help="cifar | single | resnet18 ... resnet152."),
    downsample: str = typer.Option(
        _T.downsample, "--downsample", help="single arch: stem | field."
    ),
    solver: str = typer.Option(_T.solver, "--solver", help="A registry name (`odenet solvers`)."),
    epochs: int = typer.Option(_T.epochs, "--epochs", help="Passes over the training set."),
    lr: float = typer.Option(_T.lr, "--lr", help="Peak learning rate."),
    batch_size: int = typer.Option(_T.batch_size, "--batch-size", help="Training batch size."),
    schedule: str = typer.Option(_T.schedule, "--schedule", help="onecycle|cosine|step|constant."),
    seed: int = typer.Option(
        _T.seed, "--seed", help="Model init seed (the data seed derives from it)."
    ),
    limit_train: int | None = typer.Option(
        _T.limit_train, "--limit-train", help="Fixed train subset."
    ),
    limit_test: int | None = typer.Option(_T.limit_test, "--limit-test", help="Fixed test subset."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where datasets live."),
    device: str = typer.Option(_T.device, "--device", help="auto | cpu | cuda."),
    out: Path | None = typer.Option(None, "--out", help="Checkpoint/resume directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    pad: int = typer.Option(_T.pad, "--pad", help="Zero padding of the random crop (0: no crop)."),
    log_every: int = typer.Option(
        _T.log_every, "--log-every", help="Log the loss every N steps (0: about 100 points a run)."
    ),
    block: str = typer.Option(_T.block, "--block", help="postact | preact."),
    shortcut: str = typer.Option(
        _T.shortcut, "--shortcut", help="A (zero-pad) | B (1x1 projection) | C (on every step)."
    ),
    width: int = typer.Option(_T.width, "--width", help="Channels of stage 1."),
    momentum: float = typer.Option(_T.momentum, "--momentum", help="SGD momentum."),
    nesterov: bool = typer.Option(
        _T.nesterov, "--nesterov/--no-nesterov", help="Nesterov momentum."
    ),
    weight_decay: float = typer.Option(
        _T.weight_decay, "--weight-decay", help="On conv/linear weights."
    ),
    warmup_epochs: float = typer.Option(
        _T.warmup_epochs, "--warmup-epochs", help="Linear lr warm-up."
    ),
    label_smoothing: float = typer.Option(
        _T.label_smoothing, "--label-smoothing", help="In [0, 1)."
    ),
    augment: bool = typer.Option(_T.augment, "--augment/--no-augment", help="Train augmentation."),
    amp: bool | None = typer.Option(_T.amp, "--amp/--no-amp", help="bf16 autocast (CUDA: on)."),
    channels_last: bool | None = typer.Option(
        _T.channels_last,
        "--channels-last/--no-channels-last",
        help="NHWC memory format (CUDA: on).",
    ),
    cuda_graphs: bool | None = typer.Option(
        _T.cuda_graphs,
        "--cuda-graphs/--no-cuda-graphs",
        help="Capture the step as CUDA graphs (CUDA: on).",
    ),
) -> None:
    """Train one network; a diverged run is a result (diverged: true), not an error."""
    from odenet.training import TrainConfig, train
    from odenet.training.console import EpochProgress, print_result

    config = TrainConfig(
        dataset=dataset, depth=depth, solver=solver, block=block, shortcut=shortcut, width=width,
        epochs=epochs, lr=lr, batch_size=batch_size, momentum=momentum, nesterov=nesterov,
        weight_decay=weight_decay, schedule=schedule, warmup_epochs=warmup_epochs,
        label_smoothing=label_smoothing, seed=seed, limit_train=limit_train,
        limit_test=limit_test, data_dir=str(data_dir) if data_dir else None, device=device,
        amp=amp, channels_last=channels_last, augment=augment, cuda_graphs=cuda_graphs,
        arch=arch, downsample=downsample, pad=pad, log_every=log_every,
    )  # fmt: skip
    if out is not None:  # a file, or a directory that cannot be written: refused before training
        from odenet.studies import check_out_dir

        check_out_dir(out)
    con = Console(stderr=True) if as_json else console
    result = train(config, out_dir=out, callbacks=EpochProgress(con, epochs, batch_size))
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
    130 (the runner has given the unfinished runs back, so the same command resumes).
    """
    code: int | str | None = 0
    if _main_thread() and signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)  # Ctrl-C: KeyboardInterrupt
    try:  # typer prints usage errors (exit 2) and turns Ctrl-C into a silent exit 130
        app(args=argv, standalone_mode=True)
    except SystemExit as done:
        code = done.code
    except KeyboardInterrupt:  # outside typer's own handling (e.g. while it builds the app)
        code = 130
    except OdenetError as err:
        typer.echo(f"error: {err}", err=True)
        code = err.exit_code
    except OSError as err:  # the file system said no (disk full, permissions): one line too
        where = f" {err.filename!r}" if err.filename else ""
        typer.echo(f"error: {err.strerror or err}{where}", err=True)
        code = 1
    if code == 130:
        typer.echo(INTERRUPTED, err=True)
    sys.exit(code)


def _main_thread() -> bool:
    return threading.current_thread() is threading.main_thread()
