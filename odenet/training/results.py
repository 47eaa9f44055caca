"""What a run reports: per-epoch metrics, logged steps, the final result (with from_history /
to_dict / from_dict) and the callbacks a run calls while it trains."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class EpochMetrics:
    """What one completed epoch measured (losses are per-image means)."""

    epoch: int  # 1-based
    train_loss: float  # mean training loss over the epoch (with label smoothing, if any)
    train_acc: float  # fraction in [0, 1], from the training-mode forward passes
    test_loss: float  # mean cross-entropy on the test split (eval mode, no smoothing)
    test_acc: float  # fraction in [0, 1]
    lr: float  # learning rate of the epoch's last step
    seconds: float  # wall time of the epoch: training and evaluation
    images_per_s: float  # training throughput (training passes only)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class StepLog:
    """One logged optimizer step (every ``TrainConfig.log_every`` steps)."""

    step: int  # global optimizer step, 1-based, counted across epochs (and resumes)
    loss: float  # that step's training loss (batch mean, as the epoch mean uses)
    lr: float  # the learning rate that step used


@dataclass
class TrainResult:
    """The outcome of ``train``. ``to_dict()`` is what result.json and ``--json`` hold."""

    status: str  # "done" | "diverged"
    epochs_done: int  # completed epochs (a diverged epoch does not count)
    diverged_epoch: int | None  # 1-based epoch of the diverging step, None if not diverged
    diverged_step: int | None  # 1-based step within that epoch
    history: list[EpochMetrics]  # one entry per completed epoch
    test_acc: float | None  # of the last completed epoch
    best_test_acc: float | None  # over the completed epochs
    train_loss: float | None  # of the last completed epoch
    params: int  # trainable parameters except scheme coefficients
    extra_params: int  # scheme coefficients (LM-ResNet's k scalars)
    seconds: float  # wall time of all epochs (a diverged partial epoch included)
    device: str  # e.g. "cpu", "cuda"
    provenance: dict[str, Any] = field(default_factory=dict)  # versions, seeds, config

    @classmethod
    def from_history(
        cls,
        history: list[EpochMetrics],
        *,
        diverged: tuple[int, int] | None,
        partial_seconds: float,
        params: int,
        extra_params: int,
        device: str,
        provenance: dict[str, Any],
    ) -> TrainResult:
        """The result whose summary fields (last / best accuracy, seconds) come from ``history``.

        diverged: (epoch, step) of the diverging step, or None; partial_seconds: the wall time
        of that unfinished epoch.
        """
        last = history[-1] if history else None
        return cls(
            status="diverged" if diverged else "done",
            epochs_done=len(history),
            diverged_epoch=diverged[0] if diverged else None,
            diverged_step=diverged[1] if diverged else None,
            history=history,
            test_acc=last.test_acc if last else None,
            best_test_acc=max(m.test_acc for m in history) if history else None,
            train_loss=last.train_loss if last else None,
            params=params,
            extra_params=extra_params,
            seconds=sum(m.seconds for m in history) + partial_seconds,
            device=device,
            provenance=provenance,
        )

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["diverged"] = self.status == "diverged"
        out["epochs"] = self.epochs_done
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainResult:
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in data.items() if k in names}
        kwargs["history"] = [EpochMetrics(**m) for m in kwargs.get("history", [])]
        return cls(**kwargs)


class TrainCallbacks:
    """Observer of a run; every hook is a no-op here. Exceptions raised by hooks propagate
    (a KeyboardInterrupt in ``on_epoch_end`` stops the run after its checkpoint is saved)."""

    def on_epoch_start(self, epoch: int, steps: int) -> None:
        """Before the first step of ``epoch`` (1-based), which has ``steps`` steps."""

    def on_step(self, epoch: int, step: int, loss: float) -> None:
        """At a host read (every few steps and at the epoch's end, not after every step): the
        latest step taken (1-based within the epoch) and its training loss."""

    def on_log(self, rows: list[StepLog]) -> None:
        """At every host read: the steps logged since the previous read (possibly none)."""

    def on_checkpoint(self, epoch: int) -> None:
        """Right before the checkpoint of ``epoch`` is written (runs with an out_dir only):
        an exception here stops the run with nothing of that epoch written (a study's run
        that another process took over meanwhile)."""

    def on_epoch_end(self, metrics: EpochMetrics) -> None:
        """After the epoch's evaluation and checkpoint."""
