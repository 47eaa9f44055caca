"""The notebook API: everything `odenet study` and `odenet report` do, one call each.

>>> from odenet.studies import StudySpec, run_study, load_study, report_study
>>> spec = StudySpec(orders=(1, 2), depths=(8, 14), lrs=(0.1, 0.4), epochs=2,
...                  dataset="synthetic", limit_train=256)
>>> data = run_study(spec, "runs/demo")     # trains pending runs; resumable
>>> data.table                               # RobustnessRows per (depth, scheme)
>>> load_study("runs/demo").run_rows()       # the runs as plain dicts
>>> load_study("runs/demo").dataframe("epochs")  # pandas: runs, epochs, steps, analysis
>>> report_study("runs/demo")                # figures + report.md in the directory
"""

from __future__ import annotations

import os
import platform
import socket
from dataclasses import dataclass
from pathlib import Path

import torch

from odenet import __version__
from odenet.data import load_dataset
from odenet.errors import ConfigError, DataError
from odenet.nets import describe
from odenet.studies.executors import RayConfig, make_executor
from odenet.studies.grid import RunSpec
from odenet.studies.live import make_observer
from odenet.studies.report import StudyData, load_study_data, write_report
from odenet.studies.runner import Observers, StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import DB_NAME, Store
from odenet.studies.store.volumes import check_local
from odenet.studies.tensorboard import TensorBoardObserver, check_tensorboard
from odenet.training.checkpoint import CHECKPOINT, RESULT
from odenet.training.config import TrainConfig

# (in_channels, image_size, num_classes) for a dry run when a dataset is not on disk.
_KNOWN_SHAPES = {
    "cifar10": (3, 32, 10),
    "cifar100": (3, 32, 100),
    "fashion-mnist": (1, 28, 10),
    "mnist": (1, 28, 10),
}


@dataclass(frozen=True)
class PlanRow:
    """One model of a study grid with its budget (one row per (depth, scheme))."""

    depth: int
    solver: str
    runs: int  # lrs x swept values x seeds
    params: int  # trainable parameters, scheme coefficients excluded
    extra_params: int  # learnable scheme coefficients (lm's k)
    flops: int  # one image forward (torch.utils.flop_counter)
    matched: bool  # same params and conv FLOPs as the first scheme at this depth


def check_out_dir(out: str | Path | None, holds: str = "study") -> Path:
    """The directory of a study (``holds="study"``) or of one training run (``"run"``: the
    ``--out`` of ``odenet train``), checked to be creatable/writable and not the other kind's:
    a study never mixes into a run's checkpoint directory, nor a run's checkpoint into a
    study's root. Creates nothing (ConfigError)."""
    if holds not in ("study", "run"):
        raise ValueError(f"unknown holds={holds!r}; expected 'study' or 'run'")
    if out is None:
        raise ConfigError("--out DIR is required to run a study (the study directory)")
    if not str(out).strip():  # Path("") is "." : the working directory, never meant
        raise ConfigError(
            f"--out {str(out)!r} is an empty path; give a directory (--out . for this one)"
        )
    path = Path(out).expanduser().absolute()
    if path.exists() and not path.is_dir():
        raise ConfigError(f"--out {str(out)!r} exists and is not a directory; choose another --out")
    if holds == "study" and any((path / name).exists() for name in (CHECKPOINT, RESULT)):
        raise ConfigError(
            f"--out {str(out)!r} holds a training run ({CHECKPOINT}, {RESULT} of `odenet train "
            "--out`), not a study; choose another --out"
        )
    if holds == "run" and (path / DB_NAME).exists():
        raise ConfigError(
            f"--out {str(out)!r} holds a study ({DB_NAME}); a training run needs a directory "
            "of its own; choose another --out"
        )
    parent = path
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(
            f"--out {str(out)!r}: {str(parent)!r} is not writable; choose another --out"
        )
    return path


