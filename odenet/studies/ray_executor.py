"""The Ray executor: a study's runs as Ray tasks, on every GPU of a node or on a cluster.

The driver (the ``odenet study`` process) owns the study store and is its only writer. It
claims runs as the local executors do (on GPUs a fusion group per claim, with the fused
executor's claim key; on CPUs one run), submits each claim as one Ray task
(``ray_worker.run_task``, a streaming generator, with ``num_gpus`` / ``num_cpus`` per run) and
keeps as many tasks in flight as the cluster has room for, claiming more as tasks end. Each task
streams its events back (per-epoch metrics, step logs, observer events, each epoch's checkpoint
bytes); the driver writes the checkpoint into ``runs/<id>/`` and replays every call on the
store and the observer, so a run is recorded as a local run records it. Nothing but Ray's
object transfer is needed between the nodes: no shared file system.

Faults: a task lost (worker or node killed) is submitted again with the runs' latest
checkpoints, at most ``RayConfig.max_retries`` times (Ray's own retries are off: they would
re-send the original, stale checkpoint), then its unfinished runs are recorded failed with the
reason and the study goes on. Ctrl-C cancels the tasks in flight and gives their runs back
(``store.release``). A killed driver leaves its runs 'running' under its dead pid: the next
``odenet study`` on the directory reclaims them (``Store.reclaim_dead``) and resumes them from
their checkpoints. Provenance: ``execution = {"executor": "ray", "node", "node_ip", "device",
"worker_executor", "members"}``.

Ray is imported only here and in the worker, never at import time (``import_ray``).
"""

from __future__ import annotations

import logging
import math
import queue
import socket
import threading
from dataclasses import dataclass, field

from odenet.errors import ConfigError
from odenet.studies.records import RunRecord
from odenet.studies.runner import Executor, StudyObserver
from odenet.studies.store import Store
from odenet.training.checkpoint import CHECKPOINT, save_bytes, save_result

log = logging.getLogger("odenet.studies")
INSTALL = 'pip install "odenet[ray]"'


@dataclass(frozen=True)
class RayConfig:
    """Where and with what resources the Ray executor runs each task."""

    address: str | None = None  # an existing cluster (HOST:PORT, ray://HOST:PORT, auto); None:
    # start a local Ray instance with this machine's CPUs and GPUs
    gpus_per_run: float | None = None  # GPUs per task (None: 1 when the cluster has GPUs and
    # the study's device is not cpu, else 0); a task with GPUs trains a fusion group
    cpus_per_run: float = 1.0  # CPUs per task (its worker's torch threads)
    max_retries: int = 2  # resubmissions of a lost task (from its runs' latest checkpoints)

    def given(self) -> bool:
        """Whether any option differs from the defaults (they need --executor ray)."""
        return self != RayConfig()


def import_ray():
    """The ray module, or ConfigError naming the extra to install."""
    try:
        import ray
    except ImportError:
        raise ConfigError(f"--executor ray needs Ray, which is not installed: {INSTALL}") from None
    return ray


def connect(config: RayConfig):
    """ray, initialised: the instance this process already runs (e.g. a notebook's own
    ``ray.init``), the cluster at ``config.address`` or a new local instance with this
    machine's CPUs and GPUs. ConfigError for an unreachable address."""
    ray = import_ray()
    if config.address is not None:
        _check_reachable(config.address)
    if ray.is_initialized():  # a notebook's (or a test's) own ray.init
        return ray
    kwargs = {"include_dashboard": False, "log_to_driver": False, "logging_level": logging.WARNING}
    if config.address is None:
        ray.init(address="local", **kwargs)
        return ray
    try:
        ray.init(address=config.address, **kwargs)
    except (ConnectionError, RuntimeError, ValueError) as err:
        raise ConfigError(
            f"--ray-address {config.address}: cannot join a Ray cluster there ({err}); "
            "start one with `ray start --head` or fix the address"
        ) from None
    return ray


def _check_reachable(address: str) -> None:
    """ConfigError unless HOST:PORT (or ray://HOST:PORT) accepts a TCP connection within 5 s:
    ray.init itself waits minutes for an address where nothing listens."""
    if address == "auto":
        return
    hostport = address.removeprefix("ray://")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT or auto")
    try:
        socket.create_connection((host, int(port)), timeout=5.0).close()
    except OSError as err:
        raise ConfigError(
            f"--ray-address {address}: nothing answers there ({err.strerror or err}); "
            "start the cluster with `ray start --head` or fix the address"
        ) from None


