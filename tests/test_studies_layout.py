"""StudyLayout: who owns which path of a study directory, and what an export may never be."""

import os
from pathlib import Path

import pytest

from odenet.errors import ConfigError
from odenet.studies.store import StudyLayout


@pytest.fixture
def layout(tmp_path) -> StudyLayout:
    """A study directory with a file of every owner (contents made up)."""
    lay = StudyLayout(tmp_path / "D")
    lay.run_dir("d8-euler-lr0.1-s0").mkdir(parents=True)
    for folder in (lay.figures, lay.analysis, lay.landscape, lay.tensorboard):
        folder.mkdir()
    for path in (lay.database, lay.report, lay.run_dir("d8-euler-lr0.1-s0") / "checkpoint.pt",
                 lay.analysis / "x.png", lay.landscape / "slice.npz"):  # fmt: skip
        path.write_bytes(path.name.encode())
    return lay


def test_paths_and_owners(tmp_path):
    lay = StudyLayout(Path("D"))
    assert lay.database == Path("D/study.sqlite")
    assert lay.database_files[1:] == tuple(
        Path(f"D/study.sqlite-{s}") for s in ("wal", "shm", "journal")
    )
    assert lay.run_dir("r1") == Path("D/runs/r1")
    assert (lay.figures, lay.report) == (Path("D/figures"), Path("D/report.md"))
    assert (lay.analysis, lay.landscape) == (Path("D/analysis"), Path("D/landscape"))
    assert lay.tensorboard == Path("D/tensorboard")
    assert set(lay.owned().values()) == {"store", "report", "analysis", "training"}


@pytest.mark.parametrize(
    ("name", "owner"),
    [("study.sqlite", "store"), ("study.sqlite-wal", "store"), ("runs/r1/result.json", "store"),
     ("figures/a.png", "report"), ("report.md", "report"), ("analysis/x.png", "analysis"),
     ("landscape/s.npz", "analysis"), ("tensorboard/r1/events", "training"),
     ("runs/../figures/a.svg", "report"), ("runs.csv", None), ("notes/report.md", None),
     ("study.sqlite.csv", None)],
)  # fmt: skip
def test_owner_of_a_path_as_written(tmp_path, name, owner):
    assert StudyLayout(tmp_path).owner(tmp_path / name) == owner


def test_links_to_owned_files_are_owned(layout, tmp_path):
    os.link(layout.database, tmp_path / "h.csv")
    os.symlink(layout.report, tmp_path / "s.csv")
    os.symlink(layout.analysis, tmp_path / "ana")
    assert layout.owner(tmp_path / "h.csv") == "store"
    assert layout.same_file(tmp_path / "h.csv") == layout.database
    assert layout.owner(tmp_path / "s.csv") == "report"
    assert layout.owner(tmp_path / "ana" / "new.csv") == "analysis"  # inside, once resolved
    (tmp_path / "mine.csv").write_text("x")
    assert layout.owner(tmp_path / "mine.csv") is None
    assert layout.same_file(tmp_path / "mine.csv") is None
    assert layout.same_file(tmp_path / "missing.csv") is None


def test_check_export_allows_the_user_s_paths(layout, tmp_path):
    assert layout.check_export(tmp_path / "runs.csv") == tmp_path / "runs.csv"
    assert layout.check_export(layout.root / "runs.csv") == layout.root / "runs.csv"
    (tmp_path / "old.csv").write_text("old export")
    assert layout.check_export(tmp_path / "old.csv") == tmp_path / "old.csv"


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda lay, t: lay.analysis / "x.png", "inside the study's own files"),
        (lambda lay, t: lay.run_dir("d8-euler-lr0.1-s0") / "checkpoint.pt", "own files"),
        (lambda lay, t: _hard_link(lay.database, t / "h.csv"), "hard link"),
        (
            lambda lay, t: _hard_link(
                lay.run_dir("d8-euler-lr0.1-s0") / "checkpoint.pt", t / "c.csv"
            ),
            "hard link",
        ),  # fmt: skip
        (lambda lay, t: _symlink(lay.landscape / "slice.npz", t / "l.csv"), "own files"),
        (lambda lay, t: t, "is a directory"),
        (lambda lay, t: t / "missing" / "x.csv", "not a writable directory"),
    ],
)
def test_check_export_refuses_with_one_line_and_writes_nothing(layout, tmp_path, make, message):
    target = make(layout, tmp_path)
    before = sorted((p, p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file())
    with pytest.raises(ConfigError, match=message) as err:
        layout.check_export(target, "--csv")
    assert str(err.value).startswith("--csv ") and "\n" not in str(err.value)
    assert sorted((p, p.stat().st_size) for p in tmp_path.rglob("*") if p.is_file()) == before


def _hard_link(existing: Path, new: Path) -> Path:
    os.link(existing, new)
    return new


def _symlink(existing: Path, new: Path) -> Path:
    os.symlink(existing, new)
    return new
