"""The executor interface: the runner hands an executor claimed runs and hears back events.

``run_pending`` (odenet.studies.runner) is the only code that claims runs from the store.
Whenever ``executor.free()``, it claims up to ``executor.capacity`` pending runs (with
``executor.key``: only runs whose key equals the first one's, so a claim never straddles two
fusion groups) and hands them to ``executor.submit(runs, emit)``; while ``executor.busy()``
it calls ``executor.poll(emit, timeout)``. The executor reports everything that happens to a
run as events (``odenet.studies.executors.events``) through ``emit``; the runner's recorder
applies them to the store, the run directory and the observer. Every submitted run ends with
exactly one ``RunFinished`` or ``RunFailed`` event, or the runner gives it back when it stops
(Ctrl-C, an error: ``RunReleased``), after ``executor.cancel()``.

A local executor (``LocalExecutor``: ``sequential``, ``fused``) does its work inside
``submit``: it is free again when ``submit`` returns and never busy. The Ray executor keeps
tasks in flight: ``submit`` starts them, ``poll`` reads their events.

The names, ``DEFAULT_FUSE_MAX`` and their checks live here, once, for the study spec, the
factory (``odenet.studies.executors.make_executor``) and the CLI.
"""

from __future__ import annotations

import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable
from pathlib import Path

from odenet.errors import ConfigError
from odenet.studies.executors.events import Emit
from odenet.studies.records import RunRecord
from odenet.training.config import TrainConfig

EXECUTORS = ("auto", "sequential", "fused", "ray")  # auto: fused on CUDA, sequential on CPU
DEFAULT_FUSE_MAX = 8  # members per fused group when --fuse-max is not given
ClaimKey = Callable[[TrainConfig], Hashable | None]


def check_executor(name: object) -> None:
    """ConfigError unless ``name`` is one of ``EXECUTORS``."""
    if name not in EXECUTORS:
        valid = ", ".join(EXECUTORS)
        raise ConfigError(f"--executor: unknown value {name!r}; expected one of: {valid}")


def check_fuse_max(value: object) -> None:
    """ConfigError unless ``value`` is a positive integer (bool is not one)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(f"--fuse-max must be a positive integer, got {value!r}")


class Executor(ABC):
    """Runs the runs it is given and reports on them through events; never claims."""

    name: str  # recorded as the claimer of every run it is given (the store's executor column)
    capacity: int  # most runs per claim
    # Runs claimed together share their key (a run whose key is None is claimed alone);
    # no key function: any runs, in grid order.
    key: ClaimKey | None = None

    @abstractmethod
    def free(self) -> bool:
        """Whether it takes another claim now."""

    @abstractmethod
    def submit(self, runs: list[RunRecord], emit: Emit) -> None:
        """Start ``runs`` (claimed for it: status 'running'); report on them through ``emit``.

        A run's own failure (an exception) is a ``RunFailed`` event, never an exception here:
        the other runs go on. What escapes (Ctrl-C, a store that cannot be written, which
        ``emit`` raises) stops the study; the runner gives the runs that did not end back.
        """

    @abstractmethod
    def busy(self) -> bool:
        """Whether runs it was given are still running (``poll`` reports on them)."""

    @abstractmethod
    def poll(self, emit: Emit, timeout: float) -> None:
        """Report what happened to the running runs since the last call, waiting at most
        ``timeout`` seconds for something to happen."""

    @abstractmethod
    def cancel(self) -> None:
        """Stop every run in flight without reporting on it (the study stops)."""


class LocalExecutor(Executor):
    """An executor that runs its runs in this process, inside ``submit``."""

    def free(self) -> bool:
        return True

    def busy(self) -> bool:
        return False

    def poll(self, emit: Emit, timeout: float) -> None:
        return None

    def cancel(self) -> None:
        return None


def execution_info(executor: str, members: int, reason: str | None, under: dict | None) -> dict:
    """What trained a run, as its provenance records it (``provenance["execution"]``).

    ``{"executor", "members"}`` plus ``"reason"`` when a run was not fused (a scheme that does
    not fuse, a failed group). ``under``: the executor the local one runs for and where, e.g.
    a Ray worker's ``{"executor": "ray", "node": ..., "node_ip": ..., "device": ...}``; its
    name replaces the local one's, which becomes ``"worker_executor"``.
    """
    info = {"executor": executor, "members": members} | ({"reason": reason} if reason else {})
    if under is None:
        return info
    facts = {k: v for k, v in under.items() if k != "executor"}
    return {**info, "executor": under["executor"], "worker_executor": executor, **facts}


def error_message(err: BaseException) -> str:
    """One line: the exception type, its message and where it was raised."""
    frame = traceback.extract_tb(err.__traceback__)[-1] if err.__traceback__ else None
    where = f" (at {Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(err).__name__}: {err}{where}".replace("\n", " ")
