"""The worker side of the Ray executor: one Ray task trains the runs it is sent.

``run_task(request)`` is a generator (a Ray streaming-generator task). It recreates each run's
directory in a local temporary directory from the request's files (the checkpoint the driver
holds, so a retried or resumed task resumes from it), then runs the local executor it names
(``SequentialExecutor``, or ``FusedExecutor`` for a fusion group on a GPU) in a thread, with an
``Outbox`` as its ``emit``: the run events go into a queue, each preceded by the run's files
that changed since they were last sent (``FileWritten``: the epoch's checkpoint, the final
result.json), the order the engine writes and reports them in. The generator yields what is in
the queue as one list per wake-up, so a fast run does not pay one Ray object per step. The
runs' provenance names Ray, the node and the device from the start (``WorkerStarted``), so
result.json is written once, here, and sent as it is. No shared file system is needed.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import torch

from odenet.data import resolve_device
from odenet.files import atomic_write_bytes
from odenet.studies.executors.base import LocalExecutor, error_message
from odenet.studies.executors.events import FileWritten, RunEvent
from odenet.studies.executors.fused import FusedExecutor
from odenet.studies.executors.ray.messages import (
    TaskFailed,
    TaskRequest,
    WorkerMessage,
    WorkerSettings,
    WorkerStarted,
)
from odenet.studies.executors.sequential import SequentialExecutor
from odenet.studies.records import RunRecord
from odenet.training.checkpoint import CHECKPOINT, RESULT

SHIPPED = (CHECKPOINT, RESULT)  # the run-directory files that travel between driver and worker
_END = object()  # the local executor returned


class Outbox:
    """The local executor's ``emit`` on a worker: events (with changed files first) -> queue."""

    def __init__(self, runs: dict[str, RunRecord], put) -> None:
        self._runs, self._put = runs, put
        self._sent: dict[tuple[str, str], tuple] = {}  # (run, file) -> (inode, mtime, size)
        for run_id in runs:  # the files the driver sent are not sent back
            self._changed(run_id)

    def emit(self, event: RunEvent) -> None:
        for name, data in self._changed(event.run_id).items():
            self._put(FileWritten(event.run_id, name, data))
        self._put(event)

    def _changed(self, run_id: str) -> dict[str, bytes]:
        """The run's files that changed since they were last sent (a save is a new file)."""
        changed = {}
        for name in SHIPPED:
            path = self._runs[run_id].run_dir / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if self._sent.get((run_id, name)) != stamp:
                changed[name] = path.read_bytes()
                self._sent[(run_id, name)] = stamp
        return changed


def run_task(request: TaskRequest) -> Iterator[list[WorkerMessage]]:
    """Train the request's runs (claimed by the driver); yield lists of messages until done."""
    started = _worker_started(request.settings)
    messages: queue.Queue = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="odenet-ray-") as tmp:
        local = {}
        for run in request.runs:
            run_dir = Path(tmp) / run.id
            run_dir.mkdir()
            for name, data in request.files.get(run.id, {}).items():
                atomic_write_bytes(run_dir / name, data)
            local[run.id] = dataclasses.replace(run, run_dir=run_dir)
        yield [started]
        outbox = Outbox(local, messages.put)
        args = (list(local.values()), request.settings, started, outbox, messages)
        thread = threading.Thread(target=_execute, args=args, daemon=True)
        thread.start()
        while True:
            batch = [messages.get()]
            while True:  # everything that is already there goes in one item
                try:
                    batch.append(messages.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is _END
            yield batch[:-1] if done else batch
            if done:
                break
        thread.join()


def _execute(runs: list[RunRecord], settings: WorkerSettings, started: WorkerStarted,
             outbox: Outbox, messages: queue.Queue) -> None:  # fmt: skip
    """The local executor on ``runs``; always ends with ``_END``."""
    try:
        executor = _local_executor(settings, tuple(started.execution().items()))
        executor.submit(runs, outbox.emit)
    except Exception as err:  # noqa: BLE001 - reported to the driver, which retries the task
        messages.put(TaskFailed(error_message(err)))
    finally:
        messages.put(_END)


@functools.lru_cache(maxsize=4)
def _local_executor(settings: WorkerSettings, under: tuple) -> LocalExecutor:
    """The local executor for ``settings``, one per worker process and place: Ray reuses a
    worker for later tasks, and the executor keeps the datasets it loaded (one load each)."""
    if settings.executor == "fused":
        return FusedExecutor(settings.fuse_max, None, settings.cuda_graphs, dict(under))
    if settings.executor == "sequential":
        return SequentialExecutor(None, settings.cuda_graphs, dict(under))
    raise ValueError(f"unknown worker executor {settings.executor!r}; expected sequential, fused")


def _worker_started(settings: WorkerSettings) -> WorkerStarted:
    """Where this task runs: pid, host, node ip and the device its runs will use."""
    try:
        device = str(resolve_device(settings.device))
    except Exception:  # noqa: BLE001 - e.g. cuda asked on a node without: the run says why
        device = settings.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = (
            f"cuda:{os.environ.get('CUDA_VISIBLE_DEVICES', '0')} ({torch.cuda.get_device_name()})"
        )
    try:
        import ray  # optional: present on every Ray worker

        node_ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray (a direct call in a test)
        node_ip = None
    return WorkerStarted(os.getpid(), socket.gethostname(), node_ip, device)
