"""The analyses cache in the study store: measurements of trained models (odenet.analysis:
sharpness, ``analyze``), one row per (run, kind, settings), keyed by a hash of every setting.

A result is a JSON object the store does not read. Beside it an analysis may store the
result's flat form (``odenet.tables.FlatTable``): what the studies show of it (the report's
run columns) without knowing its keys. The flat form is kept in the stored object under
``_TABLE`` and handed back apart from the result.

The table is created on the first stored result; a study without it has nothing analysed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from odenet.studies.records import now
from odenet.studies.store_connection import StoreConnection
from odenet.studies.store_schema import ANALYSES_TABLE
from odenet.tables import FlatTable

_TABLE = "__flat_table__"  # where a result's flat form is kept in the stored object


class StoreAnalyses(StoreConnection):
    """The analysis-cache methods of ``Store``."""

    def record_analysis(
        self, run_id: str, kind: str, settings: dict, result: dict, table: FlatTable | None = None
    ) -> None:
        """Store (or replace) ``result`` of analysis ``kind`` of a run under ``settings``.

        settings: every setting that determines the result (JSON-able); the row's key is a
        hash of it, so a result is only ever found again under exactly the same settings.
        table: the result's flat form, if the analysis gives one (module docstring).
        """
        text = json.dumps(settings, sort_keys=True)
        if table is not None:
            result = {**result, _TABLE: table.to_json()}
        with self._tx() as con:
            con.execute("BEGIN IMMEDIATE")
            con.execute(ANALYSES_TABLE)
            con.execute(
                "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?, ?)",
                (run_id, kind, _key(text), text, json.dumps(result), now()),
            )

    def analysis(self, run_id: str, kind: str, settings: dict) -> dict | None:
        """The stored result of ``kind`` for this run under exactly ``settings``, or None."""
        text = json.dumps(settings, sort_keys=True)
        rows = self._analysis_rows(
            "WHERE run_id = ? AND kind = ? AND key = ?", (run_id, kind, _key(text))
        )
        return next((r["result"] for r in rows if r["settings"] == json.loads(text)), None)

    def analyses(self, kind: str | None = None) -> list[dict]:
        """Every stored result of ``kind`` (None: of every kind): dicts with run_id, kind,
        settings, result, table (its FlatTable, or None) and created (oldest first); [] when
        nothing was analysed."""
        if kind is None:
            return self._analysis_rows("", ())
        return self._analysis_rows("WHERE kind = ?", (kind,))

    def _analysis_rows(self, where: str, args: tuple) -> list[dict]:
        try:
            with self._tx() as con:
                rows = con.execute(
                    f"SELECT run_id, kind, settings, result, created FROM analyses {where} "
                    "ORDER BY created, rowid",
                    args,
                ).fetchall()
        except sqlite3.OperationalError as err:  # no such table: nothing analysed yet
            if "no such table" not in str(err):
                raise
            return []
        out = []
        for r in rows:
            result = json.loads(r["result"])
            table = result.pop(_TABLE, None)
            out.append(
                {
                    "run_id": r["run_id"],
                    "kind": r["kind"],
                    "settings": json.loads(r["settings"]),
                    "result": result,
                    "table": None if table is None else FlatTable.from_json(table),
                    "created": r["created"],
                }
            )
        return out


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]
