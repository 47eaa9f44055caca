"""The `odenet` command line. Thin: options -> a frozen config -> one library call.

Every command lives here as a handful of lines. Exit codes (``main``): 0 success (a study
whose runs all finished or diverged: a divergence is a result); 1 a study that ended with
failed runs, or another runtime error; 2 bad input (usage, config, a damaged or unusable
study database), decided before anything is written; 130 interrupted (Ctrl-C), with one
line saying how to resume.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path  # noqa: F401  (used by the commands' option types)
from typing import Optional  # noqa: F401

import typer
from rich.console import Console

from odenet.errors import OdenetError
from odenet.strict_json import dumps

INTERRUPTED = "interrupted; run the same command to resume"

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
    """Strict JSON on stdout: a non-finite number (NaN, Infinity) is printed as null."""
    typer.echo(dumps(obj, indent=2))


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
            _print_json({"figures": [str(p) for p in paths]})
        else:
            console.print("\n".join(f"wrote {p}" for p in paths))
        return
    rows = solver_table()
    if as_json:
        _print_json(rows)
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


# ---- describe (nets) -----------------------------------------------------------------------
@app.command("describe")
def describe_cmd(
    depth: int = typer.Option(20, "--depth", help="cifar: 6n + 2 (20, 56, ...); single: 2N + 2."),
    solver: str = typer.Option("euler", "--solver", help="A registry name (see `odenet solvers`)."),
    arch: str = typer.Option("cifar", "--arch", help="cifar | single | resnet18 ... resnet152."),
    downsample: str = typer.Option("stem", "--downsample", help="single arch: stem | field."),
    block: str = typer.Option("postact", "--block", help="postact | preact."),
    shortcut: str = typer.Option(
        "A", "--shortcut", help="A (zero-pad) | B (1x1 projection) | C (on every step)."
    ),
    norm: str | None = typer.Option(None, "--norm", help="bn | gn (default: bn; ODE field gn)."),
    width: int = typer.Option(16, "--width", help="Channels of stage 1."),
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
        _print_json(summary.to_dict())
    else:
        console.print(summary_table(summary))


# ---- train (training) ----------------------------------------------------------------------
@app.command("train")
def train_cmd(
    dataset: str = typer.Option(
        "cifar10",
        "--dataset",
        help="cifar10 | cifar100 | fashion-mnist | mnist | synthetic | imagefolder:PATH[,size=N].",
    ),
    depth: int = typer.Option(
        20, "--depth", help="cifar: 6n + 2 (8, 14, 20, ...); single: 2N + 2."
    ),
    arch: str = typer.Option("cifar", "--arch", help="cifar | single | resnet18 ... resnet152."),
    downsample: str = typer.Option("stem", "--downsample", help="single arch: stem | field."),
    solver: str = typer.Option("euler", "--solver", help="A registry name (`odenet solvers`)."),
    epochs: int = typer.Option(10, "--epochs", help="Passes over the training set."),
    lr: float = typer.Option(0.1, "--lr", help="Peak learning rate."),
    batch_size: int = typer.Option(128, "--batch-size", help="Training batch size."),
    schedule: str = typer.Option("onecycle", "--schedule", help="onecycle|cosine|step|constant."),
    seed: int = typer.Option(0, "--seed", help="Model init seed (the data seed derives from it)."),
    limit_train: int | None = typer.Option(None, "--limit-train", help="Fixed train subset."),
    limit_test: int | None = typer.Option(None, "--limit-test", help="Fixed test subset."),
    data_dir: Path | None = typer.Option(None, "--data-dir", help="Where datasets live."),
    device: str = typer.Option("auto", "--device", help="auto | cpu | cuda."),
    out: Path | None = typer.Option(None, "--out", help="Checkpoint/resume directory."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    block: str = typer.Option("postact", "--block", help="postact | preact."),
    shortcut: str = typer.Option(
        "A", "--shortcut", help="A (zero-pad) | B (1x1 projection) | C (on every step)."
    ),
    width: int = typer.Option(16, "--width", help="Channels of stage 1."),
    momentum: float = typer.Option(0.9, "--momentum", help="SGD momentum."),
    nesterov: bool = typer.Option(True, "--nesterov/--no-nesterov", help="Nesterov momentum."),
    weight_decay: float = typer.Option(5e-4, "--weight-decay", help="On conv/linear weights."),
    warmup_epochs: float = typer.Option(0.0, "--warmup-epochs", help="Linear lr warm-up."),
    label_smoothing: float = typer.Option(0.0, "--label-smoothing", help="In [0, 1)."),
    augment: bool = typer.Option(True, "--augment/--no-augment", help="Train augmentation."),
    amp: bool | None = typer.Option(None, "--amp/--no-amp", help="bf16 autocast (CUDA: on)."),
    channels_last: bool | None = typer.Option(
        None, "--channels-last/--no-channels-last", help="NHWC memory format (CUDA: on)."
    ),
    cuda_graphs: bool | None = typer.Option(
        None, "--cuda-graphs/--no-cuda-graphs", help="Capture the step as CUDA graphs (CUDA: on)."
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
        arch=arch, downsample=downsample,
    )  # fmt: skip
    if out is not None:  # a file, or a directory that cannot be written: refused before training
        from odenet.studies import check_out_dir

        check_out_dir(out)
    con = Console(stderr=True) if as_json else console
    result = train(config, out_dir=out, callbacks=EpochProgress(con, epochs, batch_size))
    if as_json:
        _print_json(result.to_dict())
    else:
        print_result(console, config, result)


# ---- study / report (studies) --------------------------------------------------------------
def _study_default(name: str) -> str:
    """'(default X)' for a StudySpec or TrainConfig field: the dataclasses hold the defaults."""
    from dataclasses import fields

    from odenet.studies import StudySpec
    from odenet.training import TrainConfig

    for f in (*fields(StudySpec), *fields(TrainConfig)):
        if f.name == name:
            value = f.default
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            return f"(default {shown})"
    raise KeyError(name)


def _train_fields() -> str:
    from odenet.studies.spec_values import FAMILIAR, TRAIN_FIELDS

    return ", ".join(f for f in TRAIN_FIELDS if f not in FAMILIAR)


@app.command("study")
def study_cmd(
    out: Path | None = typer.Option(None, "--out", help="Study directory (created; resumable)."),
    orders: str | None = typer.Option(
        None, help=f"RK orders, e.g. 1,4 {_study_default('orders')}."
    ),
    solvers: str | None = typer.Option(None, help="Extra schemes by name, e.g. rk4,lm."),
    depths: str | None = typer.Option(None, help=f"Depths 6n+2 {_study_default('depths')}."),
    lrs: str | None = typer.Option(None, help=f"Peak lrs {_study_default('lrs')}."),
    seeds: str | None = typer.Option(None, help=f"Seeds, e.g. 0,1 {_study_default('seeds')}."),
    sets: list[str] | None = typer.Option(
        None,
        "--set",
        metavar="FIELD=VALUE",
        help="Set a TrainConfig field for every run (repeatable; none for an optional field), "
        f"e.g. --set weight_decay=0 --set pad=2. Fields: {_train_fields()}.",
    ),
    axes: list[str] | None = typer.Option(
        None,
        "--axis",
        metavar="FIELD=V1,V2",
        help="Sweep a TrainConfig field (repeatable): every value is a run of each grid point, "
        "named in the run id, e.g. --axis weight_decay=0,5e-4 -> d20-rk4-lr0.1-wd0.0005-s0 "
        "(dataset, data_dir, device and cuda_graphs hold one value per study).",
    ),
    epochs: int | None = typer.Option(None, help=f"Epochs per run {_study_default('epochs')}."),
    dataset: str | None = typer.Option(None, help=f"Dataset {_study_default('dataset')}."),
    limit_train: int | None = typer.Option(None, help="Use N training images."),
    limit_test: int | None = typer.Option(None, help="Use N test images."),
    batch_size: int | None = typer.Option(None, help=f"Batch size {_study_default('batch_size')}."),
    schedule: str | None = typer.Option(None, help="onecycle|cosine|step|constant."),
    device: str | None = typer.Option(None, help=f"auto|cpu|cuda {_study_default('device')}."),
    width: int | None = typer.Option(None, help=f"Stage-1 channels {_study_default('width')}."),
    block: str | None = typer.Option(None, help="postact|preact."),
    shortcut: str | None = typer.Option(None, help="A|B|C."),
    data_dir: str | None = typer.Option(None, help="Where datasets live."),
    executor: str | None = typer.Option(
        None, help="auto|sequential|fused|ray (auto: fused on CUDA, sequential on CPU)."
    ),
    ray_address: str | None = typer.Option(
        None, help="Ray: an existing cluster, HOST:PORT (default: a local Ray instance)."
    ),
    gpus_per_run: float | None = typer.Option(
        None, help="Ray: GPUs per task (default 1 where the cluster has GPUs, else 0)."
    ),
    cpus_per_run: float = typer.Option(1.0, help="Ray: CPUs per task (its torch threads)."),
    fuse_max: int | None = typer.Option(
        None, help=f"Runs per fused group {_study_default('fuse_max')}."
    ),
    cuda_graphs: bool | None = typer.Option(
        None, "--cuda-graphs/--no-cuda-graphs", help="Capture steps as CUDA graphs (CUDA: on)."
    ),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="TOML study file: any field above; a TrainConfig field given a "
        "list is swept (flags win).",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid and budgets; exit."),
    retry_failed: bool = typer.Option(True, help="Retry runs that failed before."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Run (or resume) a grid of trainings: every (depth, scheme, lr, swept values, seed) is
    one run. Every TrainConfig field can be set (--set) or swept (--axis, TOML lists)."""
    from odenet.studies import plan_study, run_study, spec_from_sources
    from odenet.studies.ray_executor import RayConfig
    from odenet.studies.report import plan_table, summary_table

    spec = spec_from_sources(
        config, sets=sets or (), axes=axes or (), orders=orders, solvers=solvers, depths=depths,
        lrs=lrs, seeds=seeds, epochs=epochs, dataset=dataset, limit_train=limit_train,
        limit_test=limit_test, batch_size=batch_size, schedule=schedule, device=device,
        width=width, block=block, shortcut=shortcut, data_dir=data_dir, executor=executor,
        fuse_max=fuse_max, cuda_graphs=cuda_graphs,
    )  # fmt: skip
    if dry_run:
        runs, rows = plan_study(spec)
        if as_json:
            _print_json({"runs": [r.id for r in runs], "models": [vars(r) for r in rows]})
        else:
            console.print(plan_table(rows, len(runs)))
        return
    ray = RayConfig(address=ray_address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run)
    data = run_study(spec, out, quiet=quiet or as_json, retry_failed=retry_failed, ray=ray)
    if as_json:
        _print_json(data.to_json())
    else:
        console.print(summary_table(data.table, title=f"LR robustness: {out}"))
    if data.failed:  # exit 1: the study is not complete (a divergence is a result, a failure not)
        typer.echo(
            f"error: {len(data.failed)} run(s) failed ({', '.join(data.failed[:3])}"
            f"{', ...' if len(data.failed) > 3 else ''}); see `odenet report {out}` for the "
            "errors, fix the cause and run the same command to retry them",
            err=True,
        )
        raise typer.Exit(1)