def plan_study(spec: StudySpec) -> tuple[list[RunSpec], list[PlanRow]]:
    """The grid and each model's parameters and FLOPs (the dry run). Writes nothing."""
    spec.check_runs_differ()
    runs = list(spec.runs)
    channels, size, classes = _shape(spec.base)
    rows: list[PlanRow] = []
    for depth in spec.depths:
        ref = None
        for solver in spec.schemes:
            first = next(r for r in runs if r.depth == depth and r.solver == solver)
            model = first.config.model.for_data(channels, classes)
            summary = describe(model, image_size=size)
            key = (summary.params, summary.conv_linear_flops)
            ref = ref or key
            n = sum(r.depth == depth and r.solver == solver for r in runs)
            rows.append(
                PlanRow(
                    depth,
                    solver,
                    n,
                    summary.params,
                    summary.extra_params,
                    summary.flops,
                    key == ref,
                )
            )
    return runs, rows


def run_study(
    spec: StudySpec,
    out: str | Path,
    *,
    quiet: bool = False,
    observer: StudyObserver | None = None,
    retry_failed: bool = True,
    wait: bool = True,
    ray: RayConfig | None = None,
    allow_network_fs: bool = False,
) -> StudyData:
    """Run (or resume) the study ``spec`` in directory ``out``; return its data and table.

    Checks everything not checked when ``spec`` was made (--out, the dataset, an existing
    study's config) before writing anything. Finished runs are skipped; interrupted ones
    resume from their checkpoints; failed ones are retried when ``retry_failed``. Progress
    goes to ``observer`` (default: a live view on a terminal, lines otherwise, nothing when
    ``quiet``), and with ``spec.tensorboard`` to the runs' TensorBoard event files
    (``DIR/tensorboard/<run id>/``: odenet.studies.tensorboard). ``ray``: where the ``ray``
    executor runs (``odenet.studies.executors.ray.RayConfig``). This process's runs are held
    under leases with ``spec.lease_grace`` (``odenet.studies.store.leases``). A directory on a
    network file system is refused unless ``allow_network_fs`` (``odenet.studies.store.volumes``).
    """

    if spec.tensorboard:
        check_tensorboard()  # before anything runs
    path = check_out_dir(out)
    check_local(path, allow_network_fs)
    if Store.exists(path):
        Store.open(path).check_spec(spec)
    else:
        spec.check_runs_differ()
    base = spec.base
    dataset = load_dataset(base.dataset, base.data_dir, progress=not quiet)
    for r in spec.runs:  # within the dataset's splits, and fitting in memory at its image size
        r.config.check_dataset(dataset)
    executor = make_executor(  # checks the device
        spec.executor, base.device, spec.fuse_max, dataset, base.cuda_graphs, ray
    )
    store = Store.create(path, spec, _versions())
    observer = observer or make_observer(quiet)
    if spec.tensorboard:
        observer = Observers(TensorBoardObserver(store), observer)
    run_pending(
        store, executor, observer, retry_failed=retry_failed, wait=wait,
        lease_grace=spec.lease_grace,
    )  # fmt: skip
    return load_study_data(path)


def load_study(study_dir: str | Path) -> StudyData:
    """A study's runs, per-epoch metrics and robustness table (reads files only)."""
    return load_study_data(study_dir)


def report_study(study_dir: str | Path) -> StudyData:
    """Write the figures (PNG + SVG) and report.md into ``study_dir``; return the data."""
    return write_report(study_dir)


def _shape(base: TrainConfig) -> tuple[int, int, int]:

    try:
        ds = load_dataset(base.dataset, base.data_dir, download=False, progress=False)
        return ds.in_channels, ds.image_size, ds.num_classes
    except DataError:
        if base.dataset in _KNOWN_SHAPES:  # not downloaded yet: its shape is known
            return _KNOWN_SHAPES[base.dataset]
        raise


def _versions() -> dict[str, str]:

    return {
        "odenet_version": __version__,
        "torch_version": torch.__version__,
        "python": platform.python_version(),
        "host": socket.gethostname(),
    }
