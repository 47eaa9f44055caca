"""The sequential executor: one run after another in this process, through ``train``."""

from __future__ import annotations

import dataclasses

from odenet import training  # training.train looked up at each call: tests stand in for it
from odenet.data import load_dataset
from odenet.errors import DiskFull, LeaseLost, StoreError
from odenet.studies.executors.base import LocalExecutor, error_message, execution_info
from odenet.studies.executors.events import Emit, RunEvents, RunFailed, RunFinished, RunStarted
from odenet.studies.records import RunRecord
from odenet.training.config import TrainConfig


class SequentialExecutor(LocalExecutor):
    """Trains each run it is given with ``odenet.training.train``, one after another. Final."""

    name = "sequential"
    capacity = 1
    key = None

    def __init__(self, dataset=None, cuda_graphs: bool | None = None, under: dict | None = None):
        """dataset: an already loaded ArrayDataset to use for runs naming it (else loaded once);
        cuda_graphs: overrides the runs' ``TrainConfig.cuda_graphs`` when not None (how a step
        runs, not what it computes: a resumed run accepts either); under: the executor this
        one works for, recorded in the provenance (``base.execution_info``; a Ray worker)."""
        self.cuda_graphs, self.under = cuda_graphs, under
        self._datasets: dict[tuple, object] = {}  # loaded once per (name, data_dir)
        self._given = dataset

    def submit(self, runs: list[RunRecord], emit: Emit) -> None:
        for run in runs:
            self.run_one(run, emit)

    def run_one(
        self, run: RunRecord, emit: Emit, reason: str | None = None, *, started: bool = False
    ) -> None:
        """Train one run and report it; ``reason`` says why it was not fused (provenance).

        started: ``RunStarted`` was already emitted (a fused group's members). A run whose
        directory holds a result is reported with it as stored (``train`` returns it). A run
        taken by another process meanwhile (``emit`` raises LeaseLost) stops where it is.
        """
        if not started:
            emit(RunStarted(run.id))
        try:
            result = training.train(
                self.config_for(run),
                out_dir=run.run_dir,
                dataset=self.dataset_for(run),
                callbacks=RunEvents(run.id, emit),
                execution=execution_info(self.name, 1, reason, self.under),
            ).to_dict()
        except (StoreError, DiskFull):  # not the run's failure: every later run would fail too
            raise
        except LeaseLost:  # another process took the run: training stopped, the runner said so
            return
        except Exception as err:  # noqa: BLE001 - a failing run is reported, the study goes on
            emit(RunFailed(run.id, error_message(err)))
        else:
            emit(RunFinished(run.id, result))

    def config_for(self, run: RunRecord) -> TrainConfig:
        """The run's stored config with this executor's execution settings applied."""
        if self.cuda_graphs is None:
            return run.config
        return dataclasses.replace(run.config, cuda_graphs=self.cuda_graphs)

    def dataset_for(self, run: RunRecord):
        """The run's dataset: the one given at construction, or loaded once per name/dir."""
        if self._given is not None and self._given.name == run.config.dataset:
            return self._given
        key = (run.config.dataset, run.config.data_dir)
        if key not in self._datasets:
            self._datasets[key] = load_dataset(
                run.config.dataset, run.config.data_dir, progress=False
            )
        return self._datasets[key]
