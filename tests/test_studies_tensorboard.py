"""TensorBoard event files, read back with TensorBoard's own reader: every logged step and
epoch of every run as the store holds it (float32), the HParams summary per run, nothing
duplicated by a resume, a retrain or `report --tensorboard` run twice, and one line naming
the extra when tensorboard is missing."""

import dataclasses
import sys

import numpy as np
import pytest

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    SCALARS,
    EventAccumulator,
)
from tensorboard.plugins.hparams import api_pb2, metadata  # noqa: E402

from odenet.nets import ModelConfig  # noqa: E402
from odenet.studies import Store, StudySpec, run_study  # noqa: E402
from odenet.studies.runner import StudyObserver  # noqa: E402
from odenet.studies.store import StudyLayout  # noqa: E402
from odenet.training import TrainConfig  # noqa: E402

DATA = "synthetic:train=96,test=32,size=8"
BASE = TrainConfig(dataset=DATA, epochs=2, batch_size=32, log_every=1, model=ModelConfig(width=4))
SPEC = StudySpec(base=BASE, orders=(1,), depths=(8,), lrs=(0.1, 0.4),
                 sweep={"weight_decay": (0.0, 5e-4)}, tensorboard=True)  # fmt: skip


def _read(folder):
    events = EventAccumulator(str(folder), size_guidance={SCALARS: 0})
    events.Reload()
    return events


def _scalars(events, tag):
    if tag not in events.Tags()["scalars"]:
        return []
    return [(e.step, e.value) for e in events.Scalars(tag)]


def _f32(x):
    return float(np.float32(x))


def check_against_store(study_dir):
    """Every finished run's event files hold exactly the store's steps and epochs (as
    float32), its metrics and its HParams summary; returns the runs checked."""
    store = Store.open(study_dir)
    checked = []
    for run in store.runs():
        if run.status not in ("done", "diverged"):
            continue
        events = _read(StudyLayout(store.dir).tensorboard / run.id)
        steps = store.steps(run.id)
        assert steps, "log_every=1: every step is logged"
        assert _scalars(events, "train/loss") == [(s["step"], _f32(s["loss"])) for s in steps]
        assert _scalars(events, "train/lr") == [(s["step"], _f32(s["lr"])) for s in steps]
        epochs = store.epochs(run.id)
        for name in ("train_loss", "train_acc", "test_loss", "test_acc"):
            want = [(m["epoch"], _f32(m[name])) for m in epochs]
            assert _scalars(events, f"epoch/{name}") == want
        if epochs:  # the last epoch's test accuracy is the run's
            last = (run.epochs_done, _f32(run.test_acc))
            assert _scalars(events, "epoch/test_acc")[-1] == last
        best = [] if run.best_test_acc is None else [(run.epochs_done, _f32(run.best_test_acc))]
        assert _scalars(events, "run/best_test_acc") == best
        diverged = float(run.status == "diverged")
        assert _scalars(events, "run/diverged") == [(run.epochs_done, diverged)]
        content = events.PluginTagToContent(metadata.PLUGIN_NAME)
        start = metadata.parse_session_start_info_plugin_data(
            content[metadata.SESSION_START_INFO_TAG]
        )
        values = {k: v.WhichOneof("kind") and getattr(v, v.WhichOneof("kind"))
                  for k, v in start.hparams.items()}  # fmt: skip
        assert values == dict(run.axes.items)
        end = metadata.parse_session_end_info_plugin_data(content[metadata.SESSION_END_INFO_TAG])
        assert end.status == (api_pb2.STATUS_FAILURE if diverged else api_pb2.STATUS_SUCCESS)
        experiment = metadata.parse_experiment_plugin_data(content[metadata.EXPERIMENT_TAG])
        assert [h.name for h in experiment.hparam_infos] == list(run.axes.names)
        assert [m.name.tag for m in experiment.metric_infos] == [
            "epoch/test_acc", "run/best_test_acc", "run/diverged"
        ]  # fmt: skip
        checked.append(run.id)
    return checked


def _files(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file())


def _contents(folder):
    return {name: (folder / name).read_bytes() for name in _files(folder)}


class StopInSecondEpoch(StudyObserver):
    """Ctrl-C after the first run's second epoch has logged steps (past its checkpoint)."""

    def on_log(self, run, rows):
        if rows[-1].step > 3:  # 3 steps an epoch
            raise KeyboardInterrupt


