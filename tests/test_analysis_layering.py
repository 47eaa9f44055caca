"""Layering: odenet.studies never loads odenet.analysis nor reads its results' keys; the
analyses load no pyplot.

One fresh interpreter imports step by step and reports ``sys.modules`` after each step.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = """
import json, sys
steps = {}
import odenet
steps["odenet"] = sorted(sys.modules)
import odenet.studies, odenet.studies.report, odenet.studies.store
steps["studies"] = sorted(sys.modules)
from odenet import LandscapeConfig, run_analyze
assert LandscapeConfig.__module__ == "odenet.analysis.landscape", LandscapeConfig.__module__
import odenet.analysis.landscape_plots, odenet.analysis.analyze_plots
steps["analysis"] = sorted(sys.modules)
print(json.dumps(steps))
"""


def _steps() -> dict[str, set[str]]:
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"},
    ).stdout
    return {k: set(v) for k, v in json.loads(out).items()}


def _analysis(modules: set[str]) -> set[str]:
    return {m for m in modules if m == "odenet.analysis" or m.startswith("odenet.analysis.")}


def test_studies_never_import_analysis_and_analysis_adds_no_pyplot():
    steps = _steps()
    assert _analysis(steps["odenet"]) == set()  # the public names are resolved lazily
    assert "odenet.studies.report" in steps["studies"]
    assert _analysis(steps["studies"]) == set()
    # whatever odenet.studies loads, the analyses (figures included) add neither pyplot nor
    # a backend: they draw on Figure objects
    added = steps["analysis"] - steps["studies"]
    assert {"odenet.analysis.landscape", "odenet.analysis.analyze_plots"} <= added
    assert not {m for m in added if m == "matplotlib.pyplot" or m.startswith("matplotlib.backends")}


def _code_strings(path: Path) -> set[str]:
    """Every string constant in a module's code, docstrings left out."""
    tree = ast.parse(path.read_text())
    docs = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                docs.add(id(first.value))
    return {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
    }


def test_studies_read_no_key_of_an_analysis_result():
    """odenet.studies shows the analyses through their sections and flat tables only: no
    string in its code names an analysis kind or a key of what an analysis measured."""
    from odenet.analysis.analyze_results import FIELD_COLUMNS

    keys = {"analyze", "sharpness", "responses", "network_order", "step_ratios", "grad_norms",
            "eigenvalues", "outside_region", "fields_with_region", "lambda_max",
            "trace"}  # fmt: skip
    keys |= set(FIELD_COLUMNS) - {"field", "scheme"}  # words the report uses for its own
    found = {
        (path.relative_to(ROOT).as_posix(), s)
        for path in sorted((ROOT / "odenet" / "studies").rglob("*.py"))
        for s in _code_strings(path) & keys
    }
    assert found == set()
