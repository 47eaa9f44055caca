"""Reports honest about n, about what a study's length supports, about an all-diverged study;
strict JSON; --csv never inside the study's own files (issue 11, item 3)."""

import json
import math
import os

import pytest

from odenet.studies.report import load_study_data, write_report
from odenet.studies.robustness import MIN_EPOCHS_TO_90, Outcome, robustness_table
from odenet.studies.robustness_tables import table_cells
from odenet.studies.spec import StudySpec
from odenet.studies.store import Store
from odenet.training import TrainConfig


def _study(path, epochs=2, status=lambda run_id: "done", seeds=(0,)):
    """A stored study whose runs 'finished' with made-up results (no training)."""
    spec = StudySpec(
        base=TrainConfig(dataset="synthetic", epochs=epochs),
        orders=(1, 2),
        depths=(8,),
        lrs=(0.1, 0.2),
        seeds=seeds,
    )
    store = Store.create(path, spec, {"odenet_version": "test"})
    while ids := store.claim(1, "sequential"):
        (rid,) = ids
        if status(rid) == "diverged":
            result = {"status": "diverged", "history": [], "epochs_done": 0,
                      "train_loss": math.inf, "diverged_epoch": 1, "provenance": {}}  # fmt: skip
        else:
            acc = [0.2 + 0.1 * e for e in range(1, epochs + 1)]
            history = [{"epoch": e, "train_loss": 1.0 / e, "test_acc": a}
                       for e, a in enumerate(acc, 1)]  # fmt: skip
            result = {"status": "done", "history": history, "epochs_done": epochs,
                      "test_acc": acc[-1], "train_loss": math.inf, "provenance": {}}  # fmt: skip
        store.finish(rid, result)
    return store


def _o(solver, lr, seed, acc, curve=(), epochs=0):
    return Outcome(8, solver, lr, seed, "done", acc, curve, f"{solver}-{lr}-{seed}", (), epochs)


def test_one_seed_shows_n1_and_no_spread(tmp_path):
    _study(tmp_path)
    data = load_study_data(tmp_path)
    for row in data.table:
        assert row.n == 1 and row.best_acc_std is None
        cell = table_cells(row, ())[2]
        assert cell == f"{row.best_acc * 100:.2f} (n=1)" and "±" not in cell
    assert all(r["best_acc_std"] is None for r in data.to_json()["table"])


def test_n_per_cell_when_seeds_differ():
    runs = [_o("euler", 0.1, s, 0.5 + 0.1 * s) for s in (0, 1)]
    runs += [_o("heun", 0.1, s, 0.6) for s in (0, 1, 2)]
    euler, heun = robustness_table(runs)
    assert (euler.n, heun.n) == (2, 3)
    assert euler.best_acc_std == pytest.approx(0.1 / math.sqrt(2))  # ddof 1 of {0.5, 0.6}
    assert table_cells(euler, ())[2] == "55.00 ± 7.07 (n=2)"
    assert table_cells(heun, ())[2] == "60.00 ± 0.00 (n=3)"  # three equal seeds: a real 0


def test_epochs_to_90_needs_a_long_enough_study():
    curve = (0.1, 0.5, 0.8, 0.9, 0.95)
    (short,) = robustness_table([_o("euler", 0.1, 0, 0.95, curve, MIN_EPOCHS_TO_90 - 1)])
    (long,) = robustness_table([_o("euler", 0.1, 0, 0.95, curve, MIN_EPOCHS_TO_90)])
    assert short.epochs_to_90 is None and short.unsupported == ("epochs_to_90",)
    assert table_cells(short, ())[-1] == "n/a"
    assert short.to_dict()["unsupported"] == ["epochs_to_90"]
    assert long.epochs_to_90 == 4 and long.unsupported == ()  # 0.9 >= 0.9 * 0.95 at epoch 4
    assert table_cells(long, ())[-1] == "4.0"


def test_each_rows_own_run_length_decides():
    """A swept epochs axis: the 2-epoch row is n/a, the 5-epoch row is measured."""
    curve = (0.1, 0.5, 0.8, 0.9, 0.95)
    two = Outcome(8, "euler", 0.1, 0, "done", 0.5, curve[:2], "a", (("epochs", 2),), 2)
    five = Outcome(8, "euler", 0.1, 0, "done", 0.95, curve, "b", (("epochs", 5),), 5)
    rows = robustness_table([two, five])
    assert [r.unsupported for r in rows] == [("epochs_to_90",), ()]
    assert [r.epochs_to_90 for r in rows] == [None, 4]


def test_study_length_decides_in_the_report(tmp_path):
    two = load_study_data(_study(tmp_path / "two", epochs=2).dir)
    five = load_study_data(_study(tmp_path / "five", epochs=5).dir)
    assert all(r.unsupported == ("epochs_to_90",) for r in two.table)
    assert all(r.unsupported == () and r.epochs_to_90 is not None for r in five.table)
    write_report(tmp_path / "two")
    text = (tmp_path / "two" / "report.md").read_text()
    assert "| n/a |" in text and "(n=1)" in text and "at least 5 epochs" in text


