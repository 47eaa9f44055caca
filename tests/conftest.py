"""Shared fixtures."""

import pytest

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
