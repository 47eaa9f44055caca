"""What every analysis reads for a run: its trained model and its OWN training subset.

A run trained with ``limit_train`` saw a fixed random subset of the training split
(``odenet.data.loader.fixed_subset``); an analysis measures the model on exactly those
images, normalised, never augmented, in a fixed order. ``limit_data`` draws N of them
deterministically (a seed-0 permutation of the subset, the drawn indices sorted). The
subset's ``key`` (dataset, sizes, a digest of the indices) enters every cache key, and its
``description`` goes into the JSON and the figures. The ODE tests (odenet.analysis.ode_tests)
measure test accuracy instead: on the run's own test subset (``run_test_subset``, its
``limit_test`` images), all of it.

A run whose checkpoint is missing, unreadable or another run's (its stored config differs
from the run's in the study: a width-8 checkpoint in a width-4 run's directory) costs that run
only: ``load_run`` raises ``RunUnreadable`` whose message names the run, what is wrong and
the way to retrain it; the checkpoint is never measured as the run. ``open_study`` opens the
study an analysis writes into (its caches, figures and report section), refusing one it
cannot write before anything is computed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from odenet.data.datasets import load_dataset
from odenet.data.loader import LIMIT_SEED, DeviceLoader, fixed_subset
from odenet.errors import ConfigError, OdenetError
from odenet.nets import ModelConfig, build_from_config
from odenet.studies.store import RunRecord, Store
from odenet.training import load_trained
from odenet.training.checkpoint import (
    CHECKPOINT,
    CheckpointUnreadable,
    config_differences,
    load_checkpoint,
    short_reason,
)

Batch = tuple[Tensor, Tensor]  # x float32 (B, C, H, W) normalised, y int64 (B,)


class RunUnreadable(OdenetError):
    """A selected run that cannot be measured: its checkpoint is missing, damaged or another
    run's, or its network has nothing to measure (the caller skips it with a warning)."""


def open_study(study_dir: str | Path, command: str) -> Store:
    """The study ``command`` (landscape, analyze) measures; ConfigError (exit 2, before
    anything is computed or written) when it cannot be written: the measurements are cached in
    its database and drawn into its folder."""
    store = Store(study_dir)
    if store.path.is_file() and store.read_only:  # refused before any connection is made
        raise ConfigError(
            f"the study {str(store.dir)!r} is read-only, and {command} writes into it (cached "
            f"measurements, figures, its report section); copy the study directory somewhere "
            f"writable and run {command} on the copy"
        )
    return Store.open(study_dir)


@dataclass(frozen=True)
class DataSubset:
    """Which training images an analysis uses (indices into the dataset's training split)."""

    indices: Tensor  # int64, sorted
    key: dict  # JSON-able; determines the images exactly (goes into cache keys)
    description: str  # e.g. "fashion-mnist train: 512 drawn (seed 0) from the run's ..."

    @property
    def count(self) -> int:
        return int(self.indices.numel())


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


def run_subset(
    dataset: str, split_size: int, limit_train: int | None, limit_data: int | None
) -> DataSubset:
    """The run's own training subset (``limit_train`` of ``split_size``), ``limit_data`` of it.

    limit_data None (or >= the subset's size): the whole subset.
    """
    if limit_data is not None and limit_data < 1:
        raise ConfigError(f"--limit-data must be a positive integer or 'all', got {limit_data}")
    own = fixed_subset(split_size, limit_train, "limit_train")
    if own is None:
        own = torch.arange(split_size)
        trained = f"the whole training split ({split_size} images) the run trained on"
    else:
        trained = (
            f"the run's training subset of {own.numel()} of {split_size} images "
            f"(--limit-train, fixed seed {LIMIT_SEED})"
        )
    if limit_data is None or limit_data >= own.numel():
        indices, used = own, f"all of {trained}"
    else:
        gen = torch.Generator().manual_seed(LIMIT_SEED)
        pick = torch.randperm(own.numel(), generator=gen)[:limit_data]
        indices = own[pick].sort().values
        used = f"{limit_data} drawn (seed {LIMIT_SEED}) from {trained}"
    return _subset(dataset, "train", split_size, limit_train, indices, used)


def run_test_subset(dataset: str, split_size: int, limit_test: int | None) -> DataSubset:
    """The run's own test subset: the ``limit_test`` of ``split_size`` test images it was
    tested on (``fixed_subset``, as training chose them), or the whole test split."""
    own = fixed_subset(split_size, limit_test, "limit_test")
    if own is None:
        own, used = torch.arange(split_size), f"the whole test split ({split_size} images)"
    else:
        used = (
            f"the run's test subset of {own.numel()} of {split_size} images "
            f"(--limit-test, fixed seed {LIMIT_SEED})"
        )
    return _subset(dataset, "test", split_size, limit_test, own, used)


