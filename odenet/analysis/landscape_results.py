"""What ``odenet landscape`` measured: one model's slice and sharpness (``ModelLandscape``) and
the whole result (``LandscapeResult``), below both the measurement (odenet.analysis.landscape)
and its figures (odenet.analysis.landscape_plots), which read them."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from odenet.analysis.slices import SliceResult
from odenet.studies.store import RunRecord


@dataclass
class ModelLandscape:
    """One model's slice and sharpness."""

    run: RunRecord
    slice: SliceResult
    eval_mode: str  # how the slice was evaluated: "vmap" | "loop"
    data: str  # which images: DataSubset.description
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
            **dict(self.run.axes.swept),
            "test_acc": self.run.test_acc,
            "loss_at_0": loss0,
            "acc_at_0": acc0,
            "data": self.data,
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
