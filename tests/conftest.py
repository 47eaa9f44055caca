"""Shared fixtures."""

import pytest
from threads import one_torch_thread

from odenet.cli import main


@pytest.fixture
def run_cli(capsys):
    """main(argv) in-process -> (exit code, stdout, stderr)."""

    def run(argv: list[str]) -> tuple[int, str, str]:
        code = 0
        try:
            main(argv)
        except SystemExit as err:
            code = err.code if isinstance(err.code, int) else 1
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def one_thread():
    """The test on one torch thread (tests/threads.py says why)."""
    with one_torch_thread():
        yield


@pytest.fixture(scope="session")
def finished_study(tmp_path_factory):
    """D of issue 19 (tests/refusals.py), made once; copy it before changing it."""
    from refusals import make_finished_study

    return make_finished_study(tmp_path_factory.mktemp("finished") / "D")


@pytest.fixture
def finished_copy(finished_study, tmp_path):
    """A fresh copy of D, to refuse things on."""
    import shutil
    from pathlib import Path

    return Path(shutil.copytree(finished_study, tmp_path / "D"))
