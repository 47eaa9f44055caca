"""Training: the engine (``train``), its config, schedules, checkpoints and ``load_trained``."""

from odenet.training.checkpoint import load_trained
from odenet.training.config import TrainConfig
from odenet.training.fused import train_fused
from odenet.training.results import EpochMetrics, StepLog, TrainCallbacks, TrainResult
from odenet.training.schedules import LRSchedule, schedule_factor
from odenet.training.trainer import evaluate, train

__all__ = [
    "EpochMetrics",
    "LRSchedule",
    "StepLog",
    "TrainCallbacks",
    "TrainConfig",
    "TrainResult",
    "evaluate",
    "load_trained",
    "schedule_factor",
    "train",
    "train_fused",
]
