"""Measurements of a study's trained models (never imported by ``odenet.studies``).

* ``run_landscape`` / ``LandscapeConfig``: filter-normalised loss slices and Hessian sharpness;
* ``run_analyze`` / ``AnalyzeConfig``: layer responses (He et al. 2015, Fig. 7), step ratios
  ||k_i|| / ||s||, gradient norms at the trained and the initial weights, and the dominant
  eigenvalue of each field's Jacobian placed on the stability region of its scheme;
* the measurements on a model and a list of batches: ``analyze_model`` (all of them),
  ``field_responses``, ``gradient_norms``, ``spectra`` and, for one field at one input,
  ``field_eigenvalues`` (an ``EigenEstimate``: values, residuals, converged flags;
  odenet.analysis.responses, odenet.analysis.eigen);
* ``RunSelection`` / ``select_runs``: which runs of a study an analysis reads, and
  ``run_subset``: the training images a run was trained on.

Every analysis measures a run on its own training subset, in eval mode, and caches its
results in the study directory keyed by every setting.
"""

from odenet.analysis.analyze import (
    AnalyzeConfig,
    AnalyzeResult,
    analyze_model,
    run_analyze,
    spectra,
)
from odenet.analysis.eigen import EigenConfig, EigenEstimate, field_eigenvalues
from odenet.analysis.inputs import DataSubset, run_subset
from odenet.analysis.landscape import LandscapeConfig, LandscapeResult, run_landscape
from odenet.analysis.responses import field_responses, gradient_norms
from odenet.analysis.selection import RunSelection, Selection, select_runs

__all__ = [
    "AnalyzeConfig",
    "AnalyzeResult",
    "DataSubset",
    "EigenConfig",
    "EigenEstimate",
    "LandscapeConfig",
    "LandscapeResult",
    "RunSelection",
    "Selection",
    "analyze_model",
    "field_eigenvalues",
    "field_responses",
    "gradient_norms",
    "run_analyze",
    "run_landscape",
    "run_subset",
    "select_runs",
    "spectra",
]
