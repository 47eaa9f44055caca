"""The study commands of the `odenet` command line: study, report, landscape, analyze, reset.

Thin like the rest of odenet.cli (options -> a frozen config -> one library call); odenet.cli
registers these functions on its app, after train, and turns errors into exit codes.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import typer

from odenet.analysis import analyze, landscape
from odenet.cli_output import console, print_json
from odenet.cli_settings import with_settings
from odenet.studies import plan_study, report_study, run_study, spec_from_sources, write_csv
from odenet.studies.executors.ray import RayConfig
from odenet.studies.report import check_csv_path
from odenet.studies.robustness_tables import plan_table, summary_table
from odenet.studies.spec import StudySpec
from odenet.studies.spec_values import FAMILIAR
from odenet.studies.store import Store
from odenet.studies.tensorboard import check_tensorboard, export_tensorboard
from odenet.training.config import SETTINGS


# ---- study / report (studies) --------------------------------------------------------------
def _default(name: str) -> str:
    """'(default X)' for a StudySpec field: the dataclass holds the defaults."""
    value = next(f.default for f in fields(StudySpec) if f.name == name)
    return f"(default {','.join(map(str, value)) if isinstance(value, tuple) else value})"


def _study_settings() -> list:
    """The settings a study's options set for every run: all but the axes' own."""
    return [s for s in SETTINGS.values() if s.name not in FAMILIAR]


@with_settings(_study_settings(), given=True)
def study_cmd(
    values: dict,
    out: str | None = typer.Option(None, "--out", help="Study directory (created; resumable)."),
    orders: str | None = typer.Option(None, help=f"RK orders, e.g. 1,4 {_default('orders')}."),
    solvers: str | None = typer.Option(None, help="Extra schemes by name, e.g. rk4,lm."),
    depths: str | None = typer.Option(None, help=f"Depths 6n+2 {_default('depths')}."),
    lrs: str | None = typer.Option(None, help=f"Peak lrs {_default('lrs')}."),
    seeds: str | None = typer.Option(None, help=f"Seeds, e.g. 0,1 {_default('seeds')}."),
    sets: list[str] | None = typer.Option(
        None,
        "--set",
        metavar="FIELD=VALUE",
        help="Set a TrainConfig field for every run (repeatable; none for an optional field), "
        "e.g. --set weight_decay=0 --set pad=2. Fields: "
        f"{', '.join(s.name for s in _study_settings())}.",
    ),
    axes: list[str] | None = typer.Option(
        None,
        "--axis",
        metavar="FIELD=V1,V2",
        help="Sweep a TrainConfig field (repeatable): every value is a run of each grid point, "
        "named in the run id, e.g. --axis weight_decay=0,5e-4 -> d20-rk4-lr0.1-wd0.0005-s0 "
        "(dataset, data_dir, device and cuda_graphs hold one value per study).",
    ),
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
    verbose: bool = typer.Option(
        False, "--verbose", help="Ray: show Ray's own log messages and its workers' output."
    ),
    fuse_max: int | None = typer.Option(None, help=f"Runs per fused group {_default('fuse_max')}."),
    config: Path | None = typer.Option(
        None,
        "--config",
        help="TOML study file: any option here; a TrainConfig field given a list is swept "
        "(flags win).",
    ),
    tensorboard: bool = typer.Option(
        False,
        "--tensorboard",
        help="Write TensorBoard event files per run under DIR/tensorboard/ while it trains "
        "(needs odenet[tensorboard]).",
    ),
    lease_grace: float | None = typer.Option(
        None,
        help="Seconds without a heartbeat from this process after which another process may "
        f"take over its runs (containers, hosts) {_default('lease_grace')}.",
    ),
    allow_network_fs: bool = typer.Option(
        False,
        "--allow-network-fs",
        help="Open a study directory on a network file system (NFS, SMB, Lustre...) anyway: "
        "only safe when processes of one machine open it.",
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the grid and budgets; exit."),
    retry_failed: bool = typer.Option(True, help="Retry runs that failed before."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress output."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of tables."),
) -> None:
    """Run (or resume) a grid of trainings: every (depth, scheme, lr, swept values, seed) is
    one run. Every TrainConfig field can be set (its option, --set) or swept (--axis, TOML
    lists)."""
    spec = spec_from_sources(
        config, orders=orders, solvers=solvers, depths=depths, lrs=lrs, seeds=seeds,
        settings=values, sets=sets or (), axes=axes or (), executor=executor, fuse_max=fuse_max,
        tensorboard=tensorboard or None, lease_grace=lease_grace,
    )  # fmt: skip
    if dry_run:
        runs, rows = plan_study(spec)
        if as_json:
            print_json({"runs": [r.id for r in runs], "models": [vars(r) for r in rows]})
        else:
            console.print(plan_table(rows, len(runs)))
        return
    ray = RayConfig(
        address=ray_address, gpus_per_run=gpus_per_run, cpus_per_run=cpus_per_run, verbose=verbose
    )
    data = run_study(
        spec, out, quiet=quiet or as_json, retry_failed=retry_failed, ray=ray,
        allow_network_fs=allow_network_fs,
    )  # fmt: skip
    if as_json:
        print_json(data.to_json())
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


def report_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    as_json: bool = typer.Option(False, "--json", help="Print {table, runs, steps} as JSON."),
    csv_path: Path | None = typer.Option(None, "--csv", help="Also export the runs as CSV."),
    tensorboard: bool = typer.Option(
        False,
        "--tensorboard",
        help="Also write the finished runs' TensorBoard event files under DIR/tensorboard/ "
        "(idempotent; needs odenet[tensorboard]).",
    ),
) -> None:
    """Write figures (PNG, SVG) and report.md into a study directory; print the table."""
    if csv_path is not None:
        check_csv_path(study_dir, csv_path)  # before anything is written
    if tensorboard:
        check_tensorboard()
    data = report_study(study_dir)
    if csv_path is not None:
        write_csv(data, csv_path)
    if tensorboard and not data.warnings:  # a read-only study: the report says so
        board = export_tensorboard(study_dir)
        typer.echo(
            f"tensorboard: {len(board.written)} run(s) written, {len(board.unfinished)} "
            f"unfinished left to the study; tensorboard --logdir {board.folder}",
            err=True,
        )
    if as_json:
        print_json(data.to_json())
    else:
        console.print(summary_table(data.table, title=f"LR robustness: {study_dir}"))
        if not data.warnings:
            console.print(f"wrote {study_dir / 'report.md'} and figures/")
    for run_id, who in data.holders.items():
        typer.echo(f"running: {run_id}, held by {who}", err=True)
    for line in data.warnings:
        typer.echo(f"warning: {line}", err=True)


# ---- landscape / analyze (analysis) -------------------------------------------------------
_SELECT_HELP = {
    "depth": "Depth(s), e.g. 20 or 20,56 [default: all].",
    "orders": "RK orders, e.g. 1,2,4 [default: all schemes].",
    "solvers": "Schemes by name, e.g. lm,rk4.",
    "lr": "lr(s), e.g. 0.1,0.4, or 'all' [default: the best of each cell (every axis but lr and "
    "seed)].",
    "seed": "Training seed(s), or 'all' [default: the smallest].",
    "where": "Only runs with these values of a swept field, e.g. --where downsample=field "
    "(repeatable) [default: every value].",
    "limit_data": "N images of each run's own training subset, or 'all'.",
}


def landscape_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    depth: str | None = typer.Option(None, help=_SELECT_HELP["depth"]),
    orders: str | None = typer.Option(None, help=_SELECT_HELP["orders"]),
    solvers: str | None = typer.Option(None, help=_SELECT_HELP["solvers"]),
    lr: str | None = typer.Option(None, help=_SELECT_HELP["lr"]),
    seed: str | None = typer.Option(None, help=_SELECT_HELP["seed"]),
    where: list[str] = typer.Option([], "--where", help=_SELECT_HELP["where"]),
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
    config = landscape.config_from_options(
        study_dir, depth=depth, orders=orders, solvers=solvers, where=tuple(where), range_=range_,
        limit_data=limit_data, power_iters=power_iters, trace_probes=trace_probes, lr=lr,
        seed=seed, dims=dims, points=points, direction_seed=direction_seed,
        include_1d=include_1d, surface=surface, sharpness=sharpness,
        points_per_batch=points_per_batch, batch_size=batch_size, device=device,
    )  # fmt: skip
    result = landscape.run_landscape(config)
    _print_measurements(result, landscape.summary_table, as_json)


def _print_measurements(result, summary_table, as_json: bool) -> None:
    """A landscape/analyze result: its warnings on stderr, then JSON or the table + figures."""
    for line in result.notes:
        typer.echo(f"warning: {line}", err=True)
    if as_json:
        print_json(result.to_dict())
        return
    console.print(summary_table(result))
    for p in result.figures:
        console.print(f"wrote {p}")


def analyze_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    depth: str | None = typer.Option(None, help=_SELECT_HELP["depth"]),
    orders: str | None = typer.Option(None, help=_SELECT_HELP["orders"]),
    solvers: str | None = typer.Option(None, help=_SELECT_HELP["solvers"]),
    lr: str | None = typer.Option(None, help=_SELECT_HELP["lr"]),
    seed: str | None = typer.Option(None, help=_SELECT_HELP["seed"]),
    where: list[str] = typer.Option([], "--where", help=_SELECT_HELP["where"]),
    limit_data: str = typer.Option("1024", help=_SELECT_HELP["limit_data"]),
    batch_size: int = typer.Option(256, help="Evaluation batch size."),
    krylov: int = typer.Option(20, help="Arnoldi steps per cycle (Jacobian-vector products)."),
    restarts: int = typer.Option(
        20, help="Most Arnoldi cycles; fewer once every estimate has converged."
    ),
    eigen_tol: float = typer.Option(
        1e-4, help="Relative residual an eigenvalue estimate must reach to count as converged."
    ),
    eigen_images: int = typer.Option(64, help="Images the field spectra are averaged over."),
    initial: bool = typer.Option(True, help="Also gradient norms at the initial weights."),
    ode_tests: bool = typer.Option(
        False,
        "--ode-tests",
        help="Also the integrator swap and depth refinement on each run's "
        "own test subset (is the trained network an ODE?).",
    ),
    swap_schemes: str | None = typer.Option(
        None,
        help="--ode-tests: schemes to evaluate the trained fields under (the trained one "
        "is added) [default: euler,heun,rk3,rk4].",
    ),
    refine_factors: str | None = typer.Option(
        None,
        help="--ode-tests: refinement factors m, powers of two each twice the one before "
        "[default: 1,2,4,8].",
    ),
    figures: bool = typer.Option(True, help="Draw the figures (PNG + SVG)."),
    device: str = typer.Option("auto", help="auto|cpu|cuda."),
    as_json: bool = typer.Option(False, "--json", help="Print settings, models, figures as JSON."),
) -> None:
    """Responses, step ratios, gradient norms and field spectra on the stability region; with
    --ode-tests, the integrator swap and depth refinement."""
    config = analyze.config_from_options(
        study_dir, depth=depth, orders=orders, solvers=solvers, lr=lr, seed=seed,
        where=tuple(where), limit_data=limit_data, batch_size=batch_size, krylov=krylov,
        restarts=restarts, eigen_tol=eigen_tol, eigen_images=eigen_images, initial=initial,
        ode_tests=ode_tests, swap_schemes=swap_schemes, refine_factors=refine_factors,
        figures=figures, device=device,
    )  # fmt: skip
    result = analyze.run_analyze(config)
    _print_measurements(result, analyze.summary_table, as_json)


def reset_cmd(
    study_dir: Path = typer.Argument(..., help="A study directory (from `odenet study`)."),
    run_ids: list[str] = typer.Argument(..., help="Run ids, e.g. d20-rk4-lr0.1-s0."),
) -> None:
    """Make runs pending again (checkpoint, metrics and cached analyses deleted), e.g. a
    finished run whose checkpoint was lost; the study's command then retrains them."""
    done = Store.open(study_dir).reset(run_ids)
    typer.echo(f"reset {len(done)} run(s) to pending: {', '.join(done)}")
    typer.echo("run the study's `odenet study ... --out DIR` command again to retrain them")
