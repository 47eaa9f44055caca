"""The Ray executor's driver loop: submits tasks, reads their events, replays them, retries.

``Driver(executor, store, observer).run(runs)`` is one ``RayExecutor.run``: it submits the
claimed runs (a fusion group per task), claims more while the cluster has room, and turns each
task's events (``ray_worker``) into the same store and observer calls a local run makes, the
checkpoint bytes into ``runs/<id>/checkpoint.pt`` first. Each task is read by a thread of its
own into one queue; everything else (every store write) happens in the calling thread.
"""

from __future__ import annotations

import logging
import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from odenet.studies.runner import StudyObserver
from odenet.studies.store import RunRecord, Store
from odenet.training.checkpoint import CHECKPOINT, save_bytes, save_result

if TYPE_CHECKING:
    from odenet.studies.ray_executor import RayExecutor

log = logging.getLogger("odenet.studies")


@dataclass(eq=False)
class Task:
    """One submitted Ray task: its runs (the driver's records) and where it stands."""

    runs: dict[str, RunRecord]  # id -> the run as the driver claimed it
    tries: int  # submissions so far (1 = first)
    ref: object = None  # the ObjectRefGenerator
    facts: dict = field(default_factory=dict)  # the worker's hello: pid, host, device
    ended: set[str] = field(default_factory=set)  # runs finished, failed or given back
    error: str | None = None  # why the task failed outside its runs (its "error" event)


class Driver:
    """One ``RayExecutor.run``: submits, reads the tasks' events, replays them, retries."""

    def __init__(self, executor: RayExecutor | None, store: Store, observer: StudyObserver) -> None:
        self.ex, self.store, self.observer = executor, store, observer
        self.events: queue.Queue = queue.Queue()  # (task, list of events | _Lost | None)
        self.tasks: set[Task] = set()
        self.drained = False  # the last claim found no pending run

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
                try:
                    self.ex.ray.cancel(task.ref, force=True)
                except Exception:  # noqa: BLE001 - it ended meanwhile; its runs go back anyway
                    log.debug("ray: cancelling %s failed", ", ".join(task.runs), exc_info=True)
                for run_id in set(task.runs) - task.ended:
                    self.store.release(run_id)
            raise

    def _fill(self) -> None:
        """Claim and submit runs while the cluster has room for more tasks (after an empty
        claim, not again until a task ends: no write transaction per event)."""
        while len(self.tasks) < self.ex.slots and not self.drained:
            claimed = self.store.claim(self.ex.capacity, self.ex.name, self.ex.key)
            if not claimed:
                self.drained = True
                return
            self._submit_claimed([self.store.run(i) for i in claimed])

    def _submit_claimed(self, runs: list[RunRecord]) -> None:
        from odenet.studies.fused_executor import group_runs

        for group in group_runs(runs, self.ex.capacity):
            self._submit(Task({r.id: r for r in group}, tries=1))

    def _submit(self, task: Task) -> None:
        """Send the task's runs with their checkpoints as the study holds them now."""
        files = {}
        for run_id, run in task.runs.items():
            path = run.run_dir / CHECKPOINT
            files[run_id] = {CHECKPOINT: path.read_bytes()} if path.is_file() else {}
        task.ref = self.ex.remote.remote(list(task.runs.values()), files, self.ex.settings)
        self.tasks.add(task)
        threading.Thread(target=self._read, args=(task,), daemon=True).start()

    def _read(self, task: Task) -> None:
        """Thread: the task's items into the event queue, then None (ended) or _Lost."""
        try:
            for ref in task.ref:
                self.events.put((task, self.ex.ray.get(ref)))
            self.events.put((task, None))
        except Exception as err:  # noqa: BLE001 - the worker or its node died, or a bug
            self.events.put((task, _Lost(f"{type(err).__name__}: {err}".splitlines()[0])))

    def _handle(self, task: Task, item) -> None:
        if isinstance(item, list):
            for event in item:
                self._replay(task, event)
            return
        self.tasks.discard(task)
        self.drained = False
        unfinished = {i: r for i, r in task.runs.items() if i not in task.ended}
        if not unfinished:
            return
        reason = item.message if isinstance(item, _Lost) else task.error or "it ended early"
        if task.tries <= self.ex.config.max_retries:
            log.warning(
                "ray: task of %s lost (%s); resubmitting from the last checkpoint (retry %d/%d)",
                ", ".join(unfinished), reason, task.tries, self.ex.config.max_retries,
            )  # fmt: skip
            self._submit(Task(unfinished, tries=task.tries + 1))
            return
        for run_id in unfinished:
            self.store.fail(run_id, f"the Ray task failed {task.tries} times: {reason}")
            self.observer.on_run_end(self.store.run(run_id))

    def _replay(self, task: Task, event: tuple) -> None:
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

    def _with_provenance(self, task: Task, run_id: str, result: dict) -> dict:
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