@app.command("report")
def report_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    as_json: bool = typer.Option(False, "--json", help="Print {table, runs, steps} as JSON."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also export the runs as CSV."),
) -> None:
    """Write figures (PNG, SVG) and report.md into a study directory; print the table."""
    from odenet.studies import report_study, write_csv
    from odenet.studies.report import check_csv_path, summary_table

    if csv_path is not None:
        check_csv_path(study_dir, csv_path)  # before anything is written
    data = report_study(study_dir)
    if csv_path is not None:
        write_csv(data, csv_path)
    if as_json:
        _print_json(data.to_json())
    else:
        console.print(summary_table(data.table, title=f"LR robustness: {study_dir}"))
        if not data.warnings:
            console.print(f"wrote {study_dir / 'report.md'} and figures/")
    for line in data.warnings:
        typer.echo(f"warning: {line}", err=True)


# ---- landscape / analyze (analysis) -------------------------------------------------------
_SELECT_HELP = {
    "depth": "Depth(s), e.g. 20 or 20,56 [default: all].",
    "orders": "RK orders, e.g. 1,2,4 [default: all schemes].",
    "solvers": "Schemes by name, e.g. lm,rk4.",
    "lr": "lr(s), e.g. 0.1,0.4, or 'all' [default: each scheme's best].",
    "seed": "Training seed(s), or 'all' [default: the smallest].",
    "limit_data": "N images of each run's own training subset, or 'all'.",
}


