"""Rows of the ``runs`` table as RunRecords, and the store's timestamps."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from pathlib import Path

from odenet.studies.records import RunRecord
from odenet.training.checkpoint import config_from_dict


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def record_from_row(r: sqlite3.Row, run_dir: Path, swept: tuple[str, ...] = ()) -> RunRecord:
    """A RunRecord from one row of the ``runs`` table; ``swept``: the study's swept fields."""
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
        swept=swept,
    )
