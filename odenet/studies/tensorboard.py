"""TensorBoard event files of a study, derived from its store: ``DIR/tensorboard/<run id>/``.

Per run: ``train/loss`` and ``train/lr`` at every logged optimizer step (the store's step log:
the same steps and values, as float32), ``epoch/train_loss``, ``epoch/train_acc``,
``epoch/test_loss`` and ``epoch/test_acc`` (fractions, as stored) at step = epoch, and the
run's HParams summary (its axes: depth, solver, lr, the swept fields, seed; the metrics: the
last ``epoch/test_acc``, ``run/best_test_acc`` and ``run/diverged``, written when the run
ends), so that ``tensorboard --logdir DIR/tensorboard`` shows the grid in the HParams
dashboard. The driver writes them (``TensorBoardObserver``, ``odenet study --tensorboard``),
so no file system needs to be shared with Ray workers; ``export_tensorboard`` writes the same
files for a study run without it (``odenet report --tensorboard``), as does resuming it with
``--tensorboard``.

Every file is written whole, once, through the atomic writer (never appended to; its temp
file is named without "tfevents", so TensorBoard never reads a file being written); a run's
directory says by its file names what it holds, and writing brings it up to date with the
store (``sync``):

* ``events.out.tfevents.a.hparams``: the HParams summary, written first;
* ``events.out.tfevents.b.<last step>.<last epoch>``: the steps and epochs after those of the
  files before it, written when an epoch ends (its checkpoint saved: rows past it may still
  be replaced by a resume) and when the run finishes;
* ``events.out.tfevents.c.result``: the run's metrics and the end of its HParams session
  (status Success when done, Failure when diverged), when it is done or diverged.

TensorBoard reads a directory's event files in name order, and the names grow as they are
written, so a running TensorBoard picks each new file up. Writing again adds nothing when the
store holds nothing new (no duplicate points); a resume adds the epochs the earlier attempt
did not finish (none lost). A directory holding more than the store (a run reset and
trained again) is rewritten from the start. tensorboard is an optional extra
(``odenet[tensorboard]``), imported only here.
"""

from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from odenet.errors import ConfigError
from odenet.extras import require
from odenet.files import atomic_write_bytes
from odenet.studies.records import RunRecord
from odenet.studies.runner import StudyObserver
from odenet.studies.store import Store, StudyLayout
from odenet.studies.store.schema import FINISHED

PREFIX = "events.out.tfevents."
HPARAMS = PREFIX + "a.hparams"
CHUNK = PREFIX + "b."
RESULT = PREFIX + "c.result"
EPOCH_SCALARS = ("train_loss", "train_acc", "test_loss", "test_acc")  # epoch/<name>
METRICS = (
    ("epoch/test_acc", "test accuracy (last epoch)"),
    ("run/best_test_acc", "best test accuracy"),
    ("run/diverged", "diverged (1) or not (0)"),
)


def check_tensorboard(feature: str = "--tensorboard") -> None:
    """ConfigError naming the extra (odenet[tensorboard]) when tensorboard is not installed."""
    require("tensorboard", "tensorboard", feature)


class TensorBoardWriter:
    """Writes the event files of a study's runs from its store (``sync``)."""

    def __init__(self, store: Store) -> None:
        check_tensorboard()
        self.store, self.root = store, StudyLayout(store.dir).tensorboard
        self._domains = _domains(store.spec().axes)

    def run_dir(self, run_id: str) -> Path:
        return self.root / run_id

    def sync(self, run: RunRecord, *, final: bool = False) -> bool:
        """Bring the run's directory up to date with the store; ``final``: the run is done or
        diverged (its rows are all final, and its metrics are written). Whether a file was
        written."""
        folder = self.run_dir(run.id)
        steps, epochs = self.store.steps(run.id), self.store.epochs(run.id)
        last_step = max((r["step"] for r in steps), default=0)
        last_epoch = max((m["epoch"] for m in epochs), default=0)
        held = _held(folder)
        if held[0] > last_step or held[1] > last_epoch:  # more than the store: trained anew
            _remove_events(folder)
            held = (0, 0)
        wrote = False
        if not (folder / HPARAMS).exists():
            self._write(folder / HPARAMS, self._hparams(run))
            wrote = True
        new = [s for s in steps if s["step"] > held[0]], [m for m in epochs if m["epoch"] > held[1]]
        if new[0] or new[1]:
            name = f"{CHUNK}{last_step:012d}.{last_epoch:06d}"
            self._write(folder / name, _scalars(*new))
            wrote = True
        if final and not (folder / RESULT).exists():
            self._write(folder / RESULT, _result(run))
            wrote = True
        return wrote

    def _hparams(self, run: RunRecord) -> list:
        from tensorboard.plugins.hparams import summary_v2 as hp

        conversions = {name: convert for name, (_, convert) in self._domains}
        hparams = {name: conversions[name](value) for name, value in run.axes.items}
        config = hp.hparams_config_pb(
            hparams=[hp.HParam(name, hp.Discrete(values)) for name, (values, _) in self._domains],
            metrics=[hp.Metric(tag, display_name=label) for tag, label in METRICS],
            time_created_secs=0.0,
        )
        session = hp.hparams_pb(hparams, trial_id=run.id, start_time_secs=time.time())
        return [_event(0, config), _event(0, session)]

    def _write(self, path: Path, events: list) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        buffer = io.BytesIO()
        writer = RecordWriter(buffer)
        writer.write(Event(wall_time=time.time(), file_version="brain.Event:2").SerializeToString())
        for event in events:
            writer.write(event.SerializeToString())
        # a temp name without "tfevents": TensorBoard would read the temp file too
        atomic_write_bytes(path, buffer.getvalue(), temp_stem="odenet-events")


