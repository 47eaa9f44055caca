"""The analyses cache in the study store: the SQL of measurements of trained models
(odenet.analysis: sharpness, ``analyze``), one row per (run, kind, settings), keyed by a hash
of every setting.

The table is created on the first stored result; a study without it has nothing analysed.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3

from odenet.studies.store.rows import now
from odenet.studies.store.schema import ANALYSES_TABLE, has_table


def insert_analysis(
    con: sqlite3.Connection, run_id: str, kind: str, settings: dict, result: dict
) -> None:
    """Store (or replace) ``result`` of ``kind`` for a run under ``settings``."""
    text = _settings_text(settings)
    con.execute(ANALYSES_TABLE)
    con.execute(
        "INSERT OR REPLACE INTO analyses VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, kind, _key(text), text, json.dumps(result), now()),
    )


def select_analysis(con: sqlite3.Connection, run_id: str, kind: str, settings: dict) -> dict | None:
    """The stored result of ``kind`` for a run under exactly ``settings``, or None."""
    text = _settings_text(settings)
    rows = _rows(con, "WHERE run_id = ? AND kind = ? AND key = ?", (run_id, kind, _key(text)))
    return next((r["result"] for r in rows if r["settings"] == json.loads(text)), None)


def select_analyses(con: sqlite3.Connection, kind: str) -> list[dict]:
    """Every stored result of ``kind`` (oldest first); [] when nothing was analysed."""
    return _rows(con, "WHERE kind = ?", (kind,))


def _rows(con: sqlite3.Connection, where: str, args: tuple) -> list[dict]:
    if not has_table(con, "analyses"):  # nothing analysed yet
        return []
    rows = con.execute(
        f"SELECT run_id, settings, result, created FROM analyses {where} ORDER BY created, rowid",
        args,
    ).fetchall()
    return [
        {
            "run_id": r["run_id"],
            "settings": json.loads(r["settings"]),
            "result": json.loads(r["result"]),
            "created": r["created"],
        }
        for r in rows
    ]


def _settings_text(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]
