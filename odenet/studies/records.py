"""A study's run as stored: ``RunRecord``, the type the store reads and the executors run (a floor
below both: neither the store nor the executors import each other for it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from odenet.studies.identity import Axes
from odenet.training.config import TrainConfig


@dataclass(frozen=True)
class RunRecord:
    """One run as stored (read-only snapshot)."""

    id: str  # d{depth}-{scheme}-lr{lr}[-{swept fields}]-s{seed} (odenet.studies.grid)
    depth: int
    solver: str
    lr: float
    seed: int
    status: str  # pending | running | done | diverged | failed
    test_acc: float | None  # last completed epoch's test accuracy (None before the first)
    epochs_done: int
    run_dir: Path  # checkpoint.pt and result.json
    config: TrainConfig
    best_test_acc: float | None = None
    train_loss: float | None = None
    diverged_epoch: int | None = None
    params: int | None = None
    extra_params: int | None = None
    seconds: float | None = None
    device: str | None = None
    executor: str | None = None
    error: str | None = None  # the exception of a failed run
    started: str | None = None  # ISO-8601 UTC
    finished: str | None = None
    provenance: dict = field(default_factory=dict)
    swept: tuple[str, ...] = ()  # the study's swept fields (StudySpec.swept), set by the store

    @property
    def axes(self) -> Axes:
        """The run's identity: its value on every axis of the study (odenet.studies.identity)."""
        return Axes.of_config(self.depth, self.solver, self.lr, self.seed, self.config, self.swept)

    def to_dict(self) -> dict:
        """JSON-able summary (config and the study's swept field names omitted)."""
        skip = ("config", "swept")
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k not in skip}
        out["run_dir"] = str(self.run_dir)
        return out
