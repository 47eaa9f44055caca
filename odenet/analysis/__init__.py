"""Measurements of a study's trained models (never imported by ``odenet.studies``).

* ``run_landscape`` / ``LandscapeConfig``: filter-normalised loss slices and Hessian sharpness;
* ``run_analyze`` / ``AnalyzeConfig``: layer responses (He et al. 2015, Fig. 7), step ratios
  ||k_i|| / ||s||, gradient norms at the trained and the initial weights, and the dominant
  eigenvalue of each field's Jacobian placed on the stability region of its scheme;
* the measurements on a model and a list of batches: ``analyze_model`` (all of them),
  ``field_responses``, ``gradient_norms``, ``spectra`` and, for one field at one input,
  ``field_eigenvalues`` (an ``EigenEstimate``: values, residuals, converged flags;
  odenet.analysis.responses, odenet.analysis.eigen);
* ``ode_tests`` / ``OdeTestConfig`` (``analyze --ode-tests``; odenet.analysis.ode_tests): is
  the trained network an ODE? Its test accuracy with the fields wired by other schemes
  (integrator swap) and with every step refined m times (depth refinement: the change of the
  logits and the observed order);
* ``RunSelection`` / ``select_runs``: which runs of a study an analysis reads, and
  ``run_subset``: the training images a run was trained on (``run_test_subset``: the test
  images the ODE tests use).

Every analysis measures a run on its own training subset (the ODE tests: its test subset), in
eval mode, and caches its results in the study directory keyed by every setting. Runs are
selected, grouped and labelled by their axes (``RunRecord.axes``: every axis of the study,
odenet.studies.identity): ``RunAnalysis`` is one run's result, ``ConfigurationMeans`` the
means over the seeds of one configuration. Each analysis writes its own section of the
study's report.md (odenet.analysis.report_sections) and stores a flat form of each result
beside it (``odenet.tables.FlatTable``), so the studies never read what an analysis measured.
"""

from odenet.analysis.analyze import (
    AnalyzeConfig,
    AnalyzeResult,
    ConfigurationMeans,
    RunAnalysis,
    analyze_model,
    run_analyze,
    spectra,
)
from odenet.analysis.eigen import EigenConfig, EigenEstimate, field_eigenvalues
from odenet.analysis.inputs import DataSubset, run_subset, run_test_subset
from odenet.analysis.landscape import LandscapeConfig, LandscapeResult, run_landscape
from odenet.analysis.ode_tests import OdeTestConfig, ode_tests
from odenet.analysis.responses import field_responses, gradient_norms
from odenet.analysis.selection import RunSelection, Selection, select_runs

__all__ = [
    "AnalyzeConfig",
    "AnalyzeResult",
    "ConfigurationMeans",
    "DataSubset",
    "EigenConfig",
    "EigenEstimate",
    "LandscapeConfig",
    "LandscapeResult",
    "OdeTestConfig",
    "RunAnalysis",
    "RunSelection",
    "Selection",
    "analyze_model",
    "field_eigenvalues",
    "field_responses",
    "gradient_norms",
    "ode_tests",
    "run_analyze",
    "run_landscape",
    "run_subset",
    "run_test_subset",
    "select_runs",
    "spectra",
]
