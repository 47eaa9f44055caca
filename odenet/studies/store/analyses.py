"""The analyses cache in the study store: the SQL of measurements of trained models
(odenet.analysis: sharpness, ``analyze``), one row per (run, kind, settings), keyed by a hash
of every setting.

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

from odenet.studies.store.rows import now
from odenet.studies.store.schema import ANALYSES_TABLE, has_table
from odenet.tables import FlatTable

_TABLE = "__flat_table__"  # where a result's flat form is kept in the stored object


def insert_analysis(
    con: sqlite3.Connection,
    run_id: str,
    kind: str,
    settings: dict,
    result: dict,
    table: FlatTable | None = None,
) -> None:
    """Store (or replace) ``result`` of ``kind`` for a run under ``settings``, with its flat
    form ``table`` when given."""
    text = _settings_text(settings)
    if table is not None:
        result = {**result, _TABLE: table.to_json()}
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


def select_analyses(con: sqlite3.Connection, kind: str | None) -> list[dict]:
    """Every stored result of ``kind`` (None: of every kind), oldest first; [] when nothing
    was analysed."""
    if kind is None:
        return _rows(con, "", ())
    return _rows(con, "WHERE kind = ?", (kind,))


def _rows(con: sqlite3.Connection, where: str, args: tuple) -> list[dict]:
    if not has_table(con, "analyses"):  # nothing analysed yet
        return []
    rows = con.execute(
        f"SELECT run_id, kind, settings, result, created FROM analyses {where} "
        "ORDER BY created, rowid",
        args,
    ).fetchall()
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


def _settings_text(settings: dict) -> str:
    return json.dumps(settings, sort_keys=True)


def _key(settings_json: str) -> str:
    return hashlib.sha256(settings_json.encode()).hexdigest()[:32]
