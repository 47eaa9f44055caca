"""The public entry point of one run: ``train(config)`` -> TrainResult.

One run = SGD (momentum, optional Nesterov, weight decay on conv/linear weights only) with a
per-step lr schedule, cross-entropy with optional label smoothing, evaluation on the test
split after every epoch. Reproducibility: the model is initialised from
``torch.Generator().manual_seed(seed)``; shuffling and augmentation draw from the loaders'
generator, seeded with ``device.data_seed(seed)``; torch's global RNG is never used. With
``out_dir`` a checkpoint is written after every epoch, and a run found there is resumed: on
CPU the resumed run ends bitwise equal to one that never stopped. The loop itself is the
engine's (odenet.training.engine), shared with ``train_fused``: a run is a group of one.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from odenet.data import load_dataset
from odenet.errors import ConfigError
from odenet.training import checkpoint as ckpt
from odenet.training.config import TrainConfig
from odenet.training.device import resolve
from odenet.training.engine import build_member, train_members
from odenet.training.results import TrainCallbacks, TrainResult
from odenet.training.steps import evaluate

if TYPE_CHECKING:
    from odenet.data import ArrayDataset

__all__ = ["evaluate", "train"]


def train(
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    dataset: ArrayDataset | None = None,
    callbacks: TrainCallbacks | None = None,
    execution: dict | None = None,
) -> TrainResult:
    """Train one model as ``config`` says; never raises on divergence (status "diverged").

    dataset: an already loaded ArrayDataset whose ``name`` is ``config.dataset`` (None: load
    it with ``odenet.data.load_dataset(config.dataset, config.data_dir)``).
    out_dir: checkpoint after every epoch, resume from a checkpoint found there, write
    result.json at the end; a finished run found there is returned as it is. A checkpoint or
    result of a different config there raises ConfigError.
    execution: what trains the run (a study's executor, e.g. ``{"executor": "sequential",
    "members": 1}``), recorded as ``provenance["execution"]`` of the result and its
    result.json; None: not recorded.
    """

    config.validate()
    callbacks = callbacks if callbacks is not None else TrainCallbacks()
    out = Path(out_dir) if out_dir is not None else None
    if out is not None and (stored := ckpt.load_result(out)) is not None:
        ckpt.check_same_config(stored.get("provenance", {}).get("config", {}), config, out)
        return TrainResult.from_dict(stored)
    placement = resolve(config)
    if dataset is None:
        dataset = load_dataset(config.dataset, config.data_dir)
    elif dataset.name != config.dataset:
        raise ConfigError(
            f"dataset {dataset.name!r} was passed for a config naming {config.dataset!r}: "
            "set TrainConfig.dataset to the dataset's name"
        )
    member = build_member(config, out, callbacks, dataset, placement)
    (result,) = train_members([member], placement, execution)
    return result
