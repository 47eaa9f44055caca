"""Helpers for the refusal tests of issue 19: the study S of the issue, a snapshot of a
directory (its file list and the bytes of study.sqlite) and one refused command line."""

from pathlib import Path

DATA = "synthetic:train=256,test=128,size=8"
# S of issue 19, for `odenet study`
S = ["--dataset", DATA, "--depths", "8", "--width", "4", "--epochs", "1", "--device", "cpu"]
SETTINGS = {"dataset": DATA, "width": 4, "epochs": 1, "device": "cpu"}  # S as settings


def make_finished_study(out: Path) -> Path:
    """D of issue 19: a finished 2-run study of S (orders 1, lrs 0.1 and 0.2)."""
    from odenet.studies import run_study, spec_from_sources

    spec = spec_from_sources(depths="8", orders="1", lrs="0.1,0.2", settings=SETTINGS)
    run_study(spec, out, quiet=True)
    return out


def snapshot(root: Path) -> dict[str, bytes | None]:
    """Every path under ``root`` -> the bytes of study.sqlite (None for the rest)."""
    return {
        str(p.relative_to(root)): p.read_bytes() if p.name == "study.sqlite" else None
        for p in sorted(root.rglob("*"))
    }


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


def refused(run_cli, argv: list[str], study: Path | None, *words: str) -> str:
    """Run ``argv`` (``run_cli``): exit 2 and one line ``error: ...`` holding ``words``; the
    files under ``study`` and its database's bytes unchanged. Returns the line."""
    before = snapshot(study) if study is not None else None
    code, _, err = run_cli(argv)
    line = one_line(err)
    assert code == 2 and line.startswith("error: "), err
    for w in words:
        assert w in line, line
    if study is not None:
        assert snapshot(study) == before
    return line
