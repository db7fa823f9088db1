"""The local store: one folder per run, records in ``RUN/run.sqlite`` (WAL), a catalog beside.

Durability: WAL journal with ``synchronous=FULL`` by default — every commit fsyncs the WAL, so a
record is on disk when the call returns and survives a kill -9 or a power cut (cost measured by
``benchmarks/store_throughput.py``). A profile may choose ``NORMAL`` (``store_sync``): commits
still reach the OS before the call returns, so a killed process loses nothing, but a power cut may
lose the last commits. The twin's profile uses NORMAL — a simulated run can be replayed from its
seed, and fsyncs would dominate a virtual-time run. The public schema, for the sqlite3 shell:

    samples(t_s REAL, channel TEXT, value REAL)
    events(id INTEGER PRIMARY KEY, t_s REAL, kind TEXT, source TEXT, message TEXT, data_json TEXT)
    journal(seq INTEGER PRIMARY KEY, t_s REAL, step_index INTEGER, state TEXT, data_json TEXT)
    images(id INTEGER PRIMARY KEY, t_s REAL, name TEXT, path TEXT, illumination TEXT,
           pixel_size_um REAL, sha256 TEXT, metadata_json TEXT)
    results(id INTEGER PRIMARY KEY, t_s REAL, name TEXT, path TEXT, json TEXT)
    membranes(membrane_id TEXT PRIMARY KEY, k INTEGER, cast_step INTEGER, support_position INTEGER,
              simulated INTEGER, status TEXT, t_start_s REAL, t_end_s REAL, process_json TEXT,
              metrics_json TEXT, verdict_json TEXT, grades_met TEXT, target_grade TEXT,
              target_met INTEGER, lot_id TEXT, lost_reason TEXT)

``t_s`` is seconds since the run started, on the run's clock (virtual on the twin).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import sqlite3
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from castrig.errors import CastrigError
from castrig.store.atomic import atomic_write_json, fsync_dir
from castrig.store.lock import LOCK_NAME, claim_run, live_outcome, release_run
from castrig.store.base import (
    Event,
    ImageRecord,
    JournalEntry,
    MembraneRecord,
    RunInfo,
    RunRecorder,
    RunStore,
    RunSummary,
)
from castrig.store.signals import deferred_signals

SCHEMA_VERSION = 1
SYNCHRONOUS = "FULL"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS samples(t_s REAL NOT NULL, channel TEXT NOT NULL, value REAL);
CREATE INDEX IF NOT EXISTS samples_channel_t ON samples(channel, t_s);
CREATE TABLE IF NOT EXISTS events(
    id INTEGER PRIMARY KEY, t_s REAL NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL,
    message TEXT NOT NULL, data_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS journal(
    seq INTEGER PRIMARY KEY, t_s REAL NOT NULL, step_index INTEGER NOT NULL, state TEXT NOT NULL,
    data_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS images(
    id INTEGER PRIMARY KEY, t_s REAL NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL,
    illumination TEXT NOT NULL, pixel_size_um REAL NOT NULL, sha256 TEXT NOT NULL,
    metadata_json TEXT NOT NULL DEFAULT '{}');
CREATE TABLE IF NOT EXISTS results(
    id INTEGER PRIMARY KEY, t_s REAL NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, json TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS membranes(
    membrane_id TEXT PRIMARY KEY, k INTEGER NOT NULL, cast_step INTEGER NOT NULL, support_position INTEGER,
    simulated INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, t_start_s REAL, t_end_s REAL,
    process_json TEXT NOT NULL DEFAULT '{}', metrics_json TEXT, verdict_json TEXT,
    grades_met TEXT NOT NULL DEFAULT '', target_grade TEXT, target_met INTEGER, lot_id TEXT, lost_reason TEXT);
"""


SYNC_MODES = ("FULL", "NORMAL")