@app.command("landscape")
def landscape_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    depth: str | None = typer.Option(None, help=_SELECT_HELP["depth"]),
    orders: str | None = typer.Option(None, help=_SELECT_HELP["orders"]),
    solvers: str | None = typer.Option(None, help=_SELECT_HELP["solvers"]),
    lr: str | None = typer.Option(None, help=_SELECT_HELP["lr"]),
    seed: str | None = typer.Option(None, help=_SELECT_HELP["seed"]),
    dims: int = typer.Option(1, help="1: L(θ + a d); 2: L(θ + a d1 + b d2)."),
    points: int | None = typer.Option(None, help="Points per axis [default: 51 (1D), 25 (2D)]."),
    range_: str = typer.Option("-1:1", "--range", help="Grid range A:B per axis (finite)."),
    limit_data: str = typer.Option("1024", help=_SELECT_HELP["limit_data"]),
    direction_seed: int = typer.Option(0, help="Seed of the random directions."),
    include_1d: bool = typer.Option(False, "--include-1d", help="Also perturb biases/norms."),
    surface: bool = typer.Option(False, "--surface", help="2D: also draw 3D surfaces."),
    sharpness: bool = typer.Option(True, help="Top Hessian eigenvalue and trace."),
    power_iters: int = typer.Option(20, help="Power iterations (Hessian-vector products)."),
    trace_probes: int = typer.Option(10, help="Hutchinson probes for the trace."),
    points_per_batch: int = typer.Option(8, help="Grid points evaluated per data pass."),
    batch_size: int = typer.Option(256, help="Evaluation batch size."),
    device: str = typer.Option("auto", help="auto|cpu|cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print settings, models, files as JSON."),
) -> None:
    """Loss-surface slices (filter-normalised directions) and sharpness of a study's models."""
    from odenet.analysis.landscape import config_from_options, run_landscape, summary_table

    config = config_from_options(
        study_dir, depth=depth, orders=orders, solvers=solvers, range_=range_,
        limit_data=limit_data, power_iters=power_iters, trace_probes=trace_probes, lr=lr,
        seed=seed, dims=dims, points=points, direction_seed=direction_seed,
        include_1d=include_1d, surface=surface, sharpness=sharpness,
        points_per_batch=points_per_batch, batch_size=batch_size, device=device,
    )  # fmt: skip
    result = run_landscape(config)
    for line in result.notes:
        typer.echo(f"warning: {line}", err=True)
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(summary_table(result))
    for p in result.figures:
        console.print(f"wrote {p}")