def make_ray_executor(
    config: RayConfig, device: str, fuse_max: int, cuda_graphs: bool | None
) -> RayExecutor:
    """Connect to Ray and check the resources (ConfigError before anything is written)."""
    from odenet.studies.ray_worker import WorkerSettings

    for name, value in (
        ("gpus-per-run", config.gpus_per_run),
        ("cpus-per-run", config.cpus_per_run),
    ):
        if value is not None and (not math.isfinite(value) or value < 0):
            raise ConfigError(f"--{name} must be a non-negative number, got {value!r}")
    if config.cpus_per_run == 0 and not config.gpus_per_run:
        raise ConfigError("--cpus-per-run 0 needs --gpus-per-run > 0: a task needs a resource")
    ray = connect(config)
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    most_gpus = max((n.get("GPU", 0.0) for n in nodes), default=0.0)
    most_cpus = max((n.get("CPU", 0.0) for n in nodes), default=0.0)
    gpus = config.gpus_per_run
    if gpus is None:
        gpus = 1.0 if most_gpus >= 1 and device != "cpu" else 0.0
    if gpus > most_gpus:
        raise ConfigError(
            f"--gpus-per-run {gpus:g}: no node of the Ray cluster has that many GPUs "
            f"(the most is {most_gpus:g}); lower it"
        )
    if config.cpus_per_run > most_cpus:
        raise ConfigError(
            f"--cpus-per-run {config.cpus_per_run:g}: no node of the Ray cluster has that many "
            f"CPUs (the most is {most_cpus:g}); lower it"
        )
    if gpus == 0 and device == "cuda":
        raise ConfigError("--device cuda with --executor ray needs GPUs: give --gpus-per-run 1")
    if gpus == 0 and cuda_graphs:
        raise ConfigError("--cuda-graphs needs GPUs: drop it or give --gpus-per-run 1")
    total = ray.cluster_resources()
    slots = total.get("GPU", 0.0) / gpus if gpus else total.get("CPU", 0.0) / config.cpus_per_run
    settings = WorkerSettings("fused" if gpus else "sequential", device, fuse_max, cuda_graphs)
    return RayExecutor(ray, config, gpus, max(1, int(slots)), settings)


@dataclass(eq=False)
class _Task:
    """One submitted Ray task: its runs (the driver's records) and where it stands."""

    runs: dict[str, RunRecord]  # id -> the run as the driver claimed it
    tries: int  # submissions so far (1 = first)
    ref: object = None  # the ObjectRefGenerator
    facts: dict = field(default_factory=dict)  # the worker's hello: pid, host, device
    ended: set[str] = field(default_factory=set)  # runs finished, failed or given back
    error: str | None = None  # why the task failed outside its runs (its "error" event)


class RayExecutor(Executor):
    """Runs claimed runs as Ray tasks, keeping the cluster full (see the module docstring)."""

    name = "ray"

    def __init__(self, ray, config: RayConfig, gpus: float, slots: int, settings) -> None:
        """ray: the initialised module; gpus: per task; slots: tasks in flight at most."""
        from odenet.studies.fused_executor import claim_key
        from odenet.studies.ray_worker import run_task

        self.ray, self.config, self.slots, self.settings = ray, config, slots, settings
        fused = settings.executor == "fused"
        self.capacity = settings.fuse_max if fused else 1
        self.key = claim_key if fused else None
        self._remote = ray.remote(run_task).options(
            num_cpus=config.cpus_per_run, num_gpus=gpus, max_retries=0
        )

    def run(self, runs: list[RunRecord], store: Store, observer: StudyObserver) -> None:
        """Train ``runs`` and every run claimed while they train, until none is pending."""
        _Driver(self, store, observer).run(runs)


