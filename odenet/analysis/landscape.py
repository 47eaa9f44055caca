"""``odenet landscape``: loss-surface slices and sharpness of a study's trained models.

For each selected run (odenet.analysis.selection: by default one finished run per cell, i.e.
per (depth, scheme, swept values), at its best lr) this loads the trained model, takes the
run's OWN training
subset (odenet.analysis.inputs: the images it trained on, ``--limit-data N`` of them, normalised,
no augmentation), and computes

* a 1D or 2D slice along filter-normalised random directions (odenet.analysis.directions),
  evaluated many points per data pass (odenet.analysis.slices), stored and resumable under
  ``<study>/landscape/<key>.npz`` with its settings in ``<key>.json``;
* the top Hessian eigenvalue and a Hutchinson trace (odenet.analysis.sharpness), cached in the
  study database (``Store.record_analysis``, kind "sharpness") with its flat form
  (``sharpness_table``: lambda_max and trace, the report's per-run columns);

then draws the figures (odenet.analysis.landscape_plots) and writes its section of the study's
report (``<study>/landscape/section.md``). Every cache is keyed by every setting that
determines its values (grid, data subset, batch size, estimator settings, the checkpoint's
digest). A run whose checkpoint is missing or damaged is skipped with a note.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from odenet.analysis.directions import make_directions, perturbed_parameters, trained_parameters
from odenet.analysis.inputs import (
    DataCache,
    DataSubset,
    RunUnreadable,
    load_run,
    open_study,
    parse_limit,
)
from odenet.analysis.landscape_plots import draw_figures
from odenet.analysis.landscape_results import LandscapeResult, ModelLandscape
from odenet.analysis.report_sections import write_landscape_section
from odenet.analysis.selection import RunSelection, Selection, parse_selection, select_runs
from odenet.analysis.sharpness import SharpnessConfig, model_sharpness
from odenet.analysis.slices import (
    GridSpec,
    SliceEvaluator,
    compute_slice,
    slice_key,
)
from odenet.data.loader import resolve_device
from odenet.errors import ConfigError
from odenet.files import atomic_write_text
from odenet.nets.memory import FLOAT_BYTES, estimate, forward_bytes
from odenet.sizes import check_memory
from odenet.studies.store import RunRecord, Store
from odenet.tables import FlatTable, rich_table

DEFAULT_POINTS = {1: 51, 2: 25}
SHARPNESS_VERSION = 2  # bump when what a cached sharpness result holds (2: its flat form)
PERTURBED_COPIES = 3  # float32 copies of the weights per point: theta + a d, a d, the sum


@dataclass(frozen=True)
class LandscapeConfig:
    """What to slice and how."""

    study_dir: str  # a study directory (holds study.sqlite and runs/)
    selection: RunSelection = RunSelection()  # which runs (default: best lr per scheme)
    dims: int = 1  # 1: L(theta + a d); 2: L(theta + a d1 + b d2)
    points: int | None = None  # per axis; None: 51 (1D) or 25 (2D)
    lo: float = -1.0  # grid range start (--range A:B)
    hi: float = 1.0  # grid range end
    limit_data: int | None = 1024  # N images of the run's own training subset (None: all)
    direction_seed: int = 0  # seeds the directions (the same for every model) and sharpness
    include_1d: bool = False  # perturb biases / norm affine / lm's k too (Li et al.: zeroed)
    sharpness: bool = True  # also compute lambda_max and the Hessian trace
    sharpness_config: SharpnessConfig = SharpnessConfig()  # seed is set from direction_seed
    surface: bool = False  # 2D only: also draw 3D surface plots
    points_per_batch: int = 8  # grid points evaluated together per data batch (vmap)
    batch_size: int = 256  # data batch size for evaluation
    eval_mode: str = "auto"  # "auto" (vmap, loop fallback) | "vmap" | "loop"
    device: str = "auto"  # "auto" (cuda if available) | "cpu" | "cuda"

    @property
    def grid(self) -> GridSpec:
        points = self.points if self.points is not None else DEFAULT_POINTS.get(self.dims, 2)
        return GridSpec(self.dims, self.lo, self.hi, points)

    def validate(self) -> None:
        self.grid.validate()
        if self.limit_data is not None and self.limit_data < 1:
            raise ConfigError(
                f"--limit-data must be a positive integer or 'all', got {self.limit_data}"
            )
        for name in ("points_per_batch", "batch_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not -(2**63) <= self.direction_seed < 2**64:  # what torch.Generator accepts
            raise ConfigError(
                f"--direction-seed must be in [-2**63, 2**64 - 1], got {self.direction_seed}"
            )
        if self.surface and self.dims != 2:
            raise ConfigError("--surface needs --dims 2")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"unknown device {self.device!r}; expected one of: auto, cpu, cuda")
        self.sharpness_config.validate()


def parse_range(text: str) -> tuple[float, float]:
    """'A:B' -> (A, B) with finite A < B; ConfigError otherwise."""
    parts = str(text).split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--range: {text!r} is not A:B (e.g. -1:1)") from None
    if not (math.isfinite(lo) and math.isfinite(hi)):
        raise ConfigError(f"--range: {text!r} must be finite numbers A:B (e.g. -1:1)")
    if not lo < hi:
        raise ConfigError(f"--range: {text!r} needs A < B (e.g. -1:1)")
    return lo, hi


def slice_settings(
    config: LandscapeConfig, run: RunRecord, subset: DataSubset, checkpoint: str
) -> dict:
    """Everything that determines a slice's values (the key is a hash of it)."""
    g = config.grid
    return {
        "run_id": run.id,
        "checkpoint": checkpoint,
        "dims": g.dims,
        "range": [g.lo, g.hi],
        "points": g.points,
        "data": subset.key,
        "batch_size": config.batch_size,
        "direction_seed": config.direction_seed,
        "include_1d_params": config.include_1d,
    }


