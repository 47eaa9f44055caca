"""The executor interface as the runner drives it (an executor with runs in flight, here a
stand-in without Ray), the recorder's refusals, and the package's layout: one claim loop,
one result.json writer, no import circle among the executors."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from odenet.studies.executors.base import Executor
from odenet.studies.executors.events import (
    EpochEnded,
    RunFinished,
    RunReleased,
    RunStarted,
    StepTaken,
)
from odenet.studies.runner import Recorder, StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.store import Store
from odenet.training import TrainConfig

PACKAGE = Path(__file__).resolve().parents[1] / "odenet"
SPEC = StudySpec(
    base=TrainConfig(epochs=1, dataset="synthetic"),
    orders=(1, 2),
    depths=(8,),
    lrs=(0.1, 0.2, 0.4),
)


class InFlight(Executor):
    """Up to ``slots`` runs in flight; each poll reports one run's epoch and end. Final."""

    name, capacity = "inflight", 1

    def __init__(self, slots: int) -> None:
        self.slots, self.running, self.most, self.cancelled = slots, [], 0, False

    def free(self) -> bool:
        return len(self.running) < self.slots

    def submit(self, runs, emit) -> None:
        for run in runs:
            emit(RunStarted(run.id))
            self.running.append(run.id)
        self.most = max(self.most, len(self.running))

    def busy(self) -> bool:
        return bool(self.running)

    def poll(self, emit, timeout) -> None:
        run_id = self.running.pop(0)
        emit(StepTaken(run_id, 1, 1, 0.5))
        emit(EpochEnded(run_id, {"epoch": 1, "train_loss": 0.5, "test_acc": 0.25}))
        result = {"status": "done", "epochs_done": 1, "test_acc": 0.25, "provenance": {},
                  "history": [{"epoch": 1, "train_loss": 0.5, "test_acc": 0.25}]}  # fmt: skip
        emit(RunFinished(run_id, result))

    def cancel(self) -> None:
        self.cancelled = True


class Ends(StudyObserver):
    def __init__(self, stop_after: int | None = None) -> None:
        self.ended, self.stop_after = [], stop_after

    def on_run_end(self, run) -> None:
        self.ended.append((run.id, run.status, run.epochs_done))
        if len(self.ended) == self.stop_after:
            raise KeyboardInterrupt


@pytest.fixture
def store(tmp_path):
    return Store.create(tmp_path, SPEC, {})


def test_the_runner_keeps_an_executor_with_room_full_and_records_what_it_reports(store):
    executor, observer = InFlight(slots=2), Ends()
    run_pending(store, executor, observer, wait=False)
    assert executor.most == 2 and not executor.cancelled
    assert observer.ended == [(r.id, "done", 1) for r in store.runs()]  # claimed in grid order
    assert {r.executor for r in store.runs()} == {"inflight"}
    assert all(len(store.epochs(r.id)) == 1 for r in store.runs())


def test_an_interrupt_cancels_the_executor_and_gives_back_every_run_not_ended(store):
    executor = InFlight(slots=2)
    with pytest.raises(KeyboardInterrupt):
        run_pending(store, executor, Ends(stop_after=1), wait=False)
    assert executor.cancelled
    assert [r.status for r in store.runs()] == ["done", "pending", *["pending"] * 4]


def test_the_recorder_refuses_events_of_runs_it_did_not_hand_out(store):
    recorder = Recorder(store, StudyObserver())
    first, second = (r.id for r in store.runs()[:2])
    with pytest.raises(ValueError, match="not a run this study handed out"):
        recorder.record(RunStarted(first))
    recorder.track(store.claim(1, "x"))
    recorder.record(RunReleased(first))
    assert store.run(first).status == "pending" and recorder.ended == 1
    with pytest.raises(ValueError, match="already ended"):
        recorder.record(RunStarted(first))  # its last event came
    with pytest.raises(ValueError, match="not a run"):
        recorder.record(RunStarted(second))


def _modules() -> dict[str, ast.Module]:
    root = PACKAGE.parent
    return {
        ".".join(p.relative_to(root).with_suffix("").parts): ast.parse(p.read_text())
        for p in PACKAGE.rglob("*.py")
    }


def _imports(tree: ast.Module) -> set[str]:
    found = set()
    for node in ast.walk(tree):  # top level, in functions and under TYPE_CHECKING alike
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            found.add(node.module or "")
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return found


def _calls(tree: ast.Module, name: str) -> bool:
    return any(
        isinstance(n, ast.Call)
        and (getattr(n.func, "attr", None) == name or getattr(n.func, "id", None) == name)
        for n in ast.walk(tree)
    )


def test_one_claim_loop_and_one_result_writer():
    modules = _modules()
    claimers = [m for m, t in modules.items() if _calls(t, "claim")]
    # the store implements the claim (Store.claim -> its SQL); the runner is the one that claims
    assert [m for m in claimers if not m.startswith("odenet.studies.store.")] == [
        "odenet.studies.runner"
    ]
    writers = [m for m, t in modules.items() if _calls(t, "save_result")]
    assert writers == ["odenet.training.engine"]  # result.json: written once, by the engine


def test_the_executors_import_no_circle_the_store_or_the_factory():
    """Executors never reach for the store or the runner (they report events), nor for the
    factory or a package's names (the Ray worker imports the executor it runs)."""
    packages = {"odenet.studies.executors", "odenet.studies.executors.ray"}
    modules = {
        m: _imports(t)
        for m, t in _modules().items()
        if m.startswith("odenet.studies.executors.") and not m.endswith("__init__")
    }
    for module, imported in modules.items():
        assert not imported & packages, module
        assert not {
            n for n in imported if n.startswith(("odenet.studies.store", "odenet.studies.runner"))
        }, module
    graph = {m: imported & set(modules) for m, imported in modules.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, f"import circle: {' -> '.join((*path, module))}"
        if module not in done:
            for imported in graph[module]:
                visit(imported, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())
