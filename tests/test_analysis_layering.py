"""Layering: odenet.studies never loads odenet.analysis; the analyses load no pyplot.

One fresh interpreter imports step by step and reports ``sys.modules`` after each step.
"""

from __future__ import annotations

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