def test_every_run_diverged_reports_figures_and_strict_json(tmp_path, run_cli):
    _study(tmp_path, status=lambda rid: "diverged")
    data = write_report(tmp_path)
    assert all(r.best_acc is None and r.diverged == 2 for r in data.table)
    figs = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert figs == [f"{n}.{e}" for n in ("accuracy_vs_depth", "accuracy_vs_lr",
                                         "training_curves") for e in ("png", "svg")]  # fmt: skip
    assert all(math.isinf(r.train_loss) for r in data.records)  # Infinity stored...
    json.dumps(data.to_json(), allow_nan=False)  # ...but never in JSON
    code, out, err = run_cli(["report", str(tmp_path), "--json"])
    assert code == 0, err
    parsed = json.loads(out, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert {r["train_loss"] for r in parsed["runs"]} == {None}


def test_infinite_numbers_become_null_in_json_and_empty_in_csv(tmp_path, run_cli):
    _study(tmp_path / "s")  # done runs with train_loss inf
    code, out, _ = run_cli(["report", str(tmp_path / "s"), "--json", "--csv",
                            str(tmp_path / "runs.csv")])  # fmt: skip
    assert code == 0 and "Infinity" not in out
    rows = (tmp_path / "runs.csv").read_text().splitlines()
    col = rows[0].split(",").index("train_loss")
    assert len(rows) == 5 and {r.split(",")[col] for r in rows[1:]} == {""}


@pytest.mark.parametrize(
    "target",
    ["study.sqlite", "study.sqlite-wal", "study.sqlite-shm", "study.sqlite-journal",
     "report.md", "runs/x.csv", "figures/runs.csv", "runs", ".", "analysis/x.png",
     "landscape/slice.csv", "tensorboard/x.csv", "figures/../report.md"],
)  # fmt: skip
def test_csv_inside_the_study_is_refused_before_writing(tmp_path, run_cli, target):
    store = _study(tmp_path)
    for folder in ("analysis", "landscape", "tensorboard"):  # as analyze, landscape, training
        (tmp_path / folder).mkdir()
    (tmp_path / "analysis" / "x.png").write_bytes(b"a figure")  # would be overwritten
    db = store.path.read_bytes()
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    code, out, err = run_cli(["report", str(tmp_path), "--csv", str(tmp_path / target)])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --csv")
    assert target == "." or "is inside the study's own files" in err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    assert (tmp_path / "analysis" / "x.png").read_bytes() == b"a figure"
    assert store.path.read_bytes() == db  # nothing written, nothing rewritten
    code, _, err = run_cli(["report", str(tmp_path)])  # the study still reports
    assert code == 0 and (tmp_path / "report.md").is_file(), err


@pytest.mark.parametrize("link", ["hard", "symbolic"])
@pytest.mark.parametrize("target", ["study.sqlite", "report.md"])
def test_csv_through_a_link_to_a_study_file_is_refused_and_leaves_it_intact(
    tmp_path, run_cli, link, target
):
    """`ln D/study.sqlite h.csv; odenet report D --csv h.csv` used to write the CSV into the
    database through the link (every later command: "not an SQLite database")."""
    store = _study(tmp_path / "D")
    assert run_cli(["report", str(store.dir)])[0] == 0
    own = store.dir / target
    before = own.read_bytes()
    csv = tmp_path / "h.csv"
    (os.link if link == "hard" else os.symlink)(own, csv)
    code, out, err = run_cli(["report", str(store.dir), "--csv", str(csv)])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1, err
    assert err.startswith("error: --csv") and target in err
    assert own.read_bytes() == before and os.path.samefile(csv, own)
    assert len(Store.open(store.dir).runs()) == 4  # the database still opens
    code, _, err = run_cli(["report", str(store.dir), "--csv", str(tmp_path / "runs.csv")])
    assert code == 0, err


def test_csv_replaces_a_link_to_a_user_file_without_writing_through_it(tmp_path, run_cli):
    """A CSV path that is a hard link to a file outside the study is replaced by the new
    CSV; the other name keeps the old content (the writer never writes through a link)."""
    _study(tmp_path / "D")
    mine = tmp_path / "notes.txt"
    mine.write_text("my notes\n")
    os.link(mine, tmp_path / "runs.csv")
    code, _, err = run_cli(["report", str(tmp_path / "D"), "--csv", str(tmp_path / "runs.csv")])
    assert code == 0, err
    assert mine.read_text() == "my notes\n"
    assert (tmp_path / "runs.csv").read_text().startswith("id,depth,solver")
    assert not os.path.samefile(mine, tmp_path / "runs.csv")


def test_csv_into_a_missing_directory_is_refused(tmp_path, run_cli):
    _study(tmp_path / "s")
    code, _, err = run_cli(["report", str(tmp_path / "s"), "--csv", str(tmp_path / "no/x.csv")])
    assert code == 2 and "not a writable directory" in err
    assert not (tmp_path / "s" / "report.md").exists()