def sharpness_settings(
    config: LandscapeConfig, run: RunRecord, subset: DataSubset, checkpoint: str
) -> dict:
    """Everything that determines a sharpness estimate (its cache key in the store)."""
    return {
        "version": SHARPNESS_VERSION,
        "run_id": run.id,
        "checkpoint": checkpoint,
        "data": subset.key,
        "batch_size": config.batch_size,
        **asdict(config.sharpness_config),
        "seed": config.direction_seed,
    }


def sharpness_table(values: dict) -> FlatTable:
    """A sharpness result's flat form: one row per run, lambda_max and trace."""
    return FlatTable(("lambda_max", "trace"), ((values["lambda_max"], values["trace"]),))


def _one_model(
    config: LandscapeConfig, store: Store, run: RunRecord, device, out: Path, data: DataCache
) -> ModelLandscape:
    model, checkpoint = load_run(run, device)
    subset, batches = data.batches(run)
    settings = slice_settings(config, run, subset, checkpoint)
    name = slice_key(settings)
    atomic_write_text(
        out / f"{name}.json",
        json.dumps({**settings, "images": subset.description}, indent=2, sort_keys=True),
    )
    directions = make_directions(
        model, config.dims, config.direction_seed, include_1d=config.include_1d
    )
    evaluator = SliceEvaluator(
        model, batches, points_per_batch=config.points_per_batch, mode=config.eval_mode
    )
    result = compute_slice(
        evaluator,
        trained_parameters(model),
        directions,
        config.grid,
        path=out / f"{name}.npz",
        settings=settings,
    )
    landscape = ModelLandscape(run, result, evaluator.mode, subset.description, note=evaluator.note)
    if not (config.grid.axis() == 0.0).any():  # the trained point is not on the grid
        loss, acc = evaluator.evaluate(
            trained_parameters(model), directions, torch.zeros(1, config.dims, dtype=torch.float64)
        )
        landscape.origin = (float(loss[0]), float(acc[0]))
    if config.sharpness:
        key = sharpness_settings(config, run, subset, checkpoint)
        values = store.analysis(run.id, "sharpness", key)
        if values is None:
            cfg = SharpnessConfig(
                **{**asdict(config.sharpness_config), "seed": config.direction_seed}
            )
            values = model_sharpness(model, batches, cfg).to_dict()
            values["data"] = subset.description
            store.record_analysis(run.id, "sharpness", key, values, sharpness_table(values))
        else:  # computed before under exactly these settings
            values["cached"] = True
        landscape.sharpness = values
    return landscape


