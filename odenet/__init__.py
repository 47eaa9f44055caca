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

from odenet.errors import ConfigError as ConfigError
from odenet.errors import DataError as DataError
from odenet.errors import OdenetError as OdenetError

# public name -> the module that defines it (a subpackage's own name: the subpackage)
_LAZY = {
    "analysis": "odenet.analysis",
    "data": "odenet.data",
    "nets": "odenet.nets",
    "solvers": "odenet.solvers",
    "studies": "odenet.studies",
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

if TYPE_CHECKING:  # what the lazy names are, for type checkers and IDEs (`as`: re-exported)
    from odenet import analysis as analysis
    from odenet import data as data
    from odenet import nets as nets
    from odenet import solvers as solvers
    from odenet import studies as studies
    from odenet import training as training
    from odenet.analysis import AnalyzeConfig as AnalyzeConfig
    from odenet.analysis import LandscapeConfig as LandscapeConfig
    from odenet.analysis import run_analyze as run_analyze
    from odenet.analysis import run_landscape as run_landscape
    from odenet.data import available_datasets as available_datasets
    from odenet.data import load_dataset as load_dataset
    from odenet.nets import ModelConfig as ModelConfig
    from odenet.nets import ModelSummary as ModelSummary
    from odenet.nets import ResNet as ResNet
    from odenet.nets import build_model as build_model
    from odenet.nets import describe as describe
    from odenet.studies import Store as Store
    from odenet.studies import StudySpec as StudySpec
    from odenet.studies import load_study as load_study
    from odenet.studies import plan_study as plan_study
    from odenet.studies import report_study as report_study
    from odenet.studies import run_study as run_study
    from odenet.training import TrainConfig as TrainConfig
    from odenet.training import TrainResult as TrainResult
    from odenet.training import load_trained as load_trained
    from odenet.training import train as train
    from odenet.training import train_fused as train_fused


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


# Every public name: the eager ones above, the lazy ones of _LAZY and the version.
__all__ = sorted(["ConfigError", "DataError", "OdenetError", "__version__", *_LAZY])
