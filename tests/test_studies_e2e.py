"""A whole study on synthetic data through the CLI: grid -> store -> report.

2 depths x 2 orders x 2 lrs x 1 seed; lr 1000 diverges in its first epoch, so the study must
record those runs as diverged and carry on.
"""

import csv
import json

import pytest
from threads import one_torch_thread

from odenet.cli import main
from odenet.studies import Store, load_study
from odenet.tables import FlatTable

DATASET = "synthetic:train=128,test=64,size=8"
ARGS = [
    "--dataset",
    DATASET,
    "--depths",
    "8,14",
    "--orders",
    "1,2",
    "--lrs",
    "0.2,1000",
    "--epochs",
    "2",
    "--width",
    "4",
    "--batch-size",
    "32",
    "--device",
    "cpu",
    "--quiet",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    out = tmp_path_factory.mktemp("e2e") / "study"
    try:
        with one_torch_thread():
            main(["study", *ARGS, "--out", str(out)])
    except SystemExit as err:
        assert err.code in (0, None)
    return out


def test_store_holds_every_run_with_its_outcome(study):
    runs = {r.id: r for r in Store.open(study).runs()}
    assert len(runs) == 8
    for depth in (8, 14):
        for scheme in ("euler", "heun"):
            ok, bad = runs[f"d{depth}-{scheme}-lr0.2-s0"], runs[f"d{depth}-{scheme}-lr1000.0-s0"]
            assert (ok.status, ok.epochs_done, bad.status) == ("done", 2, "diverged")
            assert 0.0 <= ok.test_acc <= 1.0 and bad.diverged_epoch == 1
            assert ok.provenance["seed"] == 0 and "torch" in json.dumps(ok.provenance)
            assert ok.executor == "sequential" and ok.params > 0
            assert (ok.run_dir / "checkpoint.pt").is_file() and (
                ok.run_dir / "result.json"
            ).is_file()
    epochs = Store.open(study).epochs()
    assert sorted((m["run_id"], m["epoch"]) for m in epochs) == sorted(
        (rid, e) for rid, r in runs.items() for e in range(1, r.epochs_done + 1)
    )


def test_report_json_csv_figures_and_markdown(study, tmp_path, run_cli):
    code, out, err = run_cli(["report", str(study), "--json", "--csv", str(tmp_path / "r.csv")])
    assert code == 0, err
    data = json.loads(out)
    assert {r["id"]: r["status"] for r in data["runs"]} == {
        r.id: r.status for r in Store.open(study).runs()
    }
    for r in data["runs"]:
        assert {"id", "depth", "solver", "lr", "seed", "status", "test_acc", "epochs_done"} <= set(
            r
        )
        assert (r["test_acc"] is not None) == (r["status"] == "done")
    assert [(t["depth"], t["solver"]) for t in data["table"]] == [
        (8, "euler"),
        (8, "heun"),
        (14, "euler"),
        (14, "heun"),
    ]
    for t in data["table"]:
        assert t["diverged"] == 1 and t["max_stable_lr"] == 0.2 and t["best_lr"] == 0.2
        assert t["window_octaves"] == 0.0 and t["best_acc_std"] is None and t["n"] == 1  # 1 seed
    with open(tmp_path / "r.csv") as fh:
        assert len(list(csv.DictReader(fh))) == 8
    # the engine logs the loss by step, so every study also gets the loss-by-step figure
    for name in ("accuracy_vs_lr", "accuracy_vs_depth", "training_curves", "loss_by_step"):
        for ext in ("png", "svg"):
            assert (study / "figures" / f"{name}.{ext}").stat().st_size > 1000
        assert 'id="footnote"' in (study / "figures" / f"{name}.svg").read_text()
    svg = (study / "figures" / "accuracy_vs_lr.svg").read_text()
    assert all(f'id="diverged-d{d}-{s}"' in svg for d in (8, 14) for s in ("euler", "heun"))
    md = (study / "report.md").read_text()
    assert "| depth | scheme | best acc % |" in md and "| 14 | heun |" in md
    assert md.count("](figures/") == 4 and "d8-heun-lr1000.0-s0 | diverged" in md
    assert "\nRecipe: synthetic:" in md and "2 epochs of SGD (batch 32," in md


def test_report_shows_what_the_analyses_published(study, run_cli):
    """The report reads no analysis's results: a one-row-per-run flat table stored beside a
    result gives run columns (a result without one gives none), and a section an analysis
    wrote is included as it is; a folder without one shows its figures."""
    store = Store.open(study)
    table = FlatTable(("lambda_max", "trace"), ((12.5, 80.0),))
    store.record_analysis("d8-euler-lr0.2-s0", "any kind", {"a": 1}, {"hidden": 1.0}, table)
    store.record_analysis("d8-heun-lr0.2-s0", "older", {"a": 1}, {"lambda_max": 3.0})
    per_field = FlatTable(("field", "x"), (("f1", 1.0), ("f2", 2.0)), index=("field",))
    store.record_analysis("d14-heun-lr0.2-s0", "per field", {"a": 1}, {}, per_field)
    (study / "landscape").mkdir(exist_ok=True)
    (study / "landscape" / "slice1d.png").write_bytes(b"\x89PNG")
    (study / "analysis").mkdir(exist_ok=True)
    (study / "analysis" / "section.md").write_text("## Instruments\n\nmeasured | here\n")
    try:
        code, out, _ = run_cli(["report", str(study), "--json"])
        rows = {r["id"]: r for r in json.loads(out)["runs"]}
        assert rows["d8-euler-lr0.2-s0"]["lambda_max"] == 12.5
        assert rows["d8-euler-lr0.2-s0"]["trace"] == 80.0
        assert rows["d8-heun-lr0.2-s0"]["lambda_max"] is None  # no flat table, no column value
        assert not {"hidden", "x", "field"} & set(rows["d14-heun-lr0.2-s0"])
        md = (study / "report.md").read_text()
        assert "| lambda_max | trace |" in md
        assert "## landscape\n\n![slice1d](landscape/slice1d.png)" in md
        assert "## Instruments\n\nmeasured | here\n" in md
        assert md.index("## landscape") < md.index("## Instruments") < md.index("## Runs")
    finally:
        with Store.open(study).connect() as con:
            con.execute("DELETE FROM analyses")
        (study / "landscape" / "slice1d.png").unlink()
        (study / "analysis" / "section.md").unlink()


def test_rerun_skips_finished_runs(study, run_cli):
    before = {r.id: r.finished for r in Store.open(study).runs()}
    code, out, err = run_cli(["study", *ARGS, "--out", str(study)])
    assert code == 0, err
    assert {r.id: r.finished for r in Store.open(study).runs()} == before
    assert "heun" in out  # the summary table
    assert len(load_study(study).table) == 4