def connect(path: Path, synchronous: str = SYNCHRONOUS) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL; transactions are explicit."""
    if synchronous not in SYNC_MODES:
        raise ValueError(f"synchronous must be one of {SYNC_MODES}, not {synchronous!r}")
    conn = sqlite3.connect(path, isolation_level=None, timeout=10.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


class StoreError(CastrigError):
    """A record could not be written (disk full, I/O error, database locked): the run must stop
    safely and say so; what was written before stays readable."""


class _Tx:
    """``with _Tx(conn):`` — one durable transaction that a signal cannot tear.

    A failure anywhere (BEGIN, a statement, COMMIT — e.g. SQLITE_FULL) rolls the transaction
    back, lets deferred signals through again and is raised as :class:`StoreError`.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self._sig = deferred_signals()
        self._sig.__enter__()
        try:
            self.conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            self._sig.__exit__(None, None, None)  # a failed BEGIN must not leave signals deferred
            raise StoreError(f"cannot write the run record: {exc}") from exc
        return self.conn

    def __exit__(self, exc_type: object, exc: object, *rest: object) -> None:
        try:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                    return
                except sqlite3.Error as commit_exc:
                    self._rollback()
                    raise StoreError(f"cannot write the run record: {commit_exc}") from commit_exc
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot write the run record: {exc}") from exc
        finally:
            self._sig.__exit__(None, None, None)

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may already have rolled back (e.g. after SQLITE_FULL)


def _dumps(data: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(data or {}), sort_keys=True, default=_json_default)


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


