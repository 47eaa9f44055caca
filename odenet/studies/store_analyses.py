"""The analyses cache in the study store: measurements of trained models (odenet.analysis:
sharpness, ``analyze``), one row per (run, kind, settings), keyed by a hash of every setting.

The table is created on the first stored result; a study without it has nothing analysed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from odenet.studies.records import now
from odenet.studies.store_connection import StoreConnection
from odenet.studies.store_schema import ANALYSES_TABLE


class StoreAnalyses(StoreConnection):
    """The analysis-cache methods of ``Store``."""

    def record_analysis(self, run_id: str, kind: str, settings: dict, result: dict) -> None:
        """Store (or replace) ``result`` of analysis ``kind`` of a run under ``settings``.

        settings: every setting that determines the result (JSON-able); the row's key is a
        hash of it, so a result is only ever found again under exactly the same settings.
        """
        text = json.dumps(settings, sort_keys=True)
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

    def analyses(self, kind: str) -> list[dict]:
        """Every stored result of ``kind``: dicts with run_id, settings, result, created
        (oldest first); [] when nothing was analysed."""
        return self._analysis_rows("WHERE kind = ?", (kind,))

    def _analysis_rows(self, where: str, args: tuple) -> list[dict]:
        try:
            with self._tx() as con:
                rows = con.execute(
                    f"SELECT run_id, settings, result, created FROM analyses {where} "
                    "ORDER BY created, rowid",
                    args,
                ).fetchall()
        except sqlite3.OperationalError as err:  # no such table: nothing analysed yet
            if "no such table" not in str(err):
                raise
            return []
        return [
            {
                "run_id": r["run_id"],
                "settings": json.loads(r["settings"]),
                "result": json.loads(r["result"]),
                "created": r["created"],
            }
            for r in rows
        ]


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]