def test_a_study_with_tensorboard_resumed_and_retrained_matches_its_store(tmp_path):
    out = tmp_path / "study"
    with pytest.raises(KeyboardInterrupt):
        run_study(SPEC, out, observer=StopInSecondEpoch())
    first = Store.open(out).runs()[0]
    assert first.status == "pending" and first.epochs_done == 1
    assert len(Store.open(out).steps(first.id)) > 3  # steps past the checkpoint, stored
    board = StudyLayout(out).tensorboard / first.id
    assert [p.name for p in sorted(board.iterdir())] == [
        "events.out.tfevents.a.hparams", "events.out.tfevents.b.000000000003.000001"
    ]  # fmt: skip
    run_study(SPEC, out, quiet=True)  # resumed from the checkpoint: epoch 2 again
    assert sorted(check_against_store(out)) == sorted(r.id for r in Store.open(out).runs())
    before = _files(StudyLayout(out).tensorboard)
    assert len(before) == 4 * 4  # hparams, two epochs, result
    # reset and trained anew: the directory held more than the store, so it is rewritten
    chunk = board / "events.out.tfevents.b.000000000006.000002"
    inode = chunk.stat().st_ino
    Store.open(out).reset([first.id])
    run_study(SPEC, out, quiet=True)
    check_against_store(out)
    assert _files(StudyLayout(out).tensorboard) == before
    assert chunk.stat().st_ino != inode


def test_report_tensorboard_writes_a_study_run_without_it_once(tmp_path, run_cli):
    out = tmp_path / "study"
    run_study(dataclasses.replace(SPEC, tensorboard=False), out, quiet=True)
    assert not StudyLayout(out).tensorboard.exists()
    code, _, err = run_cli(["report", str(out), "--tensorboard"])
    assert code == 0, err
    assert "tensorboard: 4 run(s) written, 0 unfinished" in err
    assert len(check_against_store(out)) == 4
    files = _contents(StudyLayout(out).tensorboard)
    code, _, err = run_cli(["report", str(out), "--tensorboard"])
    assert code == 0 and "tensorboard: 0 run(s) written" in err
    assert _contents(StudyLayout(out).tensorboard) == files  # not even rewritten
    check_against_store(out)


def test_without_tensorboard_the_option_is_one_line_naming_the_extra(
    tmp_path, run_cli, monkeypatch
):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard fails
    out = tmp_path / "study"
    code, _, err = run_cli(["study", "--dataset", DATA, "--depths", "8", "--orders", "1",
                            "--lrs", "0.1", "--epochs", "1", "--tensorboard",
                            "--out", str(out)])  # fmt: skip
    assert code == 2
    assert err.strip() == (
        "error: --tensorboard needs tensorboard, which is not installed: "
        'pip install "odenet[tensorboard]"'
    )
    assert not out.exists()
    run_study(dataclasses.replace(SPEC, tensorboard=False, lrs=(0.1,)), out, quiet=True)
    monkeypatch.setitem(sys.modules, "tensorboard", None)
    code, _, err = run_cli(["report", str(out), "--tensorboard"])
    assert code == 2 and "odenet[tensorboard]" in err and len(err.strip().splitlines()) == 1
    assert not (out / "report.md").exists()


def test_a_diverged_run_says_so(tmp_path):
    """lr 1e4 diverges in the first epoch: its logged steps, no epoch, diverged = 1."""
    out = tmp_path / "study"
    data = run_study(dataclasses.replace(SPEC, lrs=(1e4,), sweep={}), out, quiet=True)
    assert [r.status for r in data.records] == ["diverged"]
    assert check_against_store(out) == [data.records[0].id]


def test_an_old_study_resumed_with_tensorboard_is_the_same_study_and_gets_its_files(tmp_path):
    out = tmp_path / "study"
    plain = dataclasses.replace(SPEC, tensorboard=False, lrs=(0.1, 0.4, 0.8))
    with pytest.raises(KeyboardInterrupt):
        run_study(plain, out, observer=StopInSecondEpoch())
    with pytest.raises(KeyboardInterrupt):  # on to the second run, without --tensorboard
        run_study(plain, out, observer=StopAfterRuns(1))
    assert Store.open(out).counts()["done"] == 1
    run_study(dataclasses.replace(plain, tensorboard=True), out, quiet=True)
    assert len(check_against_store(out)) == 6


class StopAfterRuns(StudyObserver):
    def __init__(self, n):
        self.n = n

    def on_run_end(self, run):
        self.n -= 1
        if not self.n:
            raise KeyboardInterrupt


def test_a_fused_group_writes_every_member_as_the_store_holds_it(tmp_path):
    """Runs trained together (the fused executor, here on the CPU) report per member: each
    member's files match its own rows."""
    out = tmp_path / "study"
    run_study(dataclasses.replace(SPEC, executor="fused"), out, quiet=True)
    members = {r.provenance["execution"]["members"] for r in Store.open(out).runs()}
    assert members == {2}  # lr 0.1 and 0.4 of each weight decay, trained together
    assert len(check_against_store(out)) == 4
