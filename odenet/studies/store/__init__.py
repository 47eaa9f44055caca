"""The study store: one SQLite database (WAL) per study directory, checkpoints beside it, and
the directory's layout (which part of odenet owns which path).

::

    <study>/study.sqlite        meta (spec, versions), runs (spec, status, final metrics,
                                provenance, owner), epochs (per-epoch metrics), steps (training
                                loss and lr every log_every optimizer steps), analyses (cached
                                measurements of trained models, by a hash of their settings)
    <study>/runs/<run_id>/      checkpoint.pt, result.json (written by odenet.training)

The rest of the directory (the report's, analysis's, training's files) is described by
``StudyLayout`` (``layout``). Statuses: pending -> running -> done | diverged | failed.

A database that cannot be used (not a database, truncated, a directory in its place, a full
disk, read-only when writing) raises StoreError, one line naming the file and the fix; the
file is never rewritten while refusing. A study directory that cannot be written is opened
read-only, so it can still be reported. Old study directories open: columns and tables added
since are created when missing (``schema``).

Modules: ``store`` (the ``Store`` class), ``layout``, ``database`` (connections, the file's
errors), ``schema``, ``runs``, ``claims``, ``metrics``, ``analyses`` (the SQL of each
concern), ``rows`` (``runs`` rows as ``RunRecord``s, a type of odenet.studies.records),
``owners`` (who a claiming process is, whether it lives), ``leases`` (who may train a run:
heartbeats and grace periods, across containers and hosts), ``volumes`` (network file systems).
"""

from odenet.studies.records import RunRecord
from odenet.studies.store.layout import DB_NAME, StudyLayout
from odenet.studies.store.leases import Holder, Lease
from odenet.studies.store.owners import Owner, owner_alive, pid_alive, process_identity
from odenet.studies.store.schema import FINISHED, STATUSES
from odenet.studies.store.store import Store

__all__ = [
    "DB_NAME",
    "FINISHED",
    "Holder",
    "Lease",
    "Owner",
    "STATUSES",
    "RunRecord",
    "Store",
    "StudyLayout",
    "owner_alive",
    "pid_alive",
    "process_identity",
]
