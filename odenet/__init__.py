"""odenet: residual networks as discretised ordinary differential equations.

The public API is re-exported here on purpose; everything else is implementation:

* ``odenet.solvers``: the solver registry (``get``, ``available``, ``solve``, ``for_order``);
* ``build_model`` / ``ModelConfig`` / ``describe``: the CIFAR, single-stage and ImageNet
  (``arch="resnet50"``, ...) families at any scheme, each a plain ``nn.Module``;
* ``load_dataset``: datasets as uint8 arrays; ``TrainConfig`` / ``train`` / ``load_trained``;
* ``StudySpec`` / ``run_study`` / ``load_study`` / ``report_study``: grids of runs;
* ``odenet.analysis``: ``LandscapeConfig`` / ``run_landscape`` (loss-surface slices and
  sharpness) and ``AnalyzeConfig`` / ``run_analyze`` (layer responses, step ratios, gradient
  norms, field spectra on the stability region) of a study's trained models.

Importing is free: the names above are resolved on first use (PEP 562), so ``import odenet``
loads neither torch nor matplotlib, selects no matplotlib backend and takes milliseconds.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from odenet.errors import ConfigError, DataError, OdenetError

# public name -> the module that defines it (a subpackage's own name: the subpackage)
_LAZY = {
    "analysis": "odenet.analysis",
    "data": "odenet.data",
    "nets": "odenet.nets",
    "solvers": "odenet.solvers",
    "training": "odenet.training",
    "available_datasets": "odenet.data",
    "load_dataset": "odenet.data",
    "ModelConfig": "odenet.nets",
    "ModelSummary": "odenet.nets",
    "ResNet": "odenet.nets",
    "build_model": "odenet.nets",
    "describe": "odenet.nets",
    "AnalyzeConfig": "odenet.analysis",
    "LandscapeConfig": "odenet.analysis",
    "Store": "odenet.studies",
    "StudySpec": "odenet.studies",
    "load_study": "odenet.studies",
    "plan_study": "odenet.studies",
    "report_study": "odenet.studies",
    "run_analyze": "odenet.analysis",
    "run_landscape": "odenet.analysis",
    "run_study": "odenet.studies",
    "TrainConfig": "odenet.training",
    "TrainResult": "odenet.training",
    "load_trained": "odenet.training",
    "train": "odenet.training",
    "train_fused": "odenet.training",
}

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs
    from odenet import analysis, data, nets, solvers, training
    from odenet.analysis import AnalyzeConfig, LandscapeConfig, run_analyze, run_landscape
    from odenet.data import available_datasets, load_dataset
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


def __getattr__(name: str) -> object:
    """Import the module behind a public name on first use, then cache the name here."""
    if name == "__version__":  # importlib.metadata alone costs ~25 ms: only when asked
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            globals()[name] = version("odenet")
        except PackageNotFoundError:  # running from a source tree that was not installed
            globals()[name] = "0.0.0+source"
        return globals()[name]
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'odenet' has no attribute {name!r}")
    obj = importlib.import_module(module)
    if module.rsplit(".", 1)[1] != name:
        obj = getattr(obj, name)
    globals()[name] = obj
    return obj


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY) | {"__version__"})


# Every public name, spelled out (the lazy ones are in _LAZY).
__all__ = [
    "AnalyzeConfig",
    "ConfigError",
    "DataError",
    "LandscapeConfig",
    "ModelConfig",
    "ModelSummary",
    "OdenetError",
    "ResNet",
    "Store",
    "StudySpec",
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
