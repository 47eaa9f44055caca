"""What the Ray executor and its workers say to each other, as typed messages (plain data).

The driver sends one ``TaskRequest`` per task; the task answers with lists of messages: a
``WorkerStarted`` first, then the run events of ``odenet.studies.executors.events`` (each
changed checkpoint or result file as a ``FileWritten`` before the event it belongs to), and a
``TaskFailed`` when the task itself failed outside its runs (a run's own failure is a
``RunFailed`` event, as locally).
"""

from __future__ import annotations

from dataclasses import dataclass

from odenet.studies.executors.events import RunEvent
from odenet.studies.records import RunRecord


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker trains what it is given (the local executor it runs)."""

    executor: str  # "sequential" (one run per task) | "fused" (a fusion group per task)
    device: str  # the study's device: auto | cpu | cuda, resolved on the worker
    fuse_max: int  # most members of a fused group
    cuda_graphs: bool | None  # overrides TrainConfig.cuda_graphs when not None


@dataclass(frozen=True)
class TaskRequest:
    """One task: the runs the driver claimed, their files as it holds them, the settings."""

    runs: tuple[RunRecord, ...]
    files: dict[str, dict[str, bytes]]  # run id -> {file name: bytes} of its run directory
    settings: WorkerSettings


@dataclass(frozen=True)
class WorkerStarted:
    """Where the task runs (the first message of every task)."""

    pid: int
    host: str
    node_ip: str | None  # None outside Ray (a direct call)
    device: str  # the device its runs use, e.g. "cpu", "cuda:0 (NVIDIA H100)"

    def execution(self) -> dict:
        """The Ray part of the runs' provenance (``base.execution_info``'s ``under``)."""
        return {"executor": "ray", "node": self.host, "node_ip": self.node_ip,
                "device": self.device}  # fmt: skip


@dataclass(frozen=True)
class TaskFailed:
    """The task failed outside its runs (its runs are resubmitted, then failed)."""

    error: str  # one line


WorkerMessage = WorkerStarted | TaskFailed | RunEvent
