"""A run's membranes read back from its database (part of the run store,
:mod:`castrig.store.sqlite_store`): each row decoded into a membrane record, its metrics and
process record kept only where they are what castrig wrote (:func:`membrane_from_row`); a row
that cannot be read makes the run damaged, never a traceback.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from castrig.store.base import MembraneRecord
from castrig.store.sqlite_connect import DamagedRun, _has_table, connect_readonly


def _membranes(db: sqlite3.Connection, run_dir: Path) -> list[MembraneRecord]:
    if not _has_table(db, "membranes"):
        return []
    rows = _read(run_dir, db,
                 "SELECT membrane_id, k, cast_step, support_position, simulated, status, t_start_s, t_end_s, process_json,"
                 " metrics_json, verdict_json, grades_met, target_grade, target_met, lot_id, lost_reason FROM membranes ORDER BY k")
    return decoded_rows(run_dir, "membranes", rows, membrane_from_row)


def _read(run_dir: Path, db: sqlite3.Connection, sql: str, args: tuple[Any, ...] = ()) -> list[Any]:
    """The rows of a query on a run's database; :class:`DamagedRun` when its pages are damaged
    (a crashed run whose run.sqlite was cut or overwritten opens — its header is whole — and the
    query met the damage: `report`, `export` and `resume` ended in sqlite3's traceback). A locked
    or busy database is not damage: that error goes on as it is."""
    try:
        return db.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        raise
    except sqlite3.DatabaseError as exc:
        raise DamagedRun(run_dir, f"run.sqlite cannot be read ({exc})") from None


def decoded_rows(run_dir: Path, table: str, rows: list[Any], make: Any) -> list[Any]:
    """``make(row)`` of every row; :class:`DamagedRun` naming the table, the row and what is wrong
    in it when one cannot be read: a hand-edited or damaged row (``metrics_json = '{bad'``, a
    journal ``t_s = 'abc'``) ended `castrig runs`, `lots`, `report` and `export` in a traceback,
    and one such run hid every other run of the data root from `runs` and `lots`."""
    out = []
    for n, r in enumerate(rows, 1):
        try:
            out.append(make(r))
        except (ValueError, TypeError, KeyError, IndexError, AttributeError) as exc:  # (JSONDecodeError is a ValueError)
            raise DamagedRun(run_dir, f"run.sqlite: {table} row {n} cannot be read ({str(exc)[:160]})") from None
    return out


def read_membranes(run_dir: Path) -> list[MembraneRecord]:
    """A run folder's membrane records, read through a reader's connection (nothing written, no
    store opened: a listing must not touch a run it only looks at)."""
    db = connect_readonly(Path(run_dir) / "run.sqlite")
    try:
        return _membranes(db, Path(run_dir))
    finally:
        db.close()


def _object_or_null(v: Any, column: str) -> dict[str, Any] | None:
    if v is not None and not isinstance(v, dict):
        raise ValueError(f"{column} = {json.dumps(v)[:40]}: expected a JSON object or null")
    return v


def _number_or_null(v: Any, where: str) -> Any:
    if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))):
        raise ValueError(f"{where} = {json.dumps(v)[:40]}: expected a number or null")
    return v


def _metrics(v: Any) -> dict[str, Any] | None:
    """``metrics_json``: metric name -> number or null, as the analysis writes it (a list there
    ended `castrig lots` in a traceback, and with it the listing of every other run)."""
    for key, value in (_object_or_null(v, "metrics_json") or {}).items():
        _number_or_null(value, f"metrics_json.{key}")
    return v


def _process(v: Any) -> dict[str, Any]:
    """``process_json``: the parts that reports, exports and lots read, of the types the runner
    writes (``dispensed`` = 3 ended `report` and `export` in a traceback)."""
    p = _object_or_null(v, "process_json") or {}
    for part in ("dispensed", "evaporation"):
        _object_or_null(p.get(part), f"process_json.{part}")
    for step, d in (p.get("dispensed") or {}).items():
        for key, value in (_object_or_null(d, f"process_json.dispensed.{step}") or {}).items():
            if key == "finished":  # (False: a dispense cut short)
                if not isinstance(value, bool):
                    raise ValueError(f"process_json.dispensed.{step}.finished = {json.dumps(value)[:40]}: expected true or false")
            else:
                _number_or_null(value, f"process_json.dispensed.{step}.{key}")
    for key, value in (p.get("evaporation") or {}).items():
        _number_or_null(value, f"process_json.evaporation.{key}")
    for key in ("rh_mean_pct", "rh_min_pct", "rh_max_pct", "t_start_s", "t_end_s"):
        _number_or_null(p.get(key), f"process_json.{key}")
    if p.get("made_utc") is not None and not isinstance(p["made_utc"], str):
        raise ValueError(f"process_json.made_utc = {json.dumps(p['made_utc'])[:40]}: expected a text (UTC ISO 8601)")
    if p.get("analysis_failed") is not None and not isinstance(p["analysis_failed"], str):
        raise ValueError(f"process_json.analysis_failed = {json.dumps(p['analysis_failed'])[:40]}: expected a text")
    return p


def membrane_from_row(r: Any) -> MembraneRecord:
    """A ``membranes`` row (columns in schema order; JSON as text or already decoded) → record."""
    def js(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v

    return MembraneRecord(
        membrane_id=r[0], k=int(r[1]), cast_step=int(r[2]), support_position=r[3], simulated=bool(r[4]), status=r[5],
        t_start_s=r[6], t_end_s=r[7], process=_process(js(r[8])), metrics=_metrics(js(r[9])),
        verdict=_object_or_null(js(r[10]), "verdict_json"),
        grades_met=[g for g in (r[11] or "").split(",") if g], target_grade=r[12],
        target_met=None if r[13] is None else bool(r[13]), lot_id=r[14], lost_reason=r[15])


def membrane_counts(membranes: list[dict[str, Any]]) -> str:
    """How a run's membranes ended, for a table cell: ``4: 2 met, 1 not met, 1 lost`` (met: a
    judged membrane that met its target grade, or any grade when it had none); "" without
    membranes (a run recorded before them)."""
    if not membranes:
        return ""
    counts = {"met": 0, "not met": 0, "lost": 0, "not judged": 0}
    for mb in membranes:
        status = mb.get("status")
        if status == "judged":
            met = mb.get("target_met") if mb.get("target_grade") else bool(mb.get("grades_met"))
            counts["met" if met else "not met"] += 1
        else:
            counts["lost" if status == "lost" else "not judged"] += 1
    return f"{len(membranes)}: " + ", ".join(f"{n} {what}" for what, n in counts.items() if n)
