"""``odenet landscape``: loss-surface slices and sharpness of a study's trained models.

For each selected run (a depth x scheme cell of the study, at one lr and seed) this loads the
trained model, takes a fixed subset of the training split (the first N images, normalised, no
augmentation), and computes

* a 1D or 2D slice along filter-normalised random directions (odenet.studies.directions),
  evaluated many points per data pass (odenet.studies.slices), stored and resumable under
  ``<study>/landscape/<key>.npz`` with its settings in ``<key>.json``;
* the top Hessian eigenvalue and a Hutchinson trace (odenet.studies.sharpness), stored in the
  study database's ``sharpness`` table;

then draws the figures (odenet.studies.landscape_plots). The runs are chosen by
``odenet.studies.landscape_select.select_runs``: one finished run per (depth, scheme) cell.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from odenet.data.loader import resolve_device
from odenet.errors import ConfigError
from odenet.studies.directions import make_directions, trained_parameters
from odenet.studies.landscape_select import Selection, select_runs
from odenet.studies.sharpness import (
    SharpnessConfig,
    model_sharpness,
    stored_sharpness,
    write_sharpness,
)
from odenet.studies.slices import (
    GridSpec,
    SliceEvaluator,
    SliceResult,
    compute_slice,
    slice_key,
)
from odenet.studies.store import RunRecord, Store

DEFAULT_POINTS = {1: 51, 2: 25}


@dataclass(frozen=True)
class LandscapeConfig:
    """What to slice and how. Selection fields left None mean "everything the study has"."""

    study_dir: str  # a study directory (holds study.sqlite and runs/)
    depths: tuple[int, ...] | None = None  # None: every depth with finished runs
    orders: tuple[int, ...] = ()  # RK orders (1 euler, 2 heun, 3 rk3, 4 rk4) to include
    solvers: tuple[str, ...] = ()  # more registry names; orders and solvers empty: all schemes
    lr: float | None = None  # None: per scheme and depth, the best lr by mean test accuracy
    seed: int | None = None  # None: the smallest seed trained at the chosen lr
    dims: int = 1  # 1: L(theta + a d); 2: L(theta + a d1 + b d2)
    points: int | None = None  # per axis; None: 51 (1D) or 25 (2D)
    lo: float = -1.0  # grid range start (--range A:B)
    hi: float = 1.0  # grid range end
    limit_data: int | None = 1024  # first N training images (None: the whole split)
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
        if self.surface and self.dims != 2:
            raise ConfigError("--surface needs --dims 2")
        if self.device not in ("auto", "cpu", "cuda"):
            raise ConfigError(f"unknown device {self.device!r}; expected one of: auto, cpu, cuda")
        self.sharpness_config.validate()


def parse_range(text: str) -> tuple[float, float]:
    """'A:B' -> (A, B) with A < B; ConfigError otherwise."""
    parts = str(text).split(":")
    try:
        lo, hi = (float(p) for p in parts)
    except ValueError:
        raise ConfigError(f"--range: {text!r} is not A:B (e.g. -1:1)") from None
    if not lo < hi:
        raise ConfigError(f"--range: {text!r} needs A < B (e.g. -1:1)")
    return lo, hi


def parse_limit(text: str | int | None) -> int | None:
    """'all' (or None) -> None; a positive integer -> itself; ConfigError otherwise."""
    if text is None or str(text).strip().lower() == "all":
        return None
    try:
        n = int(str(text).strip())
    except ValueError:
        raise ConfigError(f"--limit-data: {text!r} is not a positive integer or 'all'") from None
    if n < 1:
        raise ConfigError(f"--limit-data: {n} is not a positive integer or 'all'")
    return n


@dataclass
class ModelLandscape:
    """One model's slice and sharpness."""

    run: RunRecord
    slice: SliceResult
    eval_mode: str  # how the slice was evaluated: "vmap" | "loop"
    origin: tuple[float, float] | None = None  # (loss, acc) at theta when 0 is off the grid
    sharpness: dict | None = None  # {"lambda_max", "trace", ...}; None when not computed
    note: str | None = None

    def to_dict(self) -> dict:
        loss0, acc0 = self.origin if self.origin is not None else self.slice.at_origin()
        return {
            "run_id": self.run.id,
            "depth": self.run.depth,
            "solver": self.run.solver,
            "lr": self.run.lr,
            "seed": self.run.seed,
            "test_acc": self.run.test_acc,
            "loss_at_0": loss0,
            "acc_at_0": acc0,
            "eval_mode": self.eval_mode,
            "sharpness": self.sharpness,
            "slice_file": str(self.slice.path),
            "note": self.note,
        }


@dataclass
class LandscapeResult:
    settings: dict
    models: list[ModelLandscape]
    figures: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "settings": self.settings,
            "models": [m.to_dict() for m in self.models],
            "figures": [str(p) for p in self.figures],
            "notes": self.notes,
        }


