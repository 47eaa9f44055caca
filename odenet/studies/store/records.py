"""A study's run as stored: ``RunRecord``, read from a row of the ``runs`` table."""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from odenet.training.checkpoint import config_from_dict
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

    def to_dict(self) -> dict:
        """JSON-able summary (config omitted; see ``config``)."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "config"}
        out["run_dir"] = str(self.run_dir)
        return out


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def record_from_row(r: sqlite3.Row, run_dir: Path) -> RunRecord:
    """A RunRecord from one row of the ``runs`` table."""
    return RunRecord(
        id=r["id"],
        depth=r["depth"],
        solver=r["solver"],
        lr=r["lr"],
        seed=r["seed"],
        status=r["status"],
        test_acc=r["test_acc"],
        epochs_done=r["epochs_done"],
        run_dir=run_dir,
        config=config_from_dict(json.loads(r["config"])),
        best_test_acc=r["best_test_acc"],
        train_loss=r["train_loss"],
        diverged_epoch=r["diverged_epoch"],
        params=r["params"],
        extra_params=r["extra_params"],
        seconds=r["seconds"],
        device=r["device"],
        executor=r["executor"],
        error=r["error"],
        started=r["started"],
        finished=r["finished"],
        provenance=json.loads(r["provenance"] or "{}"),
    )
