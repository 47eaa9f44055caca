"""odenet: residual networks as discretised ordinary differential equations.

The public API is re-exported here on purpose; everything else is implementation:

* ``odenet.solvers``: the solver registry (``get``, ``available``, ``solve``, ``for_order``);
* ``build_model`` / ``ModelConfig`` / ``describe``: the CIFAR ResNet family at any scheme;
* ``load_dataset``: datasets as uint8 arrays; ``TrainConfig`` / ``train`` / ``load_trained``;
* ``StudySpec`` / ``run_study`` / ``load_study`` / ``report_study``: grids of runs;
* ``LandscapeConfig`` / ``run_landscape`` (loss-surface slices and sharpness) and
  ``AnalyzeConfig`` / ``run_analyze`` (layer responses, step ratios, gradient norms, field
  spectra on the stability region): ``odenet.analysis``.
"""

from importlib.metadata import PackageNotFoundError, version

from odenet import analysis, data, nets, solvers, training
from odenet.analysis import AnalyzeConfig, LandscapeConfig, run_analyze, run_landscape
from odenet.data import available_datasets, load_dataset
from odenet.errors import ConfigError, DataError, OdenetError
from odenet.nets import ModelConfig, ModelSummary, ResNet, build_model, describe
from odenet.studies import (
    Store,
    StudySpec,
    load_study,
    plan_study,
    report_study,
    run_study,
)
from odenet.training import TrainConfig, TrainResult, load_trained, train, train_fused

try:
    __version__ = version("odenet")
except PackageNotFoundError:  # running from a source tree that was not installed
    __version__ = "0.0.0+source"

__all__ = [
    "AnalyzeConfig",
    "ConfigError",
    "LandscapeConfig",
    "Store",
    "StudySpec",
    "DataError",
    "ModelConfig",
    "ModelSummary",
    "OdenetError",
    "ResNet",
    "TrainConfig",
    "TrainResult",
    "__version__",
    "analysis",
    "available_datasets",
    "build_model",
    "data",
    "describe",
    "load_dataset",
    "load_study",
    "load_trained",
    "nets",
    "plan_study",
    "report_study",
    "run_analyze",
    "run_landscape",
    "run_study",
    "solvers",
    "train",
    "train_fused",
    "training",
]
