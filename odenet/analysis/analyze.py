"""``odenet analyze``: the ODE view of a study's trained models.

For every selected run (odenet.analysis.selection), on the run's own training subset
(odenet.analysis.inputs), in eval mode:

* responses and step ratios of every field (odenet.analysis.responses.field_responses);
* gradient norms per field's parameters and of the state, at the trained weights and at the
  initial weights rebuilt from the run's seed (gradient_norms);
* the dominant eigenvalue of each field's Jacobian at the data, averaged over
  ``EigenConfig.images`` samples, placed on the stability region of the scheme of the field's
  step (odenet.analysis.spectra over odenet.analysis.eigen), and the number of fields outside
  it;
* with ``ode_tests`` (``--ode-tests``), on the run's own TEST subset: the integrator swap and
  the depth refinement of odenet.analysis.ode_tests (cached apart, kind "ode_tests").

Each run's result is cached in the study database (``Store.record_analysis``, kind
"analyze") under every setting that determines it, with its flat form (a row per field:
``field_table``); the figures go to ``<study>/analysis/`` (odenet.analysis.analyze_plots) and
the means over the seeds of each configuration (every axis but seed, odenet.studies.identity)
are returned with them. ``<study>/analysis/section.md`` is this analysis's section of the
study's report (odenet.analysis.report_sections). A run whose checkpoint is missing or damaged
is skipped with a note; a continuous (``ode-*``) run is measured at its transition fields only,
and a note says so (``odenet.analysis.responses.unmeasured``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from odenet.analysis.analyze_plots import draw_analysis
from odenet.analysis.analyze_results import (
    AnalyzeResult,
    ConfigurationMeans,
    RunAnalysis,
    aggregate,
    field_table,
    summary_table,
)
from odenet.analysis.eigen import (
    EigenConfig,
    check_krylov_fits,
)
from odenet.analysis.inputs import (
    Batch,
    DataCache,
    RunUnreadable,
    initial_model,
    load_run,
    open_study,
    parse_limit,
)
from odenet.analysis.ode_plots import draw_ode_tests
from odenet.analysis.ode_tests import OdeTestConfig, measure_run
from odenet.analysis.report_sections import write_analyze_section
from odenet.analysis.responses import (
    field_responses,
    gradient_norms,
    model_fields,
    unmeasured,
)
from odenet.analysis.selection import RunSelection, parse_selection, select_runs
from odenet.analysis.spectra import spectra
from odenet.data.loader import resolve_device
from odenet.errors import ConfigError
from odenet.nets.memory import check_fits, largest_state
from odenet.strict_json import finite
from odenet.studies.store import RunRecord, Store

__all__ = [
    "AnalyzeConfig",
    "AnalyzeResult",
    "ConfigurationMeans",
    "RunAnalysis",
    "aggregate",
    "analyze_model",
    "config_from_options",
    "field_table",
    "run_analyze",
    "summary_table",
]

VERSION = 4  # bump when what a cached result holds changes (4: its flat form, field_table)


@dataclass(frozen=True)
class AnalyzeConfig:
    """What to analyse and how."""

    study_dir: str  # a study directory (holds study.sqlite and runs/)
    selection: RunSelection = RunSelection()  # which runs (default: best lr per scheme)
    limit_data: int | None = 1024  # N images of the run's own training subset (None: all)
    batch_size: int = 256  # evaluation batch size
    eigen: EigenConfig = EigenConfig()  # the Arnoldi estimate of the field spectra
    initial: bool = True  # also the gradient norms at the run's initial weights
    figures: bool = True  # draw the figures (PNG + SVG) into <study>/analysis/
    device: str = "auto"  # "auto" (cuda if available) | "cpu" | "cuda"
    ode_tests: OdeTestConfig | None = None  # also the swap and refinement tests (None: not)

    def validate(self) -> None:
        if self.limit_data is not None and self.limit_data < 1:
            raise ConfigError(
                f"--limit-data must be a positive integer or 'all', got {self.limit_data}"
            )
        if self.batch_size < 1:
            raise ConfigError(f"--batch-size must be >= 1, got {self.batch_size}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"unknown device {self.device!r}; expected one of: auto, cpu, cuda")
        self.eigen.validate()
        if self.ode_tests is not None:
            self.ode_tests.validate()


def analyze_model(
    model: torch.nn.Module,
    batches: list[Batch],
    eigen: EigenConfig = EigenConfig(),
    initial: torch.nn.Module | None = None,
) -> dict:
    """Every measurement of one model on ``batches``: {"fields", "schemes", "responses"
    ({"network_order", "sorted"}), "step_ratios", "grad_norms" ({"trained", "initial"}),
    "eigenvalues", "outside_region", "fields_with_region", "unconverged_fields" (fields whose
    eigenvalue estimate did not converge for some sample)}."""
    resp = field_responses(model, batches)
    eig = spectra(model, batches, eigen)
    placed = [e["inside"] for e in eig if e["inside"] is not None]
    return {
        "fields": resp["fields"],
        "schemes": resp["schemes"],
        "responses": {
            "network_order": resp["responses"],
            "sorted": sorted(resp["responses"], reverse=True),
        },
        "step_ratios": resp["step_ratios"],
        "grad_norms": {
            "trained": gradient_norms(model, batches),
            "initial": None if initial is None else gradient_norms(initial, batches),
        },
        "eigenvalues": eig,
        "outside_region": sum(not i for i in placed) if placed else None,
        "fields_with_region": len(placed),
        "unconverged_fields": sum(bool(e["unconverged"]) for e in eig),
    }


def _settings(config: AnalyzeConfig, run: RunRecord, data_key: dict, checkpoint: str) -> dict:
    return {
        "version": VERSION,
        "run_id": run.id,
        "checkpoint": checkpoint,
        "data": data_key,
        "batch_size": config.batch_size,
        "eigen": asdict(config.eigen),
        "initial": config.initial,
    }


def _one_run(
    config: AnalyzeConfig, store: Store, run: RunRecord, device, data: DataCache
) -> tuple[RunAnalysis, str | None]:
    """The run's analysis (cached or measured now) and what it leaves out (``unmeasured``)."""
    model, checkpoint = load_run(run, device)
    try:
        model_fields(model)
    except ConfigError as err:  # e.g. a continuous single-stage network: no transition
        raise RunUnreadable(f"skipped {run.id}: {err}") from None
    left_out = unmeasured(model)
    subset, batches = data.batches(run)
    key = _settings(config, run, subset.key, checkpoint)
    result = store.analysis(run.id, "analyze", key)
    cached = result is not None
    if result is None:
        init = initial_model(run, device) if config.initial else None
        measured = analyze_model(model, batches, config.eigen, init)
        facts = {
            "run_id": run.id,
            "depth": run.depth,
            "solver": run.solver,
            "lr": run.lr,
            "seed": run.seed,
            "test_acc": run.test_acc,
            "data": subset.description,
        }
        result = finite({**facts, **measured})
        store.record_analysis(run.id, "analyze", key, result, table=field_table(result))
    if config.ode_tests is not None:
        ode, found = measure_run(store, run, model, checkpoint, data, config.ode_tests)
        result, cached = {**result, **ode}, cached and found
    return RunAnalysis(run.axes, result, cached), left_out


