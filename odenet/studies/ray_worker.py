"""The worker side of the Ray executor: one Ray task trains claimed runs and streams events back.

``run_task(runs, files, settings)`` is a generator (a Ray streaming-generator task). It
recreates each run's directory in a local temporary directory from ``files`` (the checkpoint
the driver holds, so a retried or resumed task resumes from it), then runs the ordinary local
executor (``SequentialExecutor``, or ``FusedExecutor`` for a fusion group on a GPU) in a thread
with two stand-ins: a ``StoreProxy`` for the study store and an ``ObserverProxy`` for the
observer. Every call they receive becomes an event; the generator yields the events as lists
(one list per wake-up, so a fast run does not pay one Ray object per step). The driver replays
each event on the real store and observer, so a run is recorded by exactly the calls a local
run makes. Before forwarding a store call for a run, the proxy attaches the run's checkpoint if
it changed since it last shipped it: the driver writes it into the study before it records the
epoch, the order ``train`` itself keeps. No shared file system is needed.

Events (tuples): ``("hello", facts)`` first (pid, host, node ip, device), then
``("files", run_id, {name: bytes})``, ``("store", method, args, kwargs)``,
``("observer", method, run_id, args)``, and ``("error", message)`` when the task itself failed
outside a run (a run's own failure is a ``store.fail`` event, as locally).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import queue
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from odenet.studies.runner import Executor, StudyObserver, _message
from odenet.studies.store import RunRecord
from odenet.training.checkpoint import CHECKPOINT

SHIPPED = (CHECKPOINT,)  # the run-directory files that travel to the driver (result.json is
# rewritten by the driver with the Ray provenance; see ray_executor)
_END = ("end",)


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker trains what it is given (the local executor it runs)."""

    executor: str  # "sequential" (one run per task) | "fused" (a fusion group per task)
    device: str  # the study's device: auto | cpu | cuda, resolved on the worker
    fuse_max: int  # most members of a fused group
    cuda_graphs: bool | None  # overrides TrainConfig.cuda_graphs when not None


class StoreProxy:
    """Stands in for the study's ``Store`` on a worker: every write becomes an event.

    Every ``Store`` method an executor calls with a run id first (``record_epoch``, ``finish``,
    ``fail``, ``release``, and any later one such as ``record_steps``) is forwarded as
    ``("store", name, args, kwargs)``; ``run(run_id)`` answers from the task's own records
    (the driver reads its store itself when it replays ``on_run_end``).
    """

    def __init__(self, runs: dict[str, RunRecord], emit: Callable[[tuple], None]) -> None:
        self._runs, self._emit = runs, emit
        self._shipped: dict[tuple[str, str], tuple] = {}  # (run, file) -> (inode, mtime, size)

    def run(self, run_id: str) -> RunRecord:
        return self._runs[run_id]

    def __getattr__(self, name: str) -> Callable[..., None]:
        if name.startswith("_"):
            raise AttributeError(name)

        def forward(run_id: str, *args, **kwargs) -> None:
            self._ship_files(run_id)
            self._emit(("store", name, (run_id, *args), kwargs))

        return forward

    def _ship_files(self, run_id: str) -> None:
        """An event with the run's files that changed since they were last shipped."""
        changed = {}
        for name in SHIPPED:
            path = self._runs[run_id].run_dir / name
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            stamp = (stat.st_ino, stat.st_mtime_ns, stat.st_size)  # a save is a new file
            if self._shipped.get((run_id, name)) != stamp:
                changed[name] = path.read_bytes()
                self._shipped[(run_id, name)] = stamp
        if changed:
            self._emit(("files", run_id, changed))


class ObserverProxy(StudyObserver):
    """Stands in for the study's observer on a worker: each run event becomes an event."""

    def __init__(self, emit: Callable[[tuple], None]) -> None:
        self._emit = emit

    def on_run_start(self, run: RunRecord) -> None:
        self._emit(("observer", "on_run_start", run.id, ()))

    def on_epoch_start(self, run: RunRecord, epoch: int, steps: int) -> None:
        self._emit(("observer", "on_epoch_start", run.id, (epoch, steps)))

    def on_step(self, run: RunRecord, epoch: int, step: int, loss: float) -> None:
        self._emit(("observer", "on_step", run.id, (epoch, step, loss)))

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        self._emit(("observer", "on_epoch_end", run.id, (metrics,)))

    def on_run_end(self, run: RunRecord) -> None:
        self._emit(("observer", "on_run_end", run.id, ()))


def run_task(
    runs: list[RunRecord], files: dict[str, dict[str, bytes]], settings: WorkerSettings
) -> Iterator[list[tuple]]:
    """Train ``runs`` (claimed by the driver) and yield lists of events until they end.

    files: run id -> {file name: bytes} of the run directory as the driver holds it.
    """
    events: queue.Queue[tuple] = queue.Queue()
    with tempfile.TemporaryDirectory(prefix="odenet-ray-") as tmp:
        local = {}
        for run in runs:
            run_dir = Path(tmp) / run.id
            run_dir.mkdir()
            for name, data in files.get(run.id, {}).items():
                (run_dir / name).write_bytes(data)
            local[run.id] = dataclasses.replace(run, run_dir=run_dir)
        yield [("hello", _facts(settings))]
        thread = threading.Thread(
            target=_execute, args=(list(local.values()), settings, events), daemon=True
        )
        thread.start()
        while True:
            batch = [events.get()]
            while True:  # everything that is already there goes in one item
                try:
                    batch.append(events.get_nowait())
                except queue.Empty:
                    break
            done = batch[-1] is _END
            yield batch[:-1] if done else batch
            if done:
                break
        thread.join()


def _execute(runs: list[RunRecord], settings: WorkerSettings, events: queue.Queue) -> None:
    """The local executor on ``runs`` with the proxies; always ends with ``_END``."""
    try:
        executor = _local_executor(settings)
        store = StoreProxy({r.id: r for r in runs}, events.put)
        executor.run(runs, store, ObserverProxy(events.put))
    except Exception as err:  # noqa: BLE001 - reported to the driver, which retries the task
        events.put(("error", _message(err)))
    finally:
        events.put(_END)


@functools.lru_cache(maxsize=4)
def _local_executor(settings: WorkerSettings) -> Executor:
    """The local executor for ``settings``, one per worker process: Ray reuses a worker for
    later tasks, and the executor keeps the datasets it loaded (one load per worker)."""
    from odenet.studies.fused_executor import make_executor

    return make_executor(
        settings.executor, settings.device, settings.fuse_max, None, settings.cuda_graphs
    )


def _facts(settings: WorkerSettings) -> dict:
    """Where this task runs: pid, host, node ip and the device its runs will use."""
    import torch

    from odenet.data import resolve_device

    try:
        device = str(resolve_device(settings.device))
    except Exception:  # noqa: BLE001 - e.g. cuda asked on a node without: the run says why
        device = settings.device
    if device.startswith("cuda") and torch.cuda.is_available():
        device = (
            f"cuda:{os.environ.get('CUDA_VISIBLE_DEVICES', '0')} ({torch.cuda.get_device_name()})"
        )
    try:
        import ray

        node_ip = ray.util.get_node_ip_address()
    except Exception:  # noqa: BLE001 - outside Ray (a direct call in a test)
        node_ip = None
    return {"pid": os.getpid(), "host": socket.gethostname(), "node_ip": node_ip, "device": device}