class TensorBoardObserver(StudyObserver):
    """Keeps the event files of the study's runs up to date while it runs: when it starts
    (the runs finished before, e.g. by a run of the study without --tensorboard), when an
    epoch ends (checkpoint saved) and when a run is done or diverged."""

    def __init__(self, store: Store) -> None:
        self.writer = TensorBoardWriter(store)

    def on_study_start(self, runs: list[RunRecord]) -> None:
        for run in runs:
            if run.status in FINISHED:
                self.writer.sync(run, final=True)

    def on_epoch_end(self, run: RunRecord, metrics: dict) -> None:
        self.writer.sync(run)

    def on_run_end(self, run: RunRecord) -> None:
        if run.status in FINISHED:
            self.writer.sync(run, final=True)


@dataclass
class TensorBoardExport:
    """What ``export_tensorboard`` did."""

    folder: Path  # DIR/tensorboard
    written: list[str] = field(default_factory=list)  # runs with a new file
    unfinished: list[str] = field(default_factory=list)  # not written: not done or diverged


def export_tensorboard(study_dir: str | Path) -> TensorBoardExport:
    """Write (or bring up to date) the event files of every finished run of a study that ran
    without ``--tensorboard``; unfinished runs are left to the study that trains them. Running
    it again writes nothing new. ConfigError without tensorboard or when the directory is
    read-only, before anything is written."""
    store = Store.open(study_dir)
    writer = TensorBoardWriter(store)
    if not os.access(store.dir, os.W_OK):
        raise ConfigError(f"{str(store.dir)!r} is read-only: no TensorBoard files written")
    out = TensorBoardExport(writer.root)
    for run in store.runs():
        if run.status not in FINISHED:
            out.unfinished.append(run.id)
        elif writer.sync(run, final=True):
            out.written.append(run.id)
    return out


# ---- events --------------------------------------------------------------------------------
def _event(step: int, summary):
    from tensorboard.compat.proto.event_pb2 import Event

    return Event(wall_time=time.time(), step=step, summary=summary)


def _scalar(tag: str, step: int, value: float | None):
    from tensorboard.compat.proto.summary_pb2 import Summary

    if value is None:
        return None
    return _event(step, Summary(value=[Summary.Value(tag=tag, simple_value=value)]))


def _scalars(steps: list[dict], epochs: list[dict]) -> list:
    events = []
    for s in steps:
        events += [_scalar(f"train/{name}", s["step"], s[name]) for name in ("loss", "lr")]
    for m in epochs:
        events += [_scalar(f"epoch/{name}", m["epoch"], m.get(name)) for name in EPOCH_SCALARS]
    return [e for e in events if e is not None]


def _result(run: RunRecord) -> list:
    """The run's metrics and the end of its HParams session: TensorBoard's status Success for
    a run that is done, Failure for one that diverged (the dashboard can filter by it)."""
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

    step = run.epochs_done
    events = [
        _scalar("run/best_test_acc", step, run.best_test_acc),
        _scalar("run/diverged", step, float(run.status == "diverged")),
    ]
    status = api_pb2.STATUS_FAILURE if run.status == "diverged" else api_pb2.STATUS_SUCCESS
    end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    data = plugin_data_pb2.HParamsPluginData(session_end_info=end)
    value = Summary.Value(tag=metadata.SESSION_END_INFO_TAG, tensor=metadata.NULL_TENSOR,
                          metadata=metadata.create_summary_metadata(data))  # fmt: skip
    events.append(_event(step, Summary(value=[value])))
    return [e for e in events if e is not None]


# ---- the HParams axes ----------------------------------------------------------------------
def _domains(axes: tuple[tuple[str, tuple], ...]) -> list:
    """Per axis: (name, (its values as HParams takes them, the conversion of a run's value)).
    HParams holds bools, ints, floats or strings, one type per axis: ints mixed with floats
    become floats; any other value (None, a tuple) or mix makes every value its string."""
    out = []
    for name, values in axes:
        kinds = {type(v) for v in values}
        if len(kinds) == 1 and kinds <= {bool, int, float, str}:
            convert = _same
        elif kinds <= {int, float}:
            convert = float
        else:
            convert = str
        out.append((name, ([convert(v) for v in values], convert)))
    return out


def _same(value: object) -> object:
    return value


# ---- a run's directory ---------------------------------------------------------------------
def _held(folder: Path) -> tuple[int, int]:
    """(last step, last epoch) that the directory's event files hold, (0, 0) for none."""
    held = (0, 0)
    if folder.is_dir():
        for path in folder.glob(CHUNK + "*"):
            step, _, epoch = path.name[len(CHUNK) :].partition(".")
            if step.isdigit() and epoch.isdigit():
                held = max(held, (int(step), int(epoch)))
    return held


def _remove_events(folder: Path) -> None:
    for path in folder.glob(PREFIX + "*"):
        path.unlink(missing_ok=True)
