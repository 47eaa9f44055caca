"""Every file of a finished study directory (after study, report, landscape and analyze) came
through the one writer: whole, named as the layout says, and group-readable."""

import os
import stat

import pytest

from odenet.studies.store import StudyLayout

STUDY = ["study", "--dataset", "synthetic:train=64,test=32,size=8", "--depths", "8",
         "--width", "4", "--orders", "1,2", "--lrs", "0.1", "--epochs", "1",
         "--batch-size", "32", "--device", "cpu", "-q"]  # fmt: skip


@pytest.fixture
def umask_022():
    old = os.umask(0o022)
    yield
    os.umask(old)


def test_every_file_of_a_finished_study_is_group_readable(tmp_path, run_cli, umask_022):
    layout = StudyLayout(tmp_path / "D")
    d = str(layout.root)
    for argv in (
        [*STUDY, "--out", d],
        ["report", d, "--csv", str(layout.root / "runs.csv")],
        ["landscape", d, "--points", "3", "--limit-data", "16", "--power-iters", "2",
         "--trace-probes", "1"],
        ["analyze", d, "--limit-data", "8", "--krylov", "3", "--restarts", "1",
         "--eigen-images", "2"],
        ["report", d],  # report.md again, now with the analyses
    ):  # fmt: skip
        code, _, err = run_cli(argv)
        assert code == 0, (argv[0], err)
    files = sorted(p for p in layout.root.rglob("*") if p.is_file())
    names = {p.relative_to(layout.root).as_posix() for p in files}
    # every part wrote what it owns (and nothing else is there but the user's CSV)
    assert {"study.sqlite", "report.md", "runs.csv"} <= names
    for run in ("d8-euler-lr0.1-s0", "d8-heun-lr0.1-s0"):
        assert {f"runs/{run}/checkpoint.pt", f"runs/{run}/result.json"} <= names
    for folder in ("figures", "landscape", "analysis"):
        assert any(n.startswith(folder + "/") and n.endswith(".png") for n in names), folder
    assert any(n.endswith(".npz") for n in names if n.startswith("landscape/"))
    assert {layout.owner(p) for p in files} == {"store", "report", "analysis", None}
    assert [p for p in files if layout.owner(p) is None] == [layout.root / "runs.csv"]
    assert not [n for n in names if n.rsplit("/", 1)[-1].startswith(".")]  # no temp files
    modes = {p.relative_to(layout.root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in files}
    assert {n: m for n, m in modes.items() if m != 0o644} == {}
    folders = [p for p in layout.root.rglob("*") if p.is_dir()]
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o755 for p in folders)
