"""`import odenet` has no side effects: no matplotlib backend, no pyplot, no torch; drawing a
study's figures does not select a backend or import pyplot either (issue 11, item 8)."""

import ast
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _python(code: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_import_odenet_loads_neither_matplotlib_nor_torch():
    done = _python(
        """
        import sys
        import odenet
        assert "matplotlib" not in sys.modules, "matplotlib imported"
        assert "torch" not in sys.modules, "torch imported"
        assert odenet.__version__ and odenet.ConfigError and "run_study" in dir(odenet)
        import matplotlib, matplotlib.rcsetup
        assert "matplotlib.pyplot" not in sys.modules
        backend = dict.__getitem__(matplotlib.rcParams, "backend")
        assert backend is matplotlib.rcsetup._auto_backend_sentinel, backend
        """
    )
    assert done.returncode == 0, done.stderr


def test_public_names_resolve_lazily():
    import odenet
    from odenet.studies import StudySpec
    from odenet.training import TrainConfig

    assert odenet.StudySpec is StudySpec and odenet.TrainConfig is TrainConfig
    assert odenet.solvers.get("rk4").order == 4
    assert set(odenet.__all__) <= set(dir(odenet))


def test_drawing_figures_selects_no_backend(tmp_path):
    done = _python(
        f"""
        import sys
        from pathlib import Path
        import matplotlib, matplotlib.rcsetup
        from odenet.studies import figures
        from odenet.studies.robustness import Outcome, robustness_table

        runs = [Outcome(8, "euler", lr, 0, "done", 0.5, (0.4, 0.5), "r") for lr in (0.1, 0.2)]
        paths = figures.accuracy_vs_lr(runs, Path({str(tmp_path)!r}) / "acc")
        paths += figures.accuracy_vs_depth(robustness_table(runs), Path({str(tmp_path)!r}) / "d")
        assert all(p.stat().st_size > 0 for p in paths)
        assert "matplotlib.pyplot" not in sys.modules
        backend = dict.__getitem__(matplotlib.rcParams, "backend")
        assert backend is matplotlib.rcsetup._auto_backend_sentinel, backend
        """
    )
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["acc.png", "acc.svg", "d.png", "d.svg"]


def test_lazy_table_and_type_checking_imports_agree():
    """Each lazy public name is imported for type checkers from the module _LAZY loads it
    from, and nothing else is: the two lists cannot drift apart."""
    import odenet

    tree = ast.parse(Path(odenet.__file__).read_text())
    block = next(
        n for n in tree.body if isinstance(n, ast.If) and ast.unparse(n.test) == "TYPE_CHECKING"
    )
    typed = {}
    for node in block.body:
        for alias in node.names:
            module = node.module if node.module != "odenet" else f"odenet.{alias.name}"
            typed[alias.asname or alias.name] = module
    assert typed == odenet._LAZY
    eager = ["ConfigError", "DataError", "OdenetError", "__version__"]
    assert sorted(odenet.__all__) == sorted([*odenet._LAZY, *eager])
