"""Executors: what runs the runs the runner claims, and the factory that picks one.

``make_executor(name, device, fuse_max, dataset, cuda_graphs, ray)`` resolves ``--executor``:

* ``sequential``: ``SequentialExecutor`` (one ``train`` after another, in this process);
* ``fused``: ``FusedExecutor`` (runs that differ only in lr and seed as one network);
* ``auto``: fused on CUDA, sequential on CPU;
* ``ray``: ``RayExecutor`` (``ray/``): each claim a Ray task, on a local Ray instance or a
  cluster, as many at once as it has room for.

The interface they share, the names and the fuse_max check are in ``base.py``; what they
report, in ``events.py``. Only the runner and the entry points (the notebook API, the CLI)
import this factory; the executors import each other's modules directly.
"""

import torch

from odenet.data import resolve_device
from odenet.errors import ConfigError
from odenet.studies.executors.base import (
    DEFAULT_FUSE_MAX,
    EXECUTORS,
    Executor,
    LocalExecutor,
    check_executor,
    check_fuse_max,
)
from odenet.studies.executors.fused import FusedExecutor
from odenet.studies.executors.ray import RayConfig, RayExecutor, make_ray_executor
from odenet.studies.executors.sequential import SequentialExecutor

__all__ = [
    "DEFAULT_FUSE_MAX",
    "EXECUTORS",
    "Executor",
    "FusedExecutor",
    "LocalExecutor",
    "RayConfig",
    "RayExecutor",
    "SequentialExecutor",
    "make_executor",
]


def make_executor(
    name: str,
    device: str | torch.device = "auto",
    fuse_max: int = DEFAULT_FUSE_MAX,
    dataset=None,
    cuda_graphs: bool | None = None,
    ray: RayConfig | None = None,
) -> Executor:
    """The executor for ``--executor name`` on ``device`` ("auto" | "cpu" | "cuda").

    dataset: an already loaded ArrayDataset used for runs naming it; cuda_graphs: overrides
    every run's ``TrainConfig.cuda_graphs`` when not None; ray: where and how the ``ray``
    executor runs (connecting is part of making it). ConfigError for an unknown name, a
    bad fuse_max or device, Ray options without ``ray``, or a Ray cluster that cannot serve.
    """
    check_executor(name)
    check_fuse_max(fuse_max)
    if name == "ray":  # the device is resolved on the workers (the driver may have no GPU)
        return make_ray_executor(ray or RayConfig(), str(device), fuse_max, cuda_graphs)
    if ray is not None and ray.given():
        raise ConfigError(f"the Ray options need --executor ray (not {name!r})")
    on_cuda = resolve_device(device).type == "cuda"
    if cuda_graphs and not on_cuda:
        raise ConfigError("--cuda-graphs needs a CUDA device: drop it or use --device cuda")
    if name == "auto":
        name = "fused" if on_cuda else "sequential"
    if name == "sequential":
        return SequentialExecutor(dataset, cuda_graphs)
    return FusedExecutor(fuse_max, dataset, cuda_graphs)
