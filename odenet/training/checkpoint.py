"""Checkpoints and results on disk: atomic writes, config checks, and ``load_trained``.

A run directory holds

* ``checkpoint.pt``: written after every completed epoch (the atomic writer, odenet.files:
  a crash never leaves a torn file). Format 2: a dict with ``format``, ``config`` (asdict of
  the TrainConfig; flat in earlier versions, see ``config_from_dict``), ``model_config``
  (asdict of the model's ModelConfig, its data shape resolved), ``epoch`` (completed
  epochs), ``step`` (optimizer steps taken; the lr schedule is a function of it), ``model``
  (state dict), ``momentum`` (parameter name -> SGD momentum buffer; empty for momentum 0),
  ``history`` (EpochMetrics dicts) and ``rng`` (the state of every generator the run draws
  from: the train and test loaders'). The library never draws from torch's global RNG, so
  that is neither saved nor restored. Format 1 (torch optimizer and LambdaLR state dicts
  instead of ``step`` and ``momentum``) is still read (``momentum_of``).
* ``result.json``: TrainResult.to_dict(), written when the run finishes (done or diverged).

A run resumes from its checkpoint (``resume_state``); one that cannot be read (a torn copy, a
truncated file) is treated like a missing one: the run starts over, with one warning line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from odenet.errors import ConfigError, DataError
from odenet.files import atomic_write, atomic_write_text
from odenet.nets import build_from_config
from odenet.nets.config import ModelConfig
from odenet.training.config import SETTINGS, TrainConfig

if TYPE_CHECKING:
    from odenet.nets import ResNet

log = logging.getLogger("odenet.training")

CHECKPOINT = "checkpoint.pt"
RESULT = "result.json"
FORMAT = 2
READABLE = (1, 2)  # formats load_checkpoint accepts
# Fields that may differ between the run that wrote a checkpoint and the one resuming it:
# where the data lives does not change what is computed.
_IGNORED_ON_RESUME = ("data_dir", "cuda_graphs", "log_every")  # where data lives / how the
# step runs / how often its loss is logged


def save_checkpoint(out_dir: str | Path, payload: dict[str, Any]) -> Path:
    """Write ``payload`` (tensors, dicts, lists, numbers, strings) to out_dir/checkpoint.pt."""
    return atomic_write(
        Path(out_dir) / CHECKPOINT, lambda f: torch.save({"format": FORMAT, **payload}, f)
    )


class CheckpointUnreadable(DataError):
    """A checkpoint file that exists but cannot be loaded: torn, damaged or not odenet's."""

    def __init__(self, path: Path, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"cannot read checkpoint {path} ({reason}); delete it to start over")


