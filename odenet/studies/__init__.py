"""Studies: grids of training runs, their SQLite store, the runner, robustness and reports.

The notebook API is ``run_study``, ``plan_study``, ``load_study`` and ``report_study``
(odenet.studies.api); ``Store`` is the study database for other tools; a run's identity is
its ``Axes`` (``RunRecord.axes``, odenet.studies.identity). Measurements of the
trained models (loss landscapes, ``analyze``) live in ``odenet.analysis``, which this package
never imports.
"""

from odenet.studies.api import (
    PlanRow,
    load_study,
    plan_study,
    report_study,
    run_study,
)
from odenet.studies.executors import (
    Executor,
    FusedExecutor,
    SequentialExecutor,
    make_executor,
)
from odenet.studies.grid import RunSpec
from odenet.studies.identity import Axes
from odenet.studies.report import StudyData, write_csv
from odenet.studies.robustness import Outcome, RobustnessRow, robustness_table
from odenet.studies.runner import StudyObserver, run_pending
from odenet.studies.spec import StudySpec
from odenet.studies.spec_sources import spec_from_sources
from odenet.studies.store import RunRecord, Store

__all__ = [
    "Axes",
    "Executor",
    "FusedExecutor",
    "Outcome",
    "PlanRow",
    "RobustnessRow",
    "RunRecord",
    "RunSpec",
    "SequentialExecutor",
    "Store",
    "StudyData",
    "StudyObserver",
    "StudySpec",
    "load_study",
    "make_executor",
    "plan_study",
    "report_study",
    "robustness_table",
    "run_pending",
    "run_study",
    "spec_from_sources",
    "write_csv",
]
