"""The Ray executor: a study's runs as Ray tasks, on every GPU of a node or on a cluster.

The ``odenet study`` process (the driver) owns the study store; its runner claims the runs as
for the local executors (on GPUs a fusion group per claim, with the fused executor's claim key;
on CPUs one run) whenever this executor has room (``free``: fewer tasks in flight than the
cluster runs at once). ``submit`` sends each claim as one Ray task (``worker.run_task``, a
streaming generator, with ``num_gpus`` / ``num_cpus`` per task); a thread per task reads the
messages it streams back into one queue, and ``poll`` hands its run events (per-epoch metrics,
logged steps, the checkpoint and result files, the outcome) to the runner's recorder, in the
calling thread, so a run is recorded as a local run is. Nothing but Ray's object transfer is
needed between the nodes: no shared file system.

Faults: a task lost (worker or node killed, or the task failed outside its runs) is submitted
again with the runs' latest checkpoints, at most ``RayConfig.max_retries`` times (Ray's own
retries are off: they would re-send the original, stale checkpoint), then its unfinished runs
are reported failed with the reason and the study goes on. ``cancel`` (Ctrl-C) cancels the
tasks in flight; the runner gives their runs back. A killed driver leaves its runs 'running'
under its dead pid: the next ``odenet study`` on the directory reclaims them and resumes them
from their checkpoints. A run taken by another study process while its task runs (the
driver's lease on it lapsed) stops its task: the task is cancelled, its other runs given back.
Provenance: ``execution = {"executor": "ray", "members", "node", "node_ip", "device",
"worker_executor"}`` (and ``"reason"`` for a run that was not fused).
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field

from odenet.errors import LeaseLost
from odenet.studies.executors.base import Executor
from odenet.studies.executors.events import ENDS, Emit, RunEvent, RunFailed, RunReleased
from odenet.studies.executors.fused import claim_key, group_runs
from odenet.studies.executors.ray.cluster import (
    RayConfig,
    check_options,
    connect,
    task_resources,
)
from odenet.studies.executors.ray.messages import (
    TaskFailed,
    TaskRequest,
    WorkerMessage,
    WorkerSettings,
    WorkerStarted,
)
from odenet.studies.executors.ray.worker import SHIPPED, run_task
from odenet.studies.records import RunRecord

log = logging.getLogger("odenet.studies")


def make_ray_executor(
    config: RayConfig, device: str, fuse_max: int, cuda_graphs: bool | None
) -> RayExecutor:
    """Connect to Ray and check the resources (ConfigError before anything is written)."""
    check_options(config)
    ray = connect(config)
    gpus, slots = task_resources(ray, config, device, cuda_graphs)
    settings = WorkerSettings("fused" if gpus else "sequential", device, fuse_max, cuda_graphs)
    return RayExecutor(ray, config, gpus, slots, settings)


@dataclass(eq=False)
class Task:
    """One submitted Ray task: its runs (the driver's records) and where it stands."""

    runs: dict[str, RunRecord]  # id -> the run as the driver claimed it
    tries: int  # submissions so far (1 = first)
    ref: object = None  # the ObjectRefGenerator
    worker: WorkerStarted | None = None  # where it runs, once it said so
    ended: set[str] = field(default_factory=set)  # runs finished or failed
    error: str | None = None  # why the task failed outside its runs

    def receive(self, message: WorkerMessage, emit: Emit) -> None:
        """One message of the task's worker: run events go to ``emit``, the rest is noted."""
        if isinstance(message, WorkerStarted):
            self.worker = message
            log.info(
                "ray: %s on %s (pid %s, %s)", ", ".join(self.runs), message.host, message.pid,
                message.device,
            )  # fmt: skip
        elif isinstance(message, TaskFailed):
            self.error = message.error  # the task ends next; its runs are retried, then failed
        elif isinstance(message, RunEvent) and message.run_id in self.runs:
            if isinstance(message, ENDS):
                self.ended.add(message.run_id)
            emit(message)
        else:
            raise ValueError(f"unexpected message {message!r} from the Ray task of {self.runs}")


@dataclass(frozen=True)
class _Lost:
    """A task that ended without finishing its runs (its worker died, or it raised)."""

    message: str


class RayExecutor(Executor):
    """Runs the runs it is given as Ray tasks, as many at once as the cluster has room for.
    Final."""

    name = "ray"

    def __init__(
        self, ray, config: RayConfig, gpus: float, slots: int, settings: WorkerSettings
    ) -> None:
        """ray: the initialised module; gpus: per task; slots: tasks in flight at most;
        settings: what each worker runs."""
        self.ray, self.config, self.slots, self.settings = ray, config, slots, settings
        fused = settings.executor == "fused"
        self.capacity = settings.fuse_max if fused else 1
        self.key = claim_key if fused else None
        self._remote = ray.remote(run_task).options(
            num_cpus=config.cpus_per_run, num_gpus=gpus, max_retries=0, num_returns="streaming"
        )
        self._inbox: queue.Queue = queue.Queue()  # (task, list of messages | _Lost | None)
        self._tasks: set[Task] = set()

    def free(self) -> bool:
        return len(self._tasks) < self.slots

    def busy(self) -> bool:
        return bool(self._tasks)

    def submit(self, runs: list[RunRecord], emit: Emit) -> None:
        for group in group_runs(runs, self.capacity):
            self._submit(Task({r.id: r for r in group}, tries=1))

    def poll(self, emit: Emit, timeout: float) -> None:
        """Handle one item of a task: a list of its messages, or its end."""
        try:
            task, item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return
        if task not in self._tasks:  # an item of a task given up
            return
        if isinstance(item, list):
            try:
                for message in item:
                    task.receive(message, emit)
            except LeaseLost:  # another process took one of its runs: the task stops
                self._stop(task, emit)
        else:
            self._tasks.discard(task)
            self._ended(task, item, emit)

    def cancel(self) -> None:
        for task in self._tasks:
            try:
                self.ray.cancel(task.ref, force=True)
            except Exception:  # noqa: BLE001 - it ended meanwhile; its runs go back anyway
                log.debug("ray: cancelling %s failed", ", ".join(task.runs), exc_info=True)
        self._tasks.clear()

    def _stop(self, task: Task, emit: Emit) -> None:
        """Cancel a task one of whose runs was taken by another process (the runner dropped
        that run); its other unfinished runs go back to pending, to be claimed again."""
        self._tasks.discard(task)
        try:
            self.ray.cancel(task.ref, force=True)
        except Exception:  # noqa: BLE001 - it ended meanwhile
            log.debug("ray: cancelling %s failed", ", ".join(task.runs), exc_info=True)
        for run_id in task.runs:
            if run_id not in task.ended:
                emit(RunReleased(run_id))  # the dropped run's is ignored by the runner

    def _submit(self, task: Task) -> None:
        """Send the task's runs with their files as the study holds them now."""
        files = {}
        for run_id, run in task.runs.items():
            paths = (run.run_dir / name for name in SHIPPED)
            files[run_id] = {p.name: p.read_bytes() for p in paths if p.is_file()}
        request = TaskRequest(tuple(task.runs.values()), files, self.settings)
        task.ref = self._remote.remote(request)
        self._tasks.add(task)
        threading.Thread(target=self._read, args=(task,), daemon=True).start()

    def _read(self, task: Task) -> None:
        """Thread: the task's items into the inbox, then None (ended) or _Lost."""
        try:
            for ref in task.ref:
                self._inbox.put((task, self.ray.get(ref)))
            self._inbox.put((task, None))
        except Exception as err:  # noqa: BLE001 - the worker or its node died, or a bug
            self._inbox.put((task, _Lost(f"{type(err).__name__}: {err}".splitlines()[0])))

    def _ended(self, task: Task, item: _Lost | None, emit: Emit) -> None:
        """A task ended: resubmit its unfinished runs, or fail them after the last retry."""
        unfinished = {i: r for i, r in task.runs.items() if i not in task.ended}
        if not unfinished:
            return
        reason = item.message if isinstance(item, _Lost) else task.error or "it ended early"
        if task.tries <= self.config.max_retries:
            log.warning(
                "ray: task of %s lost (%s); resubmitting from the last checkpoint (retry %d/%d)",
                ", ".join(unfinished), reason, task.tries, self.config.max_retries,
            )  # fmt: skip
            self._submit(Task(unfinished, tries=task.tries + 1))
            return
        for run_id in unfinished:
            emit(RunFailed(run_id, f"the Ray task failed {task.tries} times: {reason}"))