def data_subset(run: RunRecord, limit: int | None, batch_size: int, device: torch.device):
    """The first ``limit`` training images of the run's dataset as fixed, normalised batches."""
    from odenet.data.datasets import load_dataset
    from odenet.data.loader import DeviceLoader

    ds = load_dataset(run.config.dataset, run.config.data_dir, progress=False)
    n = len(ds.train_labels) if limit is None else min(limit, len(ds.train_labels))
    loader = DeviceLoader(
        ds.train_images[:n],
        ds.train_labels[:n],
        batch_size=batch_size,
        mean=ds.mean,
        std=ds.std,
        device=device,
        train=False,
        augment="none",
    )
    return list(loader), n


def slice_settings(config: LandscapeConfig, run: RunRecord, count: int) -> dict:
    """Everything that determines a slice's values (the key is a hash of it)."""
    g = config.grid
    return {
        "run_id": run.id,
        "dims": g.dims,
        "range": [g.lo, g.hi],
        "points": g.points,
        "limit_data": count,
        "direction_seed": config.direction_seed,
        "include_1d_params": config.include_1d,
    }


def _write_json(path: Path, obj: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=2, sort_keys=True))
    os.replace(tmp, path)


def _one_model(
    config: LandscapeConfig, store: Store, run: RunRecord, device, out: Path, data_cache: dict
) -> ModelLandscape:
    from odenet.training import load_trained

    model, _ = load_trained(run.run_dir, device=device)
    key = (run.config.dataset, run.config.data_dir)
    if key not in data_cache:
        data_cache[key] = data_subset(run, config.limit_data, config.batch_size, device)
    batches, count = data_cache[key]
    settings = slice_settings(config, run, count)
    name = slice_key(settings)
    _write_json(out / f"{name}.json", settings)
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
    landscape = ModelLandscape(run, result, evaluator.mode, note=evaluator.note)
    if not (config.grid.axis() == 0.0).any():  # the trained point is not on the grid
        loss, acc = evaluator.evaluate(
            trained_parameters(model), directions, torch.zeros(1, config.dims, dtype=torch.float64)
        )
        landscape.origin = (float(loss[0]), float(acc[0]))
    if config.sharpness:
        seed = config.direction_seed
        values = stored_sharpness(store, run.id, count, seed)
        if values is None:
            cfg = SharpnessConfig(**{**asdict(config.sharpness_config), "seed": seed})
            values = model_sharpness(model, batches, cfg).to_dict()
            write_sharpness(store, run.id, count, seed, values)
        else:  # the table's key is (run, images, seed): an earlier result is reused
            values["cached"] = True
        landscape.sharpness = values
    return landscape


def run_landscape(config: LandscapeConfig) -> LandscapeResult:
    """Select the study's models, compute (or resume) their slices and sharpness, draw figures."""
    from odenet.studies.landscape_plots import draw_figures

    config.validate()
    store = Store.open(config.study_dir)
    selection: Selection = select_runs(
        store.runs(),
        depths=config.depths,
        orders=config.orders,
        solvers=config.solvers,
        lr=config.lr,
        seed=config.seed,
    )
    device = resolve_device(config.device)
    out = store.dir / "landscape"
    out.mkdir(parents=True, exist_ok=True)
    cache: dict = {}
    models = [_one_model(config, store, run, device, out, cache) for run in selection.runs]
    settings = {
        "study_dir": str(store.dir),
        "dims": config.dims,
        "range": [config.lo, config.hi],
        "points": config.grid.points,
        "limit_data": config.limit_data,
        "direction_seed": config.direction_seed,
        "include_1d_params": config.include_1d,
        "depths": selection.depths,
        "schemes": selection.schemes,
    }
    notes = list(selection.notes) + [f"{m.run.id}: {m.note}" for m in models if m.note]
    figures = draw_figures(
        models, selection.schemes, selection.depths, config.dims, out, surface=config.surface
    )
    return LandscapeResult(settings, models, figures, notes)


def config_from_options(
    study_dir: str | Path,
    *,
    depth: str | None = None,
    orders: str | None = None,
    solvers: str | None = None,
    range_: str = "-1:1",
    limit_data: str | int | None = "1024",
    power_iters: int = 20,
    trace_probes: int = 10,
    **options: object,
) -> LandscapeConfig:
    """A LandscapeConfig from command-line strings ("8,20", "1,2,4", "-1:1", "all")."""
    from odenet.studies.spec import parse_list

    lo, hi = parse_range(range_)
    config = LandscapeConfig(
        study_dir=str(study_dir),
        depths=parse_list(depth, int, "depth") if depth else None,
        orders=parse_list(orders, int, "orders") if orders else (),
        solvers=parse_list(solvers, str, "solvers") if solvers else (),
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
    from rich.table import Table

    table = Table(
        title=f"loss landscape ({result.settings['dims']}D, "
        f"{result.settings['points']} points per axis)"
    )
    for col in ("run", "loss at 0", "acc at 0", "lambda_max", "trace", "evaluation"):
        table.add_column(col, justify="left" if col in ("run", "evaluation") else "right")
    for m in result.models:
        d = m.to_dict()
        sh = d["sharpness"] or {}
        table.add_row(
            d["run_id"],
            f"{d['loss_at_0']:.4f}",
            f"{100 * d['acc_at_0']:.2f}%",
            f"{sh['lambda_max']:.4g}" if sh else "-",
            f"{sh['trace']:.4g}" if sh else "-",
            d["eval_mode"],
        )
    return table