@app.command("analyze")
def analyze_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    depth: str | None = typer.Option(None, help=_SELECT_HELP["depth"]),
    orders: str | None = typer.Option(None, help=_SELECT_HELP["orders"]),
    solvers: str | None = typer.Option(None, help=_SELECT_HELP["solvers"]),
    lr: str | None = typer.Option(None, help=_SELECT_HELP["lr"]),
    seed: str | None = typer.Option(None, help=_SELECT_HELP["seed"]),
    limit_data: str = typer.Option("1024", help=_SELECT_HELP["limit_data"]),
    batch_size: int = typer.Option(256, help="Evaluation batch size."),
    krylov: int = typer.Option(10, help="Arnoldi steps per cycle (Jacobian-vector products)."),
    restarts: int = typer.Option(4, help="Arnoldi cycles."),
    eigen_images: int = typer.Option(64, help="Images the field spectra are averaged over."),
    initial: bool = typer.Option(True, help="Also gradient norms at the initial weights."),
    figures: bool = typer.Option(True, help="Draw the figures (PNG + SVG)."),
    device: str = typer.Option("auto", help="auto|cpu|cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print settings, models, figures as JSON."),
) -> None:
    """Responses, step ratios, gradient norms and field spectra on the stability region."""
    from odenet.analysis.analyze import config_from_options, run_analyze, summary_table

    config = config_from_options(
        study_dir, depth=depth, orders=orders, solvers=solvers, lr=lr, seed=seed,
        limit_data=limit_data, batch_size=batch_size, krylov=krylov, restarts=restarts,
        eigen_images=eigen_images, initial=initial, figures=figures, device=device,
    )  # fmt: skip
    result = run_analyze(config)
    for line in result.notes:
        typer.echo(f"warning: {line}", err=True)
    if as_json:
        _print_json(result.to_dict())
        return
    console.print(summary_table(result))
    for p in result.figures:
        console.print(f"wrote {p}")


@app.command("reset")
def reset_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    run_ids: list[str] = typer.Argument(..., help="Run ids, e.g. d20-rk4-lr0.1-s0."),
) -> None:
    """Make runs pending again (checkpoint, metrics and cached analyses deleted), e.g. a
    finished run whose checkpoint was lost; the study's command then retrains them."""
    from odenet.studies.store import Store

    done = Store.open(study_dir).reset(run_ids)
    typer.echo(f"reset {len(done)} run(s) to pending: {', '.join(done)}")
    typer.echo("run the study's `odenet study ... --out DIR` command again to retrain them")


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: every outcome is an exit code, every error one line.

    Library errors (OdenetError) print ``error: <message>`` and exit with their code; a file
    system refusal (OSError) exits 1; usage errors exit 2; Ctrl-C prints INTERRUPTED and exits
    130 (the executors have given their runs back, so the same command resumes).
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