def load_checkpoint(out_dir: str | Path) -> dict[str, Any] | None:
    """The checkpoint in out_dir (tensors on CPU), or None when there is none;
    CheckpointUnreadable when it cannot be loaded."""
    path = Path(out_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a torn or foreign file: say which and how to recover
        raise CheckpointUnreadable(path, f"damaged or truncated: {short_reason(err)}") from None
    if not isinstance(state, dict) or state.get("format") not in READABLE:
        raise CheckpointUnreadable(path, f"not an odenet checkpoint (format {FORMAT})")
    return state


def short_reason(err: BaseException) -> str:
    """``err`` in a few whole words: its type and the first sentence of its message when that
    is short (torch follows a failed load with paragraphs of advice), else its type alone."""
    first = str(err).strip().split("\n")[0].split(". ")[0].strip().rstrip(".")
    name = type(err).__name__
    return f"{name}: {first}" if first and len(first) <= 100 else name


def resume_state(out_dir: str | Path) -> dict[str, Any] | None:
    """The checkpoint to resume the run in out_dir from, or None to start it from its first
    epoch: there is none, or one that cannot be read (torn, truncated, not an odenet
    checkpoint: ``CheckpointUnreadable``), which is said in one warning line and replaced by
    the first epoch's."""
    try:
        return load_checkpoint(out_dir)
    except CheckpointUnreadable as err:
        log.warning(
            "checkpoint %s cannot be read (%s); training the run from its first epoch",
            err.path, err.reason,
        )  # fmt: skip
        return None


def momentum_of(state: dict[str, Any], params: list[tuple[str, torch.Tensor]]) -> dict[str, Any]:
    """The momentum buffers (name -> tensor) of a loaded checkpoint of either format.

    params: the run's trainable (name, parameter) pairs in ``named_parameters`` order. Format 1
    holds torch.optim.SGD's state dict, indexed in the order of its two parameter groups
    (ndim > 1 with weight decay, then the rest).
    """
    if state["format"] >= 2:
        return dict(state["momentum"])
    order = [n for n, p in params if p.ndim > 1] + [n for n, p in params if p.ndim <= 1]
    return {order[int(i)]: s["momentum_buffer"] for i, s in state["optimizer"]["state"].items()
            if s.get("momentum_buffer") is not None}  # fmt: skip


def save_result(out_dir: str | Path, result: dict[str, Any]) -> Path:
    """Write a result dict as out_dir/result.json (atomically)."""
    path = Path(out_dir) / RESULT
    return atomic_write_text(path, json.dumps(result, indent=2, sort_keys=True) + "\n")


def load_result(out_dir: str | Path) -> dict[str, Any] | None:
    """The result.json in out_dir as a dict, or None when there is none."""
    path = Path(out_dir) / RESULT
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise DataError(f"cannot read {path}: {err}; delete it to rerun") from None


def config_differences(there: TrainConfig, config: TrainConfig) -> list[tuple[str, Any, Any]]:
    """(flat name, value in ``there``, value in ``config``) of every setting in which the two
    configs describe different runs (where the data lives, or how a step runs, is no
    difference)."""
    a, b = there.settings(), config.settings()
    return [(k, a[k], v) for k, v in b.items() if k not in _IGNORED_ON_RESUME and a[k] != v]


def check_same_config(stored: dict[str, Any], config: TrainConfig, where: Path) -> None:
    """ConfigError when ``stored`` (an asdict, of any version) describes a different run than
    ``config``; the differences are named by their flat names (``depth``, ``epochs``)."""
    diff = [
        f"{k}: {there!r} there, {now!r} now"
        for k, there, now in config_differences(config_from_dict(stored), config)
    ]
    if diff:
        raise ConfigError(
            f"{where} holds a different run ({'; '.join(diff)}): use another --out directory "
            "or delete it to start over"
        )


def config_from_dict(stored: dict[str, Any]) -> TrainConfig:
    """Rebuild a TrainConfig from its asdict: nested (``"model": {...}``), or flat as earlier
    versions stored it (the model's fields beside the others). A field the writer did not know
    yet gets its default; an unknown one is a DataError."""
    stored = dict(stored)
    nested = stored.pop("model", None)
    if nested is not None and not isinstance(nested, dict):
        raise DataError(f"stored config has a model that is not a dict: {nested!r}")
    model = dict(nested or {})
    own = {f.name for f in dataclasses.fields(TrainConfig)} - {"model"}
    for name in [k for k in stored if k not in own]:  # flat: a model field at the top level
        if name in SETTINGS and SETTINGS[name].in_model and name not in model:
            model[name] = stored.pop(name)
    names = {f.name for f in dataclasses.fields(ModelConfig)}
    unknown = sorted((set(stored) - own) | (set(model) - names))
    if unknown:
        raise DataError(f"stored config has unknown fields {unknown}; written by a newer odenet?")
    return TrainConfig(**stored, model=ModelConfig(**model))


def load_trained(
    out_dir: str | Path, device: str | torch.device = "cpu"
) -> tuple[ResNet, TrainConfig]:
    """The model of the last completed epoch in out_dir (eval mode, on ``device``) and its config.

    Raises DataError when out_dir has no checkpoint.
    """

    state = load_checkpoint(out_dir)
    if state is None:
        raise DataError(f"no checkpoint in {out_dir}: train there first (odenet train --out DIR)")
    config = config_from_dict(state["config"])
    model = build_from_config(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    model.to(device)
    model.eval()
    return model, config