def check_landscape_fits(config: LandscapeConfig, run: RunRecord, device, data: DataCache) -> None:
    """ConfigError when the slice of ``run`` cannot be computed as ``config`` says: its
    weights at the grid's corners overflow float32, or its evaluation (a chunk of
    --points-per-batch weight copies, their forward pass over a --batch-size batch; the
    sharpness's backward passes) cannot fit in memory. A run that cannot be read is left to
    ``run_landscape``'s note."""
    try:
        model, _ = load_run(run, device)
    except RunUnreadable:
        return
    _, batches = data.batches(run)
    theta = trained_parameters(model)
    directions = make_directions(
        model, config.dims, config.direction_seed, include_1d=config.include_1d
    )
    g = config.grid
    corners = torch.tensor(
        list(itertools.product((g.lo, g.hi), repeat=g.dims)), dtype=torch.float64
    )
    for name, w in perturbed_parameters(theta, directions, corners).items():
        if not bool(torch.isfinite(w).all()):
            raise ConfigError(
                f"--range {g.lo:.8g}:{g.hi:.8g}: the weights of {run.id} ({name}) overflow "
                "float32 at the grid's ends; use a smaller range such as -1:1"
            )
    x = batches[0][0]
    image, images = int(x.shape[-1]), int(x.shape[0])
    net = run.config.model.for_data(in_channels=int(x.shape[1]))
    chunk = min(config.points_per_batch, g.points**g.dims)
    params = sum(w.numel() for w in theta.values())
    weights = PERTURBED_COPIES * FLOAT_BYTES * params * chunk
    need = weights + forward_bytes(net, image, chunk * images)
    if config.sharpness:  # Hessian-vector products: a backward pass through a backward pass
        need = max(need, estimate(net, image, images).total)
    check_memory(
        need,
        f"the landscape of {run.id}",
        "use a smaller --points-per-batch or --batch-size",
        f" ({chunk} weight points of {params:,} parameters, evaluated on {images} images "
        f"at {image}x{image} at once)",
    )


def run_landscape(config: LandscapeConfig) -> LandscapeResult:
    """Select the study's models, compute (or resume) their slices and sharpness, draw figures.

    A selected run whose checkpoint is missing, damaged or another run's is skipped with a
    note; ConfigError when no selected run could be read (nothing is written then).
    """

    config.validate()
    store = open_study(config.study_dir, "landscape")
    selection: Selection = select_runs(store.runs(), config.selection)
    device = resolve_device(config.device)
    data = DataCache(config.limit_data, config.batch_size, device)
    for run in selection.runs:  # refused before anything is written
        check_landscape_fits(config, run, device, data)
    out = store.layout.landscape  # made by the first file written into it
    models, notes = [], list(selection.notes)
    for run in selection.runs:
        try:
            models.append(_one_model(config, store, run, device, out, data))
        except RunUnreadable as err:
            notes.append(str(err))
    if not models:
        raise ConfigError(" / ".join(notes[-len(selection.runs) :]))
    notes += [f"{m.run.id}: {m.note}" for m in models if m.note]
    images = sorted({m.data for m in models})
    settings = {
        "study_dir": str(store.dir),
        "dims": config.dims,
        "range": [config.lo, config.hi],
        "points": config.grid.points,
        "limit_data": config.limit_data,
        "images": images,
        "batch_size": config.batch_size,
        "direction_seed": config.direction_seed,
        "include_1d_params": config.include_1d,
        "sharpness": asdict(config.sharpness_config) if config.sharpness else None,
        "selection": config.selection.describe(selection.swept),
        "depths": selection.depths,
        "schemes": selection.schemes,
    }
    figures = draw_figures(models, selection.depths, config.dims, out, surface=config.surface)
    write_landscape_section(store.dir)
    return LandscapeResult(settings, models, figures, notes)


def config_from_options(
    study_dir: str | Path,
    *,
    depth: str | None = None,
    orders: str | None = None,
    solvers: str | None = None,
    lr: str | float | None = None,
    seed: str | int | None = None,
    where: tuple[str, ...] = (),
    range_: str = "-1:1",
    limit_data: str | int | None = "1024",
    power_iters: int = 20,
    trace_probes: int = 10,
    **options: object,
) -> LandscapeConfig:
    """A LandscapeConfig from command-line strings ("8,20", "1,2,4", "-1:1", "all")."""
    lo, hi = parse_range(range_)
    config = LandscapeConfig(
        study_dir=str(study_dir),
        selection=parse_selection(depth, orders, solvers, lr, seed, where),
        lo=lo,
        hi=hi,
        limit_data=parse_limit(limit_data),
        sharpness_config=SharpnessConfig(power_iters=power_iters, trace_probes=trace_probes),
        **options,  # type: ignore[arg-type]
    )
    config.validate()
    return config


def summary_table(result: LandscapeResult):
    """A rich Table: one row per model (loss/acc at 0, sharpness)."""
    rows = []
    for m in result.models:
        d = m.to_dict()
        sh = d["sharpness"] or {}
        rows.append([
            d["run_id"], f"{d['loss_at_0']:.4f}", f"{100 * d['acc_at_0']:.2f}%",
            f"{sh['lambda_max']:.4g}" if sh else "-", f"{sh['trace']:.4g}" if sh else "-",
            d["eval_mode"],
        ])  # fmt: skip
    return rich_table(
        ("run", "loss at 0", "acc at 0", "lambda_max", "trace", "evaluation"),
        rows,
        title=f"loss landscape ({result.settings['dims']}D, "
        f"{result.settings['points']} points per axis)",
        caption="images: " + "; ".join(result.settings["images"]),
        left=("run", "evaluation"),
    )