class SqliteRunRecorder(RunRecorder):
    def __init__(self, run_dir: Path, info: RunInfo, *, create: bool, synchronous: str = SYNCHRONOUS):
        self.run_dir = Path(run_dir)
        self.info = info
        self.synchronous = synchronous
        #: Set by the store when this recorder created the run and so holds its folder lock.
        self.owns_lock = False
        self._db = connect(self.run_dir / "run.sqlite", synchronous)
        if not create and not _has_table(self._db, "membranes"):
            try:  # a run folder from before membranes: the table joins it (append-only otherwise)
                self._db.executescript(_SCHEMA)
            except sqlite3.Error:
                pass  # read-only folder: readers see no membranes table and fall back
        if create:
            self._db.executescript(_SCHEMA)
            with _Tx(self._db) as c:
                c.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
            fsync_dir(self.run_dir)

    # -- writing --------------------------------------------------------------------------
    def add_samples(self, t_s: float, values: Mapping[str, float]) -> None:
        rows = [(float(t_s), ch, None if v is None else float(v)) for ch, v in values.items()]
        with _Tx(self._db) as c:
            c.executemany("INSERT INTO samples(t_s, channel, value) VALUES(?,?,?)", rows)

    def add_event(self, t_s: float, kind: str, source: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        with _Tx(self._db) as c:
            c.execute(
                "INSERT INTO events(t_s, kind, source, message, data_json) VALUES(?,?,?,?,?)",
                (float(t_s), kind, source, message, _dumps(data)),
            )

    def add_journal(self, t_s: float, step_index: int, state: str, data: Mapping[str, Any] | None = None) -> int:
        with _Tx(self._db) as c:
            cur = c.execute(
                "INSERT INTO journal(t_s, step_index, state, data_json) VALUES(?,?,?,?)",
                (float(t_s), int(step_index), state, _dumps(data)),
            )
            return int(cur.lastrowid or 0)

    def save_image(
        self,
        t_s: float,
        name: str,
        image: np.ndarray,
        *,
        pixel_size_um: float,
        illumination: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> Path:
        from castrig.tiffio import write_micrograph

        folder = self.run_dir / "images"
        folder.mkdir(exist_ok=True)
        path = folder / f"{_safe(name)}.tif"
        if self._db.execute("SELECT 1 FROM images WHERE name=? OR path=?",
                            (name, str(path.relative_to(self.run_dir)))).fetchone():
            raise StoreError(f"image {name!r} is already recorded in {self.run_dir}: a recorded micrograph is never overwritten")
        meta = dict(metadata or {})
        meta.update({"illumination": illumination, "t_s": float(t_s)})
        write_micrograph(path, image, pixel_size_um, json.loads(_dumps(meta)))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        with _Tx(self._db) as c:
            c.execute(
                "INSERT INTO images(t_s, name, path, illumination, pixel_size_um, sha256, metadata_json)"
                " VALUES(?,?,?,?,?,?,?)",
                (float(t_s), name, str(path.relative_to(self.run_dir)), illumination, float(pixel_size_um), digest, _dumps(meta)),
            )
        return path

    def save_result(self, t_s: float, name: str, result: Mapping[str, Any]) -> Path:
        # "m-id/metrics" → results/m-id/metrics.json (one folder per membrane)
        parts = [_safe(p) for p in name.split("/") if p]
        folder = self.run_dir.joinpath("results", *parts[:-1])
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{parts[-1] if parts else 'item'}.json"
        payload = json.loads(_dumps(result))
        atomic_write_json(path, payload)
        with _Tx(self._db) as c:
            c.execute(
                "INSERT INTO results(t_s, name, path, json) VALUES(?,?,?,?)",
                (float(t_s), name, str(path.relative_to(self.run_dir)), json.dumps(payload, sort_keys=True)),
            )
        return path

    def save_membrane(self, membrane: MembraneRecord) -> None:
        m = membrane
        row = (m.membrane_id, m.k, m.cast_step, m.support_position, int(m.simulated), m.status, m.t_start_s, m.t_end_s,
               _dumps(m.process), None if m.metrics is None else _dumps(m.metrics),
               None if m.verdict is None else _dumps(m.verdict), ",".join(m.grades_met), m.target_grade,
               None if m.target_met is None else int(m.target_met), m.lot_id, m.lost_reason)
        with _Tx(self._db) as c:
            c.execute("INSERT OR REPLACE INTO membranes(membrane_id, k, cast_step, support_position, simulated, status,"
                      " t_start_s, t_end_s, process_json, metrics_json, verdict_json, grades_met, target_grade, target_met,"
                      " lot_id, lost_reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def membranes(self) -> list[MembraneRecord]:
        if not _has_table(self._db, "membranes"):
            return []
        rows = self._db.execute(
            "SELECT membrane_id, k, cast_step, support_position, simulated, status, t_start_s, t_end_s, process_json,"
            " metrics_json, verdict_json, grades_met, target_grade, target_met, lot_id, lost_reason FROM membranes ORDER BY k"
        ).fetchall()
        return [membrane_from_row(r) for r in rows]

    def update_info(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key not in RunInfo.__dataclass_fields__:
                raise AttributeError(f"RunInfo has no field {key!r}")
            setattr(self.info, key, value)
        with deferred_signals():
            atomic_write_json(self.run_dir / "run.json", self.info.to_dict())

    def finish(self, outcome: str, reason: str | None = None) -> None:
        self.update_info(outcome=outcome, outcome_reason=reason, ended_utc=utc_now_iso())

    # -- reading --------------------------------------------------------------------------
    def samples(self, channel: str | None = None) -> list[tuple[float, str, float]]:
        if channel is None:
            cur = self._db.execute("SELECT t_s, channel, value FROM samples ORDER BY rowid")
        else:
            cur = self._db.execute("SELECT t_s, channel, value FROM samples WHERE channel=? ORDER BY rowid", (channel,))
        return [tuple(r) for r in cur.fetchall()]  # type: ignore[misc]

    def events(self, kind: str | None = None) -> list[Event]:
        sql = "SELECT t_s, kind, source, message, data_json FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind=?"
            args = (kind,)
        rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [Event(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def journal(self) -> list[JournalEntry]:
        rows = self._db.execute("SELECT seq, t_s, step_index, state, data_json FROM journal ORDER BY seq").fetchall()
        return [JournalEntry(r[0], r[1], r[2], r[3], json.loads(r[4])) for r in rows]

    def images(self) -> list[ImageRecord]:
        rows = self._db.execute(
            "SELECT t_s, name, path, illumination, pixel_size_um, sha256, metadata_json FROM images ORDER BY id"
        ).fetchall()
        return [ImageRecord(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6])) for r in rows]

    def results(self) -> dict[str, dict[str, Any]]:
        rows = self._db.execute("SELECT name, json FROM results ORDER BY id").fetchall()
        return {name: json.loads(js) for name, js in rows}

    def last_sample_t_s(self) -> float | None:
        row = self._db.execute("SELECT max(t_s) FROM samples").fetchone()
        return None if row is None or row[0] is None else float(row[0])

    def close(self) -> None:
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        if self.owns_lock:
            self.owns_lock = False
            release_run(self.run_dir)


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


def membrane_from_row(r: Any) -> MembraneRecord:
    """A ``membranes`` row (columns in schema order; JSON as text or already decoded) → record."""
    def js(v: Any) -> Any:
        return json.loads(v) if isinstance(v, str) else v

    return MembraneRecord(
        membrane_id=r[0], k=int(r[1]), cast_step=int(r[2]), support_position=r[3], simulated=bool(r[4]), status=r[5],
        t_start_s=r[6], t_end_s=r[7], process=js(r[8]) or {}, metrics=js(r[9]), verdict=js(r[10]),
        grades_met=[g for g in (r[11] or "").split(",") if g], target_grade=r[12],
        target_met=None if r[13] is None else bool(r[13]), lot_id=r[14], lost_reason=r[15])


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "item"


def utc_now_iso(epoch: float | None = None) -> str:
    when = datetime.now(timezone.utc) if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
    return when.isoformat(timespec="seconds").replace("+00:00", "Z")


class SqliteRunStore(RunStore):
    """Run folders under ``root`` and a catalog in ``root/catalog.sqlite``."""

    def __init__(self, root: Path, *, synchronous: str = SYNCHRONOUS):
        self.root = Path(root)
        self.synchronous = synchronous

    def _catalog(self) -> sqlite3.Connection:
        self.root.mkdir(parents=True, exist_ok=True)
        conn = connect(self.root / "catalog.sqlite")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, run_dir TEXT NOT NULL,"
            " recipe_name TEXT, profile_name TEXT, operator TEXT, started_utc TEXT, ended_utc TEXT,"
            " outcome TEXT, grades TEXT NOT NULL DEFAULT '')"
        )
        return conn

    def create_run(self, info: RunInfo) -> SqliteRunRecorder:
        self.root.mkdir(parents=True, exist_ok=True)
        base = _safe(info.run_id)
        run_dir = self.root / base
        n = 1
        while True:
            try:
                run_dir.mkdir()
                break
            except FileExistsError:
                n += 1
                run_dir = self.root / f"{base}-{n}"
        info.run_id = run_dir.name
        # owned before anything is in it: a resume started on the new folder is refused, not raced
        claim_run(run_dir, purpose=f"castrig run {info.recipe_name}")
        try:
            info.pid, info.host, info.lock = os.getpid(), socket.gethostname(), LOCK_NAME
            fsync_dir(self.root)
            atomic_write_json(run_dir / "run.json", info.to_dict())
            rec = SqliteRunRecorder(run_dir, info, create=True, synchronous=self.synchronous)
            rec.owns_lock = True
            self.index_run(rec)
        except BaseException:
            release_run(run_dir)
            raise
        return rec

    def open_run(self, run_dir: Path) -> SqliteRunRecorder:
        run_dir = Path(run_dir)
        info_path = run_dir / "run.json"
        if not info_path.is_file() or not (run_dir / "run.sqlite").is_file():
            from castrig.errors import BadInput

            raise BadInput(f"{run_dir}: not a run folder (needs run.json and run.sqlite)", file=str(run_dir))
        info = RunInfo.from_dict(json.loads(info_path.read_text()))
        return SqliteRunRecorder(run_dir, info, create=False, synchronous=self.synchronous)

    def index_run(self, recorder: RunRecorder, grades: Iterable[str] = ()) -> None:
        i = recorder.info
        conn = self._catalog()
        try:
            with _Tx(conn) as c:
                c.execute(
                    "INSERT OR REPLACE INTO runs VALUES(?,?,?,?,?,?,?,?,?)",
                    (
                        i.run_id,
                        str(Path(recorder.run_dir).resolve()),
                        i.recipe_name,
                        i.profile_name,
                        i.operator,
                        i.started_utc,
                        i.ended_utc,
                        i.outcome,
                        ",".join(grades),
                    ),
                )
        finally:
            conn.close()

    def list_runs(self) -> list[RunSummary]:
        """Catalog rows, after indexing any run folder the catalog does not know yet."""
        if not self.root.is_dir():
            return []
        conn = self._catalog()
        try:
            known = {r[0] for r in conn.execute("SELECT run_id FROM runs")}
        finally:
            conn.close()
        for info_path in sorted(self.root.glob("*/run.json")):
            if info_path.parent.name not in known and (info_path.parent / "run.sqlite").is_file():
                try:
                    rec = self.open_run(info_path.parent)
                except Exception:  # noqa: BLE001 - a damaged folder must not hide the others
                    continue
                with rec:
                    self.index_run(rec)
        conn = self._catalog()
        try:
            rows = conn.execute(
                "SELECT run_id, run_dir, recipe_name, profile_name, operator, started_utc, ended_utc, outcome, grades"
                " FROM runs ORDER BY started_utc, run_id"
            ).fetchall()
        finally:
            conn.close()
        return [RunSummary(*r[:7], live_outcome(Path(r[1]), r[7]), tuple(g for g in (r[8] or "").split(",") if g))
                for r in rows]
