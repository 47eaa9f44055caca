"""The fused executor: claimed runs that differ only in lr and seed are trained as one network.

``make_executor(name, device, fuse_max, dataset, cuda_graphs)`` resolves ``--executor``:

* ``sequential``: the runner's SequentialExecutor (one ``train`` after another);
* ``fused``: FusedExecutor; its claims (``claim_key``) take up to ``fuse_max`` pending runs of
  one fusion group: the first pending run and the next ones equal to it in everything but lr
  and seed (``odenet.training.fused.fusion_key``). A group of two or more is trained with
  ``train_fused``. A run whose scheme does not fuse (lm, continuous ``ode-*``) is claimed alone
  and trained with ``train``, as is a group of one; each such reason is logged once, as one
  warning line. When ``train_fused`` raises (e.g. CUDA out of memory), one warning line names
  the group and the error, and its members are trained one by one: a member the group finished
  keeps its result, the others resume from their checkpoints;
* ``auto``: fused on CUDA, sequential on CPU;
* ``ray``: RayExecutor (``ray_executor.py``): claims as the fused executor on GPUs (one run
  on CPUs) and trains each claim as a Ray task, on a local Ray instance or a cluster.

What executed a run is recorded twice: the store's ``executor`` column (the executor that
claimed it: "fused" or "sequential") and ``provenance["execution"]`` of its result
(``{"executor": "fused" | "sequential", "members": K}`` plus ``"reason"`` for a fallback).
Each member's metrics, checkpoint, result.json and store row are those of a separate run.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Hashable
from typing import TYPE_CHECKING

import torch

from odenet.errors import ConfigError
from odenet.studies.runner import (
    Executor,
    SequentialExecutor,
    StudyObserver,
    _callbacks,
    _message,
)
from odenet.studies.store import RunRecord, Store
from odenet.training.config import TrainConfig

if TYPE_CHECKING:
    from odenet.studies.ray_executor import RayConfig

EXECUTOR_NAMES = ("auto", "sequential", "fused", "ray")
DEFAULT_FUSE_MAX = 8  # members per fused group when --fuse-max is not given
log = logging.getLogger("odenet.studies")


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
    from odenet.data import resolve_device

    if name not in EXECUTOR_NAMES:
        raise ConfigError(
            f"unknown executor {name!r}; expected one of: {', '.join(EXECUTOR_NAMES)}"
        )
    if isinstance(fuse_max, bool) or not isinstance(fuse_max, int) or fuse_max < 1:
        raise ConfigError(f"--fuse-max must be a positive integer, got {fuse_max!r}")
    if name == "ray":  # the device is resolved on the workers (the driver may have no GPU)
        from odenet.studies.ray_executor import RayConfig, make_ray_executor

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


def group_runs(runs: list[RunRecord], fuse_max: int) -> list[list[RunRecord]]:
    """Runs grouped by everything but lr and seed (first-seen order), in chunks <= fuse_max."""
    from odenet.training.fused import fusion_key

    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(fusion_key(run.config), []).append(run)
    return [g[i : i + fuse_max] for g in groups.values() for i in range(0, len(g), fuse_max)]


def claim_key(config: TrainConfig) -> Hashable | None:
    """The fused executor's claim key: the run's fusion group (``fusion_key``); None for a
    scheme that does not fuse, so the run is claimed alone."""
    from odenet.nets.fused import fusable
    from odenet.training.fused import fusion_key

    return None if fusable(config.model) else fusion_key(config)


class FusedExecutor(Executor):
    """Trains each group of compatible claimed runs as one fused network. Final."""

    name = "fused"

    def __init__(self, fuse_max: int = DEFAULT_FUSE_MAX, dataset=None, cuda_graphs=None) -> None:
        """fuse_max: most members per group (the runner claims this many runs of one group);
        cuda_graphs: overrides the runs' ``TrainConfig.cuda_graphs`` when not None."""
        self.capacity = fuse_max
        self.key = claim_key
        self._sequential = SequentialExecutor(dataset, cuda_graphs)  # fallbacks, datasets, configs
        self._warned: set[str] = set()  # reasons already logged (one line per reason)

    def run(self, runs: list[RunRecord], store: Store, observer: StudyObserver) -> None:
        from odenet.nets.fused import fusable

        for group in group_runs(runs, self.capacity):
            config = group[0].config
            reason = fusable(config.model)
            if reason is not None and reason not in self._warned:
                self._warned.add(reason)
                log.warning("fused executor: %s; running its runs sequentially", reason)
            if reason is not None or len(group) == 1:
                for run in group:
                    self._sequential.run_one(run, store, observer, reason)
            else:
                self._fused(group, store, observer)

    def _fused(self, group: list[RunRecord], store: Store, observer: StudyObserver) -> None:
        from odenet.training.fused import train_fused

        for run in group:
            observer.on_run_start(run)
        try:
            results = train_fused(
                [self._sequential.config_for(r) for r in group],
                out_dirs=[r.run_dir for r in group],
                dataset=self._sequential.dataset_for(group[0]),
                callbacks=[_callbacks(r, store, observer) for r in group],
            )
            for run, result in zip(group, results):
                store.finish(run.id, result.to_dict())
        except (KeyboardInterrupt, SystemExit):
            for run in group:
                store.release(run.id)
            raise
        except Exception as err:  # noqa: BLE001 - the members are trained one by one instead
            error = _message(err)
        else:
            for run in group:
                observer.on_run_end(store.run(run.id))
            return
        # Outside the except block, so that the traceback (and through it the failed group's
        # fused network, optimizer state and activations) is gone before the members train:
        # the failure is often "CUDA out of memory".
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        self._one_by_one(group, store, observer, error)

    def _one_by_one(
        self, group: list[RunRecord], store: Store, observer: StudyObserver, error: str
    ) -> None:
        """A failed group's members, one ``train`` each: a finished member's result.json is
        returned as stored, the others resume from the checkpoints the group wrote."""
        ids = ", ".join(r.id for r in group)
        log.warning("fused executor: the group %s failed (%s); training it run by run", ids, error)
        reason = f"the fused group failed: {error}"
        try:
            for run in group:
                self._sequential.run_one(run, store, observer, reason, started=True)
        except (KeyboardInterrupt, SystemExit):
            for run in group:
                store.release(run.id)  # only the members still 'running'
            raise
