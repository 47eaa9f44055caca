"""`odenet analyze --ode-tests` on a (tiny, synthetic) study with orders 1,2,4 and two seeds:
the JSON keys, the means over seeds, the cache and flat tables, both figures, the report
section, and bad options (one line, exit 2, nothing written)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from odenet.nets import ModelConfig
from odenet.studies.store import Store
from odenet.training import TrainConfig

DATASET = "synthetic:train=96,test=40,size=8"
SMALL = ["--limit-data", "16", "--krylov", "2", "--restarts", "1", "--eigen-images", "2"]
ALL = ["--lr", "all", "--seed", "all"]


@pytest.fixture(scope="module")
def study(tmp_path_factory) -> Path:
    from odenet.studies import StudySpec, run_study

    out = tmp_path_factory.mktemp("ode") / "s"
    spec = StudySpec(
        base=TrainConfig(
            epochs=1,
            dataset=DATASET,
            batch_size=32,
            device="cpu",
            limit_train=64,
            limit_test=24,
            model=ModelConfig(width=4),
        ),  # fmt: skip
        orders=(1, 2, 4),
        depths=(14,),
        lrs=(0.1,),
        seeds=(0, 1),
    )
    run_study(spec, out, quiet=True)
    return out


def _json(run_cli, argv: list[str]) -> dict:
    code, out, err = run_cli(argv)
    assert code == 0, err
    return json.loads(out)


def test_ode_tests_write_json_tables_figures_and_section(study, run_cli):
    payload = _json(run_cli, ["analyze", str(study), *SMALL, *ALL, "--ode-tests", "--json"])
    assert payload["settings"]["ode_tests"] == {
        "schemes": ["euler", "heun", "rk3", "rk4"],
        "factors": [1, 2, 4, 8],
    }
    store = Store.open(study)
    runs = {r.id: r for r in store.runs()}
    assert len(payload["models"]) == 6
    for m in payload["models"]:
        assert "the run's test subset of 24 of 40 images" in m["test_data"]
        assert [(s["scheme"], s["trained"]) for s in m["swap"]] == [
            (name, name == m["solver"]) for name in ("euler", "heun", "rk3", "rk4")
        ]
        trained = next(s for s in m["swap"] if s["trained"])
        refine = m["refine"]
        assert [r["factor"] for r in refine] == [1, 2, 4, 8]
        # m = 1 and the trained scheme are the trained network, which training tested on
        # these very images: the same accuracy and loss (batches of 256 here, 32 there)
        assert (refine[0]["test_acc"], refine[0]["test_loss"]) == (
            trained["test_acc"],
            trained["test_loss"],
        )
        assert trained["test_acc"] == runs[m["run_id"]].test_acc
        changes = [r["rel_change"] for r in refine]
        assert changes[0] is None and all(c > 0 for c in changes[1:])
        orders = [r["observed_order"] for r in refine]
        assert orders[:2] == [None, None]
        assert orders[2:] == pytest.approx(
            [math.log2(changes[1] / changes[2]), math.log2(changes[2] / changes[3])], rel=1e-12
        )
        assert m["refused"] == []
    # depth 14: two fields a stage, so rk3 and rk4 take one heun step
    assert [s["steps"] for s in payload["models"][0]["swap"]] == ["2x euler", "heun"] + ["heun"] * 2
    # a row per configuration: mean ± std over its 2 seeds
    assert len(payload["table"]) == 3
    for row in payload["table"]:
        seeds = [m for m in payload["models"] if m["solver"] == row["scheme"]]
        for i, s in enumerate(row["swap"]):
            values = [m["swap"][i]["test_acc"] for m in seeds]
            assert s["test_acc"]["n"] == 2
            assert s["test_acc"]["mean"] == pytest.approx(statistics.fmean(values))
            assert s["test_acc"]["std"] == pytest.approx(statistics.stdev(values))
        changes = [[m["refine"][3]["rel_change"] for m in seeds]]
        assert row["refine"][3]["rel_change"]["mean"] == pytest.approx(statistics.fmean(*changes))
    names = {Path(p).name for p in payload["figures"]}
    assert {"swap_d14.png", "swap_d14.svg", "refine_d14.png", "refine_d14.svg"} <= names
    assert "n=2" in (study / "analysis" / "swap_d14.svg").read_text()
    # the flat table beside each cached result: a row per swap scheme and per factor
    stored = store.analyses("ode_tests")
    assert len(stored) == 6
    table = stored[0]["table"]
    assert table.index == ("test", "scheme", "factor") and len(table.rows) == 8
    # the analysis writes its own report section, which the report includes
    section = (study / "analysis" / "section.md").read_text()
    assert "Is the trained network an ODE?" in section and "acc % rk3" in section
    assert "change m=8" in section and "analysis/refine_d14.png" in section
    code, _, err = run_cli(["report", str(study)])
    assert code == 0, err
    assert "| 14 | rk4 | 0.1 | 2 |" in (study / "report.md").read_text()
    # a second run reads both results from the store
    again = _json(run_cli, ["analyze", str(study), *SMALL, *ALL, "--ode-tests", "--json"])
    assert all(m["cached"] for m in again["models"])
    assert [m["refine"] for m in again["models"]] == [m["refine"] for m in payload["models"]]
    fewer = _json(run_cli, ["analyze", str(study), *SMALL, "--ode-tests", "--swap-schemes",
                            "heun", "--refine-factors", "2,4", "--json"])  # fmt: skip
    assert not any(m["cached"] for m in fewer["models"])  # other ODE settings: measured
    assert [[r["factor"] for r in m["refine"]] for m in fewer["models"]] == [[2, 4]] * 3


@pytest.mark.parametrize(("argv", "what"), [
    (["--ode-tests", "--refine-factors", "1,3"], "3 is not a power of two"),
    (["--ode-tests", "--refine-factors", "1,2,8"], "twice the one before"),
    (["--ode-tests", "--swap-schemes", "euler,ode-rk4"], "does not stack"),
    (["--ode-tests", "--swap-schemes", "plain"], "no identity path"),
    (["--ode-tests", "--swap-schemes", "nope"], "unknown solver"),
    (["--swap-schemes", "heun"], "add --ode-tests"),
])  # fmt: skip
def test_bad_ode_options_are_one_line_exit_2_before_anything_is_written(study, run_cli, argv,
                                                                          what):  # fmt: skip
    before = len(Store.open(study).analyses())
    section = study / "analysis" / "section.md"
    stamp = section.stat().st_mtime_ns if section.exists() else None
    code, _, err = run_cli(["analyze", str(study), *SMALL, *argv])
    assert code == 2 and len(err.strip().splitlines()) == 1 and what in err
    assert err.startswith("error: ")
    assert len(Store.open(study).analyses()) == before
    assert (section.stat().st_mtime_ns if section.exists() else None) == stamp


def test_without_ode_tests_the_output_is_what_it_was(study, run_cli):
    payload = _json(run_cli, ["analyze", str(study), *SMALL, "--json"])
    assert "ode_tests" not in payload["settings"]
    for item in payload["models"] + payload["table"]:
        assert not {"swap", "refine", "refused", "test_data"} & set(item)