def _subset(
    dataset: str, split: str, split_size: int, limit: int | None, indices: Tensor, used: str
) -> DataSubset:
    """``indices`` of ``split`` with their key (the run's limit_<split>, a digest of them)."""
    digest = hashlib.sha256(indices.numpy().tobytes()).hexdigest()[:16]
    key = {
        "dataset": dataset,
        "split": split,
        "split_size": split_size,
        f"limit_{split}": limit,
        "count": int(indices.numel()),
        "indices_sha256": digest,
    }
    return DataSubset(indices, key, f"{dataset} {split}: {used}")


class DataCache:
    """Loads each (dataset, data_dir) once and builds each run's subset batches once."""

    def __init__(self, limit_data: int | None, batch_size: int, device: torch.device) -> None:
        self.limit_data = limit_data
        self.batch_size = batch_size
        self.device = device
        self._datasets: dict = {}
        self._batches: dict = {}

    def batches(self, run: RunRecord) -> tuple[DataSubset, list[Batch]]:
        """The run's subset and its fixed, normalised batches on the device."""
        config = run.config
        ds = self._dataset(run)
        key = (config.dataset, config.data_dir, "train", config.limit_train)
        if key not in self._batches:
            subset = run_subset(
                config.dataset, len(ds.train_labels), config.limit_train, self.limit_data
            )
            self._batches[key] = (subset, self._load(ds, "train", subset))
        return self._batches[key]

    def test_batches(self, run: RunRecord) -> tuple[DataSubset, list[Batch]]:
        """The run's test subset (``run_test_subset``) and its fixed, normalised batches."""
        config = run.config
        ds = self._dataset(run)
        key = (config.dataset, config.data_dir, "test", config.limit_test)
        if key not in self._batches:
            subset = run_test_subset(config.dataset, len(ds.test_labels), config.limit_test)
            self._batches[key] = (subset, self._load(ds, "test", subset))
        return self._batches[key]

    def _dataset(self, run: RunRecord):

        where = (run.config.dataset, run.config.data_dir)
        if where not in self._datasets:
            self._datasets[where] = load_dataset(*where, progress=False)
        return self._datasets[where]

    def _load(self, ds, split: str, subset: DataSubset) -> list[Batch]:

        loader = DeviceLoader(
            getattr(ds, f"{split}_images")[subset.indices],
            getattr(ds, f"{split}_labels")[subset.indices],
            batch_size=self.batch_size,
            mean=ds.mean,
            std=ds.std,
            device=self.device,
            train=False,
            augment="none",
        )
        return list(loader)


def checkpoint_digest(run_dir: Path) -> str:
    """sha256 (first 16 hex digits) of the run's checkpoint file: part of every cache key,
    so that a retrained run (``odenet reset``) is never answered from the old cache."""
    h = hashlib.sha256()
    with open(Path(run_dir) / "checkpoint.pt", "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def retrain_hint(run: RunRecord) -> str:
    study = run.run_dir.parent.parent
    return (
        f"to retrain it: `odenet reset {study} {run.id}`, then the study's `odenet study` "
        "command again"
    )


def load_run(run: RunRecord, device: torch.device) -> tuple[nn.Module, str]:
    """(model in eval mode on ``device``, checkpoint digest); RunUnreadable when the checkpoint
    is missing, damaged, another run's (its config differs from the run's stored config) or
    does not fit its own network."""
    path = run.run_dir / CHECKPOINT
    try:
        digest = checkpoint_digest(run.run_dir)
        model, stored = load_trained(run.run_dir, device=device)
    except FileNotFoundError:
        raise RunUnreadable(
            f"skipped {run.id}: no checkpoint in {run.run_dir}; {retrain_hint(run)}"
        ) from None
    except CheckpointUnreadable as err:
        raise RunUnreadable(
            f"skipped {run.id}: its checkpoint {err.path} cannot be read ({err.reason}); "
            f"{retrain_hint(run)}"
        ) from None
    except (OdenetError, OSError, RuntimeError, KeyError, TypeError, ValueError) as err:
        raise RunUnreadable(
            f"skipped {run.id}: its checkpoint {path} does not hold a network of its own config "
            f"({short_reason(err)}); {retrain_hint(run)}"
        ) from None
    diff = config_differences(stored, run.config)
    if diff:
        shown = "; ".join(f"{k} {a!r} there, {b!r} in the study" for k, a, b in diff[:4])
        more = f"; and {len(diff) - 4} more" if len(diff) > 4 else ""
        raise RunUnreadable(
            f"skipped {run.id}: its checkpoint {path} is of another configuration ({shown}"
            f"{more}); {retrain_hint(run)}"
        )
    return model, digest


def initial_model(run: RunRecord, device: torch.device) -> nn.Module:
    """The run's network at its initial weights, rebuilt from its seed as training built it
    (``build_from_config(model_config, Generator().manual_seed(seed))``), eval mode."""
    state = load_checkpoint(run.run_dir)
    if state is None:
        raise RunUnreadable(f"skipped {run.id}: no checkpoint in {run.run_dir}")
    model = build_from_config(
        ModelConfig(**state["model_config"]), torch.Generator().manual_seed(run.config.seed)
    )
    return model.to(device).eval()