class _Driver:
    """One ``RayExecutor.run``: submits, reads the tasks' events, replays them, retries."""

    def __init__(self, executor: RayExecutor, store: Store, observer: StudyObserver) -> None:
        self.ex, self.store, self.observer = executor, store, observer
        self.events: queue.Queue = queue.Queue()  # (task, list of events | _Lost | None)
        self.tasks: set[_Task] = set()

    def run(self, runs: list[RunRecord]) -> None:
        try:
            self._submit_claimed(runs)
            while self.tasks:
                self._fill()
                try:
                    task, item = self.events.get(timeout=0.5)
                except queue.Empty:
                    continue
                if task in self.tasks:  # not an item of a task already given up
                    self._handle(task, item)
        except BaseException:  # Ctrl-C (or a bug): cancel the tasks, give their runs back
            for task in self.tasks:
                self.ex.ray.cancel(task.ref, force=True)
                for run_id in set(task.runs) - task.ended:
                    self.store.release(run_id)
            raise

    def _fill(self) -> None:
        """Claim and submit runs while the cluster has room for more tasks."""
        while len(self.tasks) < self.ex.slots:
            claimed = self.store.claim(self.ex.capacity, self.ex.name, self.ex.key)
            if not claimed:
                return
            self._submit_claimed([self.store.run(i) for i in claimed])

    def _submit_claimed(self, runs: list[RunRecord]) -> None:
        from odenet.studies.fused_executor import group_runs

        for group in group_runs(runs, self.ex.capacity):
            self._submit(_Task({r.id: r for r in group}, tries=1))

    def _submit(self, task: _Task) -> None:
        """Send the task's runs with their checkpoints as the study holds them now."""
        files = {}
        for run_id, run in task.runs.items():
            path = run.run_dir / CHECKPOINT
            files[run_id] = {CHECKPOINT: path.read_bytes()} if path.is_file() else {}
        task.ref = self.ex._remote.remote(list(task.runs.values()), files, self.ex.settings)
        self.tasks.add(task)
        threading.Thread(target=self._read, args=(task,), daemon=True).start()

    def _read(self, task: _Task) -> None:
        """Thread: the task's items into the event queue, then None (ended) or _Lost."""
        try:
            for ref in task.ref:
                self.events.put((task, self.ex.ray.get(ref)))
            self.events.put((task, None))
        except Exception as err:  # noqa: BLE001 - the worker or its node died, or a bug
            self.events.put((task, _Lost(f"{type(err).__name__}: {err}".splitlines()[0])))

    def _handle(self, task: _Task, item) -> None:
        if isinstance(item, list):
            for event in item:
                self._replay(task, event)
            return
        self.tasks.discard(task)
        unfinished = {i: r for i, r in task.runs.items() if i not in task.ended}
        if not unfinished:
            return
        reason = item.message if isinstance(item, _Lost) else task.error or "it ended early"
        if task.tries <= self.ex.config.max_retries:
            log.warning(
                "ray: task of %s lost (%s); resubmitting from the last checkpoint (retry %d/%d)",
                ", ".join(unfinished), reason, task.tries, self.ex.config.max_retries,
            )  # fmt: skip
            self._submit(_Task(unfinished, tries=task.tries + 1))
            return
        for run_id in unfinished:
            self.store.fail(run_id, f"the Ray task failed {task.tries} times: {reason}")
            self.observer.on_run_end(self.store.run(run_id))

    def _replay(self, task: _Task, event: tuple) -> None:
        """One worker event on the real store / observer / study directory."""
        kind = event[0]
        if kind == "hello":
            task.facts = event[1]
            log.info(
                "ray: %s on %s (pid %s, %s)", ", ".join(task.runs), task.facts["host"],
                task.facts["pid"], task.facts["device"],
            )  # fmt: skip
        elif kind == "files":
            _, run_id, files = event
            for name, data in files.items():
                save_bytes(task.runs[run_id].run_dir / name, data)
        elif kind == "store":
            _, method, args, kwargs = event
            run_id = args[0]
            if method == "finish":
                args = (run_id, self._with_provenance(task, run_id, args[1]))
            if method in ("finish", "fail", "release"):
                task.ended.add(run_id)
            getattr(self.store, method)(*args, **kwargs)
        elif kind == "observer":
            _, method, run_id, args = event
            if method == "on_run_end":
                self.observer.on_run_end(self.store.run(run_id))
            else:
                getattr(self.observer, method)(task.runs[run_id], *args)
        elif kind == "error":
            task.error = event[1]  # the task ends next; its runs are retried, then failed
        else:
            raise ValueError(f"unknown event {kind!r} from a Ray task")

    def _with_provenance(self, task: _Task, run_id: str, result: dict) -> dict:
        """The result with what executed it, written as the run's result.json."""
        inner = result["provenance"].get("execution") or {}
        result["provenance"]["execution"] = {
            **inner,
            "executor": "ray",
            "worker_executor": inner.get("executor"),
            "node": task.facts.get("host"),
            "node_ip": task.facts.get("node_ip"),
            "device": task.facts.get("device"),
        }
        save_result(task.runs[run_id].run_dir, result)
        return result


@dataclass(frozen=True)
class _Lost:
    """A task that ended without finishing its runs (its worker died, or it raised)."""

    message: str
