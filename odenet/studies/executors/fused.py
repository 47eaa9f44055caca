"""The fused executor: claimed runs that differ only in lr and seed train as one network.

Its claims (``claim_key``) take up to ``fuse_max`` pending runs of one fusion group: the first
pending run and the next ones equal to it in everything but lr and seed
(``odenet.training.fused.fusion_key``). A group of two or more is trained with
``train_fused``. A run whose scheme does not fuse (lm, continuous ``ode-*``) is claimed alone
and trained with ``train``, as is a group of one; each such reason is logged once, as one
warning line. When ``train_fused`` raises (e.g. CUDA out of memory), one warning line names
the group and the error, and its members are trained one by one: a member the group finished
keeps its result, the others resume from their checkpoints. When another process takes one
member (its lease lapsed), the group stops: that member is dropped and the others are given
back (pending), to be claimed again.

What executed a run is recorded twice: the store's ``executor`` column (the executor that
claimed it, replaced by the one that trained it when the run finishes) and
``provenance["execution"]`` of its result (``{"executor": "fused" | "sequential", "members":
K}`` plus ``"reason"`` when it was not fused). Each member's metrics, checkpoint, result.json
and store row are those of a separate run.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Hashable

import torch

from odenet.errors import DiskFull, LeaseLost, StoreError
from odenet.nets.fused import fusable
from odenet.studies.executors.base import (
    DEFAULT_FUSE_MAX,
    LocalExecutor,
    error_message,
    execution_info,
)
from odenet.studies.executors.events import (
    Emit,
    RunEvents,
    RunFinished,
    RunReleased,
    RunStarted,
)
from odenet.studies.executors.sequential import SequentialExecutor
from odenet.studies.records import RunRecord
from odenet.training import fused as fused_training  # train_fused looked up at each call
from odenet.training.config import TrainConfig
from odenet.training.fused import fusion_key

log = logging.getLogger("odenet.studies")


def group_runs(runs: list[RunRecord], fuse_max: int) -> list[list[RunRecord]]:
    """Runs grouped by everything but lr and seed (first-seen order), in chunks <= fuse_max."""
    groups: dict[tuple, list[RunRecord]] = {}
    for run in runs:
        groups.setdefault(fusion_key(run.config), []).append(run)
    return [g[i : i + fuse_max] for g in groups.values() for i in range(0, len(g), fuse_max)]


def claim_key(config: TrainConfig) -> Hashable | None:
    """The fused executor's claim key: the run's fusion group (``fusion_key``); None for a
    scheme that does not fuse, so the run is claimed alone."""
    return None if fusable(config.model) else fusion_key(config)


class FusedExecutor(LocalExecutor):
    """Trains each group of compatible runs it is given as one fused network. Final."""

    name = "fused"

    def __init__(
        self, fuse_max: int = DEFAULT_FUSE_MAX, dataset=None, cuda_graphs=None, under=None
    ) -> None:
        """fuse_max: most members per group (the runner claims this many runs of one group);
        dataset, cuda_graphs, under: as for ``SequentialExecutor``."""
        self.capacity = fuse_max
        self.key = claim_key
        self._sequential = SequentialExecutor(dataset, cuda_graphs, under)  # fallbacks, datasets
        self._warned: set[str] = set()  # reasons already logged (one line per reason)

    def submit(self, runs: list[RunRecord], emit: Emit) -> None:
        for group in group_runs(runs, self.capacity):
            reason = fusable(group[0].config.model)
            if reason is not None and reason not in self._warned:
                self._warned.add(reason)
                log.warning("fused executor: %s; running its runs sequentially", reason)
            if reason is not None or len(group) == 1:
                for run in group:
                    self._sequential.run_one(run, emit, reason)
            else:
                self._fused(group, emit)

    def _fused(self, group: list[RunRecord], emit: Emit) -> None:
        try:
            for run in group:
                emit(RunStarted(run.id))
            results = fused_training.train_fused(
                [self._sequential.config_for(r) for r in group],
                out_dirs=[r.run_dir for r in group],
                dataset=self._sequential.dataset_for(group[0]),
                callbacks=[RunEvents(r.id, emit) for r in group],
                execution=execution_info(self.name, len(group), None, self._sequential.under),
            )
        except (StoreError, DiskFull):  # recording or the disk failed, not the group
            raise
        except LeaseLost as lost:  # a member was taken by another process: the group stops
            _give_back(group, {lost.run_id}, emit)
            return
        except Exception as err:  # noqa: BLE001 - the members are trained one by one instead
            error = error_message(err)
        else:
            ended: set[str] = set()
            try:
                for run, result in zip(group, results):
                    ended.add(run.id)
                    emit(RunFinished(run.id, result.to_dict()))
            except LeaseLost:
                _give_back(group, ended, emit)
            return
        # Outside the except block, so that the traceback (and through it the failed group's
        # fused network, optimizer state and activations) is gone before the members train:
        # the failure is often "CUDA out of memory".
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
        ids = ", ".join(r.id for r in group)
        log.warning("fused executor: the group %s failed (%s); training it run by run", ids, error)
        for run in group:  # a member the group finished is returned as stored by ``train``
            self._sequential.run_one(run, emit, f"the fused group failed: {error}", started=True)


def _give_back(group: list[RunRecord], ended: set[str], emit: Emit) -> None:
    """A group stopped because one member was taken by another process: its other members
    that did not end go back to pending (``RunReleased``), to be claimed again and resume
    from their checkpoints (a finished one returns its stored result)."""
    for run in group:
        if run.id not in ended:
            emit(RunReleased(run.id))