def check_analyze_fits(config: AnalyzeConfig, run: RunRecord, data: DataCache) -> None:
    """ConfigError when analysing ``run`` cannot fit in memory: its field spectra (--krylov
    vectors for --eigen-images states of its largest field) or its gradient norms (a backward
    pass over a --batch-size batch)."""
    subset, batches = data.batches(run)
    x = batches[0][0]
    image = int(x.shape[-1])
    net = run.config.model.for_data(in_channels=int(x.shape[1]))
    samples = min(config.eigen.images, subset.count)
    check_krylov_fits(config.eigen, samples, largest_state(net, image), run.id)
    check_fits(net, image, int(x.shape[0]))


def run_analyze(config: AnalyzeConfig) -> AnalyzeResult:
    """Analyse the selected runs (cached per run and settings), draw the figures."""
    config.validate()
    store = open_study(config.study_dir, "analyze")
    selection = select_runs(store.runs(), config.selection)
    device = resolve_device(config.device)
    data = DataCache(config.limit_data, config.batch_size, device)
    for run in selection.runs:  # refused before anything is written
        check_analyze_fits(config, run, data)
    models, notes = [], list(selection.notes)
    partial: dict[str, list[str]] = {}  # what is not measured -> the runs it concerns
    for run in selection.runs:
        try:
            analysis, left_out = _one_run(config, store, run, device, data)
        except RunUnreadable as err:
            notes.append(str(err))
            continue
        models.append(analysis)
        if left_out is not None:
            partial.setdefault(left_out, []).append(run.id)
    if not models:
        raise ConfigError(" / ".join(notes[len(selection.notes) :]))
    notes += [
        f"{m.values['run_id']}: {line}" for m in models for line in m.values.get("refused", [])
    ]
    notes += [f"{', '.join(ids)}: {left_out}" for left_out, ids in partial.items()]
    table = aggregate(models)
    settings = {
        "study_dir": str(store.dir),
        "limit_data": config.limit_data,
        "images": sorted({m.values["data"] for m in models}),
        "batch_size": config.batch_size,
        "eigen": asdict(config.eigen),
        "initial": config.initial,
        "selection": config.selection.describe(selection.swept),
    }
    if config.ode_tests is not None:  # without them, the settings are what they always were
        settings["ode_tests"] = asdict(config.ode_tests)
    out = store.layout.analysis
    figures = draw_analysis(models, table, out, config.eigen.images) if config.figures else []
    if config.figures and config.ode_tests is not None:
        figures += draw_ode_tests(models, table, out)
    write_analyze_section(store)
    return AnalyzeResult(settings, models, table, figures, notes)


def config_from_options(
    study_dir: str | Path,
    *,
    depth: str | None = None,
    orders: str | None = None,
    solvers: str | None = None,
    lr: str | float | None = None,
    seed: str | int | None = None,
    where: tuple[str, ...] = (),
    limit_data: str | int | None = "1024",
    krylov: int = EigenConfig.krylov,
    restarts: int = EigenConfig.restarts,
    eigen_tol: float = EigenConfig.tol,
    eigen_images: int = 64,
    ode_tests: bool = False,
    swap_schemes: str | None = None,
    refine_factors: str | None = None,
    **options: object,
) -> AnalyzeConfig:
    """An AnalyzeConfig from command-line strings ("20,26", "1,2,4", "all"); the swap schemes
    and refinement factors only with ``ode_tests``."""
    config = AnalyzeConfig(
        study_dir=str(study_dir),
        selection=parse_selection(depth, orders, solvers, lr, seed, where),
        limit_data=parse_limit(limit_data),
        eigen=EigenConfig(krylov=krylov, restarts=restarts, tol=eigen_tol, images=eigen_images),
        ode_tests=OdeTestConfig.from_options(ode_tests, swap_schemes, refine_factors),
        **options,  # type: ignore[arg-type]
    )
    config.validate()
    return config
