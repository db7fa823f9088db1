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
import itertools
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the listings (`castrig runs`, `lots`, `status`) need not load numpy
    import numpy as np

from castrig.atomic import atomic_write_json, fsync_dir
from castrig.errors import BadInput, Busy, CastrigError
from castrig.regular import FileTooBig, NotRegularFile
from castrig.store import runjson
from castrig.store.lock import LOCK_NAME, claim_run, live_outcome, release_run, run_holder
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

#: Built when a run ends, not while it records: a per-channel index puts each sample's dozen rows
#: on a dozen B-tree pages, and every one of them is written again at each commit (~4x the cost of
#: a sample, and 4x the bytes written to the disk). Readers of a live or crashed run scan instead.
_INDEXES = "CREATE INDEX IF NOT EXISTS samples_channel_t ON samples(channel, t_s);"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS samples(t_s REAL NOT NULL, channel TEXT NOT NULL, value REAL);
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


#: How long :func:`connect` tries to switch a database to WAL while another connection holds it.
WAL_SWITCH_WAIT_S = 10.0


def _to_wal(conn: sqlite3.Connection, wait_s: float, pause_s: float, busy: Callable[[Exception], bool]) -> None:
    """Switch ``conn``'s database to WAL, tried again every ``pause_s`` while ``busy`` says the
    refusal is another connection's for ``wait_s`` in all; then (or at once, not busy) the last
    OperationalError is raised."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if not busy(exc) or time.monotonic() > deadline:
                raise
            time.sleep(pause_s)


def connect(path: Path, synchronous: str = SYNCHRONOUS) -> sqlite3.Connection:
    """A connection in autocommit mode with WAL; transactions are explicit."""
    if synchronous not in SYNC_MODES:
        raise ValueError(f"synchronous must be one of {SYNC_MODES}, not {synchronous!r}")
    # (Python's absolute path: SQLite's own refused a `--data ../../../../tmp/x` whose ".." reach
    # above "/", where the OS stays at "/": "unable to open database file", the run faulted)
    conn = sqlite3.connect(os.path.abspath(path), isolation_level=None, timeout=10.0)
    # Two processes making a fresh database: switching to WAL may answer 'locked' without waiting
    # on the busy handler; the other's switch takes milliseconds (I/O, not the run's clock). A
    # closed run's reader holding it (rollback-journal mode: see writable_now) refuses the switch
    # for as long as it reads: bounded in all (it was 50 tries of a 10 s busy wait each, ~8 min).
    conn.execute("PRAGMA busy_timeout=1000")
    try:
        _to_wal(conn, WAL_SWITCH_WAIT_S, 0.05, lambda exc: "locked" in str(exc))
    except sqlite3.OperationalError:
        conn.close()
        raise
    conn.execute(f"PRAGMA synchronous={synchronous}")
    conn.execute("PRAGMA busy_timeout=10000")
    return conn


def ro_uri(path: str | Path) -> str:
    """``file:`` URI of a database, its path percent-encoded: a data root named ``Lab #2`` or
    ``a?b`` cut the URI short there, and every reader found no database (status showed nothing)."""
    return Path(path).resolve().as_uri()


def lenient_text(raw: bytes) -> str:
    """A reader's ``text_factory``: TEXT that is not UTF-8 (a hand edit, ``CAST(X'41FF' AS TEXT)``)
    read with U+FFFD. SQLite's default raised OperationalError on the whole query: the live page
    showed no events or no plots without a word, and the report was a traceback."""
    return raw.decode("utf-8", errors="replace")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader's connection: ``mode=ro``, the journal mode left as it is (no write access needed).

    A WAL database in a folder nobody may write (a read-only copy, a full disk) cannot get its
    ``-shm`` file: then it is opened ``immutable`` — right for a copy, which nobody writes.
    """
    uri = ro_uri(path)
    try:
        conn = sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=10.0)
        conn.text_factory = lenient_text
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        if not os.access(path, os.R_OK):
            raise
    conn = sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, timeout=10.0)
    conn.text_factory = lenient_text
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


#: SQLite's answers that mean "no room": SQLITE_FULL, and a failed write (EFBIG, EDQUOT: disk I/O error).
_FULL_CODES = {13, 778}  # SQLITE_FULL, SQLITE_IOERR_WRITE


def is_disk_full(exc: BaseException) -> bool:
    """A write refused for lack of room (disk full, quota, file-size limit), however it surfaced."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (28, 27, 122):  # ENOSPC, EFBIG, EDQUOT
            return True
        if isinstance(e, sqlite3.Error) and (getattr(e, "sqlite_errorcode", None) in _FULL_CODES
                                             or "disk is full" in str(e)):
            return True
        if isinstance(e, StoreError) and str(e).startswith("disk full"):
            return True
        e = e.__cause__ or e.__context__
    return False


def _little_room(folder: Path, need: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < need


#: How long a write to the data root's catalog waits for another process's transaction on it.
CATALOG_BUSY_MS = 3000


def _busy(exc: BaseException | None) -> bool:
    """``exc`` is SQLite's 'database is locked' (SQLITE_BUSY or SQLITE_LOCKED): another connection holds it."""
    return isinstance(exc, sqlite3.OperationalError) and (
        (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(exc))


def _damaged(exc: BaseException | None) -> bool:
    """``exc`` is SQLite's word for a file that is not a database, or a damaged one (not a full
    disk, a lock or an I/O error: those are OperationalError)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


_SAID_DAMAGED: set[str] = set()


def _say_damaged_catalog(path: Path, exc: BaseException | None) -> None:
    """Once per process and catalog: runs go on and are listed from their folders."""
    if str(path) in _SAID_DAMAGED:
        return
    _SAID_DAMAGED.add(str(path))
    try:
        os.write(2, f"warning: {path}: {exc} -- the data root's index of runs is damaged; runs go on and are listed "
                    f"from their folders (move it aside: `castrig runs` makes a new one)\n".encode())
    except OSError:
        pass


def _write_error(exc: sqlite3.Error) -> "StoreError":
    prefix = "disk full: " if is_disk_full(exc) else ""
    return StoreError(f"{prefix}cannot write the run record: {exc}")


class DamagedRun(BadInput):
    """A run folder whose ``run.json`` or ``run.sqlite`` cannot be read (truncated, not JSON, not
    an object, empty, not a database): named with the reason, never a traceback."""

    def __init__(self, run_dir: Path, reason: str):
        self.run_dir = Path(run_dir)
        self.reason = reason
        super().__init__(f"{run_dir}: damaged run folder: {reason}", file=str(run_dir))


class StoreError(CastrigError):
    """A record could not be written (disk full, I/O error, database locked): the run must stop
    safely and say so; what was written before stays readable."""


class CannotMakeRunFolder(BadInput):
    """The data root takes no new run folder (a read-only file system, no permission): exit 2,
    before anything was recorded; the CLI names the flag the root came from."""

    def __init__(self, root: Path, detail: str):
        self.root, self.detail = Path(root), detail
        super().__init__(f"{root}: cannot make a run folder in it ({detail}); nothing was recorded", file=str(root))


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
            raise _write_error(exc) from exc
        return self.conn

    def __exit__(self, exc_type: object, exc: object, *rest: object) -> None:
        try:
            if exc_type is None:
                try:
                    self.conn.execute("COMMIT")
                    return
                except sqlite3.Error as commit_exc:
                    self._rollback()
                    raise _write_error(commit_exc) from commit_exc
            self._rollback()
            if isinstance(exc, sqlite3.Error):
                raise _write_error(exc) from exc
        finally:
            self._sig.__exit__(None, None, None)

    def _rollback(self) -> None:
        try:
            self.conn.execute("ROLLBACK")
        except sqlite3.Error:
            pass  # SQLite may already have rolled back (e.g. after SQLITE_FULL)


#: Rows of one sample written by one multi-row INSERT (3 parameters each, far below SQLite's
#: 999-parameter floor); a larger sample goes through an explicit transaction.
_MAX_SAMPLE_ROWS = 300


@lru_cache(maxsize=None)
def _insert_samples_sql(n_rows: int) -> str:
    return "INSERT INTO samples(t_s, channel, value) VALUES" + ",".join(["(?,?,?)"] * n_rows)


def _write_one(conn: sqlite3.Connection, sql: str, params: Iterable[Any]) -> None:
    """One statement as its own transaction: SQLite's autocommit makes it atomic and commits it
    as durably as ``_Tx`` (same synchronous mode, one commit), in one call instead of BEGIN,
    the statement and COMMIT; signals are deferred and errors raised as :class:`StoreError`
    as there."""
    with deferred_signals():
        try:
            conn.execute(sql, params)
        except sqlite3.Error as exc:
            raise _write_error(exc) from exc


def _dumps(data: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(data or {}), sort_keys=True, default=_json_default)


def _json_default(obj: Any) -> Any:
    np = sys.modules.get("numpy")  # no numpy loaded: no numpy values to write
    if np is not None and isinstance(obj, np.generic):
        return obj.item()
    if np is not None and isinstance(obj, np.ndarray):
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
        #: A reopened run is read through a read-only connection (reading never needs write
        #: access); the first write switches to a read-write one (resume).
        self._read_only = not create
        self._db = connect_readonly(self.run_dir / "run.sqlite") if not create else connect(self.run_dir / "run.sqlite", synchronous)
        if create:
            self._db.executescript(_SCHEMA)
            with _Tx(self._db) as c:
                c.execute("INSERT OR REPLACE INTO meta VALUES('schema_version', ?)", (str(SCHEMA_VERSION),))
            fsync_dir(self.run_dir)

    def _w(self) -> sqlite3.Connection:
        """The connection to write with (opened read-write, WAL, on the first write of a reopened run)."""
        if self._read_only:
            try:
                conn = connect(self.run_dir / "run.sqlite", self.synchronous)
            except sqlite3.Error as exc:
                raise _write_error(exc) from exc
            self._db.close()
            self._db, self._read_only = conn, False
            if not _has_table(conn, "membranes"):
                try:  # a run folder from before membranes: the table joins it (append-only otherwise)
                    conn.executescript(_SCHEMA)
                except sqlite3.Error as exc:
                    raise _write_error(exc) from exc
        return self._db

    # -- writing --------------------------------------------------------------------------
    def add_samples(self, t_s: float, values: Mapping[str, float]) -> None:
        rows = [(float(t_s), ch, None if v is None else float(v)) for ch, v in values.items()]
        if 0 < len(rows) <= _MAX_SAMPLE_ROWS:
            _write_one(self._w(), _insert_samples_sql(len(rows)), [x for row in rows for x in row])
            return
        with _Tx(self._w()) as c:
            c.executemany("INSERT INTO samples(t_s, channel, value) VALUES(?,?,?)", rows)

    def add_event(self, t_s: float, kind: str, source: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        with _Tx(self._w()) as c:
            c.execute(
                "INSERT INTO events(t_s, kind, source, message, data_json) VALUES(?,?,?,?,?)",
                (float(t_s), kind, source, message, _dumps(data)),
            )

    def add_journal(self, t_s: float, step_index: int, state: str, data: Mapping[str, Any] | None = None) -> int:
        with _Tx(self._w()) as c:
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
        with _Tx(self._w()) as c:
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
        with _Tx(self._w()) as c:
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
        with _Tx(self._w()) as c:
            c.execute("INSERT OR REPLACE INTO membranes(membrane_id, k, cast_step, support_position, simulated, status,"
                      " t_start_s, t_end_s, process_json, metrics_json, verdict_json, grades_met, target_grade, target_met,"
                      " lot_id, lost_reason) VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", row)

    def membranes(self) -> list[MembraneRecord]:
        return _membranes(self._db, self.run_dir)

    def update_info(self, **changes: Any) -> None:
        for key, value in changes.items():
            if key not in RunInfo.__dataclass_fields__:
                raise AttributeError(f"RunInfo has no field {key!r}")
            setattr(self.info, key, value)
        try:
            try:
                with deferred_signals():
                    atomic_write_json(self.run_dir / "run.json", self.info.to_dict())
            except OSError as exc:
                if not (is_disk_full(exc) and _free_reserve(self.run_dir)):
                    raise
                with deferred_signals():  # the room kept for this moment: the outcome gets written
                    atomic_write_json(self.run_dir / "run.json", self.info.to_dict())
        except OSError as exc:
            prefix = "disk full: " if is_disk_full(exc) else ""
            raise StoreError(f"{prefix}cannot write {self.run_dir / 'run.json'}: {exc.strerror or exc}") from exc

    def finish(self, outcome: str, reason: str | None = None) -> None:
        self.update_info(outcome=outcome, outcome_reason=reason, ended_utc=utc_now_iso())
        try:  # for the readers to come; a run that cannot get it (disk full) is read by scanning
            with _Tx(self._w()) as c:
                c.execute(_INDEXES)
        except StoreError:
            pass

    # -- reading --------------------------------------------------------------------------
    def samples(self, channel: str | None = None) -> list[tuple[float, str, float]]:
        if channel is None:
            rows = _read(self.run_dir, self._db, "SELECT t_s, channel, value FROM samples ORDER BY rowid")
        else:
            rows = _read(self.run_dir, self._db, "SELECT t_s, channel, value FROM samples WHERE channel=? ORDER BY rowid", (channel,))
        # (a text where a number belongs — a hand edit — was "could not convert string to float" in
        # the report's traceback; ~10 ms for an 8-hour run's 60 000 rows)
        def ok(r: Any) -> bool:
            return isinstance(r[0], (int, float)) and isinstance(r[2], (int, float, type(None)))

        if not all(map(ok, rows)):
            n = next(i for i, r in enumerate(rows, 1) if not ok(r))
            raise DamagedRun(self.run_dir, f"run.sqlite: samples row {n} cannot be read (t_s = {rows[n - 1][0]!r}, "
                                           f"value = {rows[n - 1][2]!r}: expected numbers)")
        return [tuple(r) for r in rows]  # type: ignore[misc]

    def events(self, kind: str | None = None) -> list[Event]:
        sql = "SELECT t_s, kind, source, message, data_json FROM events"
        args: tuple[Any, ...] = ()
        if kind is not None:
            sql += " WHERE kind=?"
            args = (kind,)
        rows = _read(self.run_dir, self._db, sql + " ORDER BY id", args)
        return decoded_rows(self.run_dir, "events", rows,
                            lambda r: Event(_t(r[0]), _text(r[1]), _text(r[2]), _text(r[3]), _object(r[4])))

    def journal(self) -> list[JournalEntry]:
        rows = _read(self.run_dir, self._db, "SELECT seq, t_s, step_index, state, data_json FROM journal ORDER BY seq")
        steps = (self.info.recipe or {}).get("steps") if isinstance(self.info.recipe, dict) else None
        n_steps = len(steps) if isinstance(steps, list) else None
        return decoded_rows(self.run_dir, "journal", rows,
                            lambda r: JournalEntry(r[0], _t_run(r[1]), _step(r[2], n_steps), _text(r[3]), _object(r[4])))

    def images(self) -> list[ImageRecord]:
        rows = _read(self.run_dir, self._db,
                     "SELECT t_s, name, path, illumination, pixel_size_um, sha256, metadata_json FROM images ORDER BY id")
        return decoded_rows(self.run_dir, "images", rows,
                            lambda r: ImageRecord(_t(r[0]), r[1], r[2], r[3], r[4], r[5], _object(r[6])))

    def results(self) -> dict[str, dict[str, Any]]:
        rows = _read(self.run_dir, self._db, "SELECT name, json FROM results ORDER BY id")
        return dict(decoded_rows(self.run_dir, "results", rows, lambda r: (_text(r[0]), json.loads(r[1]))))

    def last_sample_t_s(self) -> float | None:
        rows = _read(self.run_dir, self._db, "SELECT max(t_s) FROM samples")
        if not rows or rows[0][0] is None:
            return None
        try:
            return _t(rows[0][0])  # (a text t_s anywhere is SQLite's max of them all)
        except ValueError as exc:
            raise DamagedRun(self.run_dir, f"run.sqlite: samples cannot be read ({exc})") from None

    def close(self) -> None:
        """Idempotent (the session closes its record when the run ends and again on its way out)."""
        if getattr(self, "_closed", False):
            return
        self._closed = True
        if self.owns_lock or not self._read_only:  # made it, or wrote to it (resume): hand it over as one file
            hand_over(self._db)
        try:
            self._db.close()
        except sqlite3.Error:
            pass
        if self.owns_lock:
            self.owns_lock = False
            release_run(self.run_dir)


def writable_now(run_dir: Path, wait_s: float = 10.0, *, again: str = "resume again") -> None:
    """:class:`Busy` unless ``run_dir``'s run.sqlite can be written now: its journal switched back
    to WAL (as :func:`connect` does), where no reader holds a writer up. A closed run is left in
    rollback-journal mode (:func:`hand_over`), and there a reader's open transaction -- a ``castrig
    export`` or ``report`` stopped with Ctrl-Z, a database browser with the file open -- refused
    the switch and every write: ``castrig resume`` of an interrupted or aborted run sat in its
    busy waits (10 s each, up to 50 of them), Ctrl-C held, before it recorded anything. Looked
    at before the rig is touched; waits ``wait_s`` for a reader that is about to let go."""
    path = Path(run_dir) / "run.sqlite"
    conn = sqlite3.connect(os.path.abspath(path), isolation_level=None, timeout=0.2)
    try:
        _to_wal(conn, wait_s, 0.1, _busy)
    except sqlite3.OperationalError as exc:
        if not _busy(exc):
            raise _write_error(exc) from exc
        raise Busy(f"{path} is held open by another process{_lock_holders(path)}, so the run's records "
                   "cannot be written: let it go (a stopped castrig export or report: kill -CONT it or end "
                   f"it; a database browser: close the file) and {again}") from None
    finally:
        conn.close()


def _lock_holders(path: Path) -> str:
    """' (pid N, STOPPED)': the other processes holding a lock on ``path`` (Linux's /proc/locks)."""
    from castrig import oslock

    try:
        st = path.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return ""
    where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
    pids = []
    for line in table.splitlines():
        fields = line.split()
        if "->" in fields:  # a waiter
            continue
        if len(fields) >= 6 and fields[5] == where and fields[4].isdigit() and int(fields[4]) not in (os.getpid(), *pids):
            pids.append(int(fields[4]))
    said = [f"pid {pid}{', STOPPED' if oslock.process_stopped(pid, socket.gethostname()) else ''}" for pid in pids]
    return f" ({'; '.join(said)})" if said else ""


def hand_over(db: sqlite3.Connection) -> None:
    """Leave a closed run as one file: WAL checkpointed, journal back to DELETE.

    A WAL database that its writer closed is read through a ``-wal`` and ``-shm`` that every
    read-only reader (report, export, a copy on a full disk) would otherwise create in the run
    folder and never remove. Best effort and never waiting: while a reader holds the database
    the switch is refused and the run stays WAL, which is just as readable; the next writer
    (resume, sync) switches back to WAL in :func:`connect`."""
    try:
        db.execute("PRAGMA busy_timeout=0")
        db.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error:
        pass


#: Room kept in every run folder (a hidden file) and given up when the disk is full, so that the
#: outcome ("faulted", "disk full") still reaches run.json after the records could not.
RESERVE_NAME = ".castrig-reserve"
RESERVE_BYTES = 64 * 1024


def _keep_reserve(run_dir: Path) -> None:
    try:
        with open(Path(run_dir) / RESERVE_NAME, "wb") as fh:
            fh.write(b"\0" * RESERVE_BYTES)
            fh.flush()
            os.fsync(fh.fileno())
    except OSError:
        (Path(run_dir) / RESERVE_NAME).unlink(missing_ok=True)
        raise


def _free_reserve(run_dir: Path) -> bool:
    """Give up the reserved room; True if there was some."""
    try:
        os.unlink(Path(run_dir) / RESERVE_NAME)
        return True
    except OSError:
        return False


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


def _t(v: Any) -> float:
    """A time in s from the run's start: a finite number (a text or an infinity sorted and
    plotted as nothing else does)."""
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        raise ValueError(f"t_s = {v!r}: expected a finite number of seconds")
    return float(v)


def _t_run(v: Any) -> float:
    """A journal time: the run's own clock never runs before its start (a negative t_s had a
    resume say it went on "from -1e+06 s")."""
    t = _t(v)
    if t < 0:
        raise ValueError(f"t_s = {v!r}: a step cannot start before the run (t_s ≥ 0)")
    return t


def _step(v: Any, n_steps: int | None) -> int:
    """A journal step index: one of the recipe's steps (0-based; 9999 of 26 steps had `status`
    say "step 10000/26")."""
    i = _int(v)
    if i < 0 or (n_steps is not None and i >= n_steps):
        raise ValueError(f"step_index = {i}: the recipe has {n_steps if n_steps is not None else 'its'} steps "
                         f"(0 to {n_steps - 1 if n_steps else 'n-1'})")
    return i


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{v!r}: expected a whole number")
    return v


def _text(v: Any) -> str:
    if not isinstance(v, str):
        raise ValueError(f"{v!r}: expected a text")
    return v


def _object(v: Any) -> dict[str, Any]:
    """A ``*_json`` column: a JSON object (a list or a number there is no record castrig wrote)."""
    data = json.loads(v) if isinstance(v, str) else v
    if not isinstance(data, dict):
        raise ValueError(f"{str(v)[:40]!r}: expected a JSON object")
    return data


def open_run_folder(run_dir: Path) -> "SqliteRunRecorder":
    """A run folder's own records, not through the configured store: what reads a run (a listing,
    a report, an explore scoring it) opens. A fleet store's recorder pushes the run's row as it
    opens, so reading through it rewrote rows (a crashed run's back to running); this one writes
    nothing until asked to."""
    run_dir = Path(run_dir)
    return SqliteRunStore(run_dir.parent).open_run(run_dir)


def read_membranes(run_dir: Path) -> list[MembraneRecord]:
    """A run folder's membrane records, read through a reader's connection (nothing written, no
    store opened: a listing must not touch a run it only looks at)."""
    db = connect_readonly(Path(run_dir) / "run.sqlite")
    try:
        return _membranes(db, Path(run_dir))
    finally:
        db.close()


def read_run_info(run_dir: Path) -> RunInfo:
    """``run.json`` as :class:`RunInfo`; :class:`DamagedRun` if it is missing, truncated, not an
    object, or has a field of the wrong type (``run.json: field started_utc: expected a string, …``)."""
    try:
        text = runjson.read_text(run_dir)
    except FileNotFoundError:
        raise DamagedRun(run_dir, "run.json is missing") from None
    except (NotRegularFile, FileTooBig) as exc:
        raise DamagedRun(run_dir, f"run.json is {exc.strerror}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise DamagedRun(run_dir, f"run.json cannot be read ({getattr(exc, 'strerror', None) or exc})") from None
    if not text.strip():
        raise DamagedRun(run_dir, "run.json is empty")
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise DamagedRun(run_dir, f"run.json is not valid JSON (truncated?): {exc}") from None
    if not isinstance(data, dict):
        raise DamagedRun(run_dir, f"run.json holds {type(data).__name__ if data is not None else 'null'}, not an object")
    wrong = RunInfo.field_error(data)  # a hand-edited field of the wrong type: this run, not every reader, stops
    if wrong is not None:
        raise DamagedRun(run_dir, f"run.json: {wrong}")
    try:
        info = RunInfo.from_dict(data)
    except TypeError as exc:  # a required field missing
        raise DamagedRun(run_dir, f"run.json lacks a field: {exc}") from None
    if not isinstance(info.run_id, str) or not info.run_id:
        raise DamagedRun(run_dir, "run.json has no run_id")
    return info


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None


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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "item"


def run_folder_word(recipe_name: str) -> str:
    """What a run folder's name takes of its recipe's name (``<stamp>-<word>``): the name itself
    where its letters or digits are ASCII ones (the folder keeps those), else ``recipe`` — a
    recipe called ``膜``, ``..`` or ``🧪`` made the folder ``<stamp>-`` (the lists show the recipe's
    own name beside it)."""
    return recipe_name if re.search(r"[A-Za-z0-9]", recipe_name) else "recipe"


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
        conn.execute(f"PRAGMA busy_timeout={CATALOG_BUSY_MS}")  # a live writer's row takes milliseconds
        conn.execute(
            "CREATE TABLE IF NOT EXISTS runs(run_id TEXT PRIMARY KEY, run_dir TEXT NOT NULL,"
            " recipe_name TEXT, profile_name TEXT, operator TEXT, started_utc TEXT, ended_utc TEXT,"
            " outcome TEXT, grades TEXT NOT NULL DEFAULT '')"
        )
        return conn

    def create_run(self, info: RunInfo) -> SqliteRunRecorder:
        base = _safe(info.run_id)
        run_dir = self.root / base
        n = 1
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            while True:
                try:
                    run_dir.mkdir()
                    break
                except FileExistsError:
                    n += 1
                    run_dir = self.root / f"{base}-{n}"
        except OSError as exc:  # nothing made: a read-only data root is bad input, a full disk a fault
            if is_disk_full(exc):
                raise self._create_error(run_dir, exc) from exc
            raise CannotMakeRunFolder(self.root, exc.strerror or str(exc)) from None
        info.run_id = run_dir.name
        try:
            # owned before anything is in it: a resume started on the new folder is refused, not raced
            claim_run(run_dir, purpose=f"castrig run {info.recipe_name}")
        except OSError as exc:  # no room for the lock file: nothing was recorded, leave no folder
            shutil.rmtree(run_dir, ignore_errors=True)
            raise self._create_error(run_dir, exc) from exc
        rec = None
        try:
            info.pid, info.host, info.lock = os.getpid(), socket.gethostname(), LOCK_NAME
            fsync_dir(self.root)
            atomic_write_json(run_dir / "run.json", info.to_dict())
            rec = SqliteRunRecorder(run_dir, info, create=True, synchronous=self.synchronous)
            rec.owns_lock = True
            self.index_run(rec)
            _keep_reserve(run_dir)
        except (OSError, sqlite3.Error, StoreError) as exc:
            # a disk full while the folder is made: the run never started and nothing was
            # recorded — no folder is left behind to show as `running` (or damaged) for good
            if rec is not None:
                rec.owns_lock = False
                rec.close()
            release_run(run_dir)
            shutil.rmtree(run_dir, ignore_errors=True)
            raise self._create_error(run_dir, exc) from exc
        except BaseException:
            release_run(run_dir)
            raise
        return rec

    @staticmethod
    def _create_error(run_dir: Path, exc: BaseException) -> "StoreError":
        detail = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        prefix = "disk full: " if is_disk_full(exc) or _little_room(run_dir.parent) else ""
        return StoreError(f"{prefix}cannot create the run folder {run_dir} ({detail}); nothing was recorded "
                          "and the folder was removed")

    def open_run(self, run_dir: Path) -> SqliteRunRecorder:
        """Reopen a run: read-only until the first write. :class:`DamagedRun` (exit 2, the reason
        named) for a truncated or non-object ``run.json`` or an empty or garbage ``run.sqlite``."""
        run_dir = Path(run_dir)
        db_path = run_dir / "run.sqlite"
        refuse_not_a_run_folder(run_dir)
        info = read_run_info(run_dir)
        try:
            why = run_damage(run_dir) if not db_path.is_file() or db_path.stat().st_size <= 65536 else None
            if why is not None and why.startswith(NEVER_STARTED):  # nothing recorded: not "damaged"
                raise NeverStarted(run_dir, why)
            if not db_path.is_file() or db_path.stat().st_size == 0:  # missing or empty
                raise DamagedRun(run_dir, why or "run.sqlite is missing")
            rec = SqliteRunRecorder(run_dir, info, create=False, synchronous=self.synchronous)
        except sqlite3.DatabaseError as exc:
            raise DamagedRun(run_dir, f"run.sqlite cannot be read ({exc})") from None
        except OSError as exc:
            raise DamagedRun(run_dir, f"run.sqlite cannot be read ({exc.strerror or exc})") from None
        missing = [t for t in ("samples", "events", "journal") if not _has_table(rec._db, t)]
        if missing:
            rec.close()
            raise DamagedRun(run_dir, f"run.sqlite has no {', '.join(missing)} table (not a castrig run record)")
        return rec

    def index_run(self, recorder: RunRecorder, grades: Iterable[str] = ()) -> None:
        """The run's row in the catalog. The catalog is an index of the folders (``list_runs``
        adds a folder it lacks and brings a stale 'running' row up to date), so a catalog another
        process holds locked -- a ``castrig runs`` or ``serve`` stopped (Ctrl-Z, SIGSTOP) in its
        re-indexing transaction -- leaves the row to the next listing: it refused every new run
        on that data root (exit 3 after 10 s, 'cannot create the run folder') and turned the end
        of a run going on into 'faulted: outcome not recorded'. So does a damaged catalog (not a
        database, malformed), said once: every run on that data root was refused ('cannot create
        the run folder ... (file is not a database)', not naming the file), and a run it was
        damaged under ended in a traceback (exit 1) with its outcome recorded. Any other failure
        (a full disk) is raised as before."""
        i = recorder.info
        try:
            conn = self._catalog()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):
                raise
            _say_damaged_catalog(self.root / "catalog.sqlite", exc)
            return
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
        except StoreError as exc:
            if _damaged(exc.__cause__):
                _say_damaged_catalog(self.root / "catalog.sqlite", exc.__cause__)
            elif not _busy(exc.__cause__):
                raise
        finally:
            conn.close()

    def _catalog_rows(self) -> list[tuple[Any, ...]]:
        """The catalog's rows, read-only ([] if there is none or it cannot be read). A row keeps the
        absolute path its run folder had when indexed; a data root moved or copied since (``mv runs
        /archive/runs``) has its folders here, under the root: each row names its folder under this
        root (the run folders are always the root's children)."""
        path = self.root / "catalog.sqlite"
        if not path.is_file():
            return []
        try:
            conn = connect_readonly(path)
            try:
                rows = [tuple(r) for r in conn.execute(
                    "SELECT run_id, run_dir, recipe_name, profile_name, operator, started_utc, ended_utc, outcome, grades"
                    " FROM runs")]
            finally:
                conn.close()
        except sqlite3.Error:
            return []
        here = self.root.resolve()
        return [r if Path(str(r[1])).parent == here else (r[0], str(here / Path(str(r[1])).name), *r[2:]) for r in rows]

    def _is_copy(self, run_dir: Path, run_id: str) -> bool:
        """``run_dir`` holds a copy of run ``run_id`` whose own folder is under the root: the same run
        (started at the same time, by the same process), not another run that happens to share the id."""
        own = self.root / run_id
        if run_dir.name == run_id or not (own / "run.json").is_file():
            return False

        def identity(folder: Path) -> tuple[Any, ...] | None:
            try:
                info = json.loads(runjson.read_text(folder))
                first = (info.get("parts") or [{}])[0]
                return info.get("started_utc"), first.get("host"), first.get("pid")
            except (OSError, ValueError, AttributeError, TypeError):
                return None

        mine = identity(run_dir)
        return mine is not None and mine == identity(own)

    def _refresh_row(self, run_dir: Path, row: tuple[Any, ...], outcome: str) -> RunSummary | None:
        """A catalog row that says ``running`` brought up to date from its run folder
        (:func:`folder_account`). ``outcome``: what :func:`live_outcome` shows; a run no longer
        running (crashed, or ended) has its catalog row rewritten when it differs (a live run's row
        is left to its runner, which writes it at the end) -- only if the row is still the one
        read: a ``castrig resume`` that ended meanwhile wrote a newer row, which an older account
        of the folder must not replace. None if the folder cannot be read (the row is shown as it is)."""
        account = folder_account(run_dir, row[0])
        if account is None:
            return None
        i, grades = account
        if outcome != "running" and (",".join(grades) != (row[8] or "") or i.outcome != row[7] or i.ended_utc != row[6]):
            try:
                conn = self._catalog()
                try:
                    with _Tx(conn) as c:  # compare-and-set: unchanged since this listing read it
                        c.execute("UPDATE runs SET recipe_name=?, profile_name=?, operator=?, started_utc=?, ended_utc=?,"
                                  " outcome=?, grades=? WHERE run_id IS ? AND run_dir IS ? AND recipe_name IS ?"
                                  " AND profile_name IS ? AND operator IS ? AND started_utc IS ? AND ended_utc IS ?"
                                  " AND outcome IS ? AND grades IS ?",
                                  (i.recipe_name, i.profile_name, i.operator, i.started_utc, i.ended_utc, i.outcome,
                                   ",".join(grades), *row))
                finally:
                    conn.close()
            except (StoreError, OSError, sqlite3.Error):
                pass  # a read-only or full data root: shown from the folder, indexed another time
        return RunSummary(row[0], row[1], i.recipe_name, i.profile_name, i.operator, i.started_utc, i.ended_utc,
                          outcome, grades)

    def list_runs(self) -> list[RunSummary]:
        """Catalog rows, and every run folder the catalog does not know yet (indexed if the data
        root can be written; listed from the folder if not — a read-only or full data root). A
        folder whose run.json or run.sqlite cannot be read is listed ``damaged``, with the reason."""
        if not self.root.is_dir():
            return []
        from castrig.store.base import grades_of

        # (a row an older build let a copy of the run take: the run's own folder is indexed again below)
        known = {r[0]: r for r in self._catalog_rows() if not self._is_copy(Path(r[1]), r[0])}
        out: list[RunSummary] = []
        for r in known.values():
            run_dir = Path(r[1])
            damage = run_damage(run_dir) if run_dir.is_dir() else None
            if damage is not None:
                out.append(RunSummary(*r[:7], "damaged", (), reason=damage))
                continue
            outcome, grades = live_outcome(run_dir, r[7]), tuple(g for g in (r[8] or "").split(",") if g)
            if r[7] == "running" and run_dir.is_dir():
                fresh = self._refresh_row(run_dir, r, outcome)
                if fresh is not None:
                    out.append(fresh)
                    continue
            out.append(RunSummary(*r[:7], outcome, grades))
        # the folders no catalog row names (by its folder, not its id: a run folder renamed inside
        # the root, its row moved to the new name, was listed from its row and again from the folder)
        indexed = {Path(str(r[1])) for r in known.values()}
        try:
            folders = sorted(p for p in self.root.iterdir() if p.is_dir() and p.resolve() not in indexed)
        except OSError:
            folders = []
        for run_dir in folders:
            if not ((run_dir / "run.json").exists() or (run_dir / "run.sqlite").exists()):
                # killed before it wrote run.json (empty, the lock alone, run.json's temporary): listed
                # never started unless its maker lives; any other folder is not a run (another tool's, an export)
                why = never_started(run_dir)
                if why is not None and run_holder(run_dir) is None:
                    out.append(RunSummary(run_dir.name, str(run_dir.resolve()), "", "", "", "", None, "damaged", (),
                                          reason=never_started_reason(why)))
                continue
            try:
                rec = self.open_run(run_dir)
            except DamagedRun as exc:
                if run_holder(run_dir) is not None:
                    continue  # being created right now by its owner
                out.append(RunSummary(run_dir.name, str(run_dir.resolve()), "", "", "", "", None, "damaged", (),
                                      reason=exc.reason))
                continue
            except BadInput:
                continue
            with rec:
                i = rec.info
                if self._is_copy(run_dir, i.run_id):
                    # a copy (``cp -a RUN RUN.bak``): indexed, it would take the run's catalog row
                    # and list the run, and its membranes as lots, twice
                    out.append(RunSummary(run_dir.name, str(run_dir.resolve()), i.recipe_name, i.profile_name, i.operator,
                                          i.started_utc, i.ended_utc, "damaged", (),
                                          reason=f"a copy of run {i.run_id} (its own folder is {self.root / i.run_id}): "
                                                 "not listed as a run or lot; move it out of the data root"))
                    continue
                row = known.get(i.run_id)
                if row is not None and not Path(str(row[1])).is_dir():
                    # its row names a folder that is gone: the run was moved here (renamed), its row follows it
                    out = [r for r in out if not (r.run_id == i.run_id and r.run_dir == row[1])]
                try:
                    grades = tuple(grades_of(rec))
                except DamagedRun as exc:  # a row of it cannot be read: listed as such, the other runs listed too
                    out.append(RunSummary(run_dir.name, str(run_dir.resolve()), i.recipe_name, i.profile_name, i.operator,
                                          i.started_utc, i.ended_utc, "damaged", (), reason=exc.reason))
                    continue
                try:
                    self.index_run(rec, grades)
                except (StoreError, OSError, sqlite3.Error):
                    pass  # a read-only or full data root: listed from the folder, indexed another time
                out.append(RunSummary(i.run_id, str(run_dir.resolve()), i.recipe_name, i.profile_name, i.operator,
                                      i.started_utc, i.ended_utc, live_outcome(run_dir, i.outcome), grades))
        return sorted(out, key=lambda r: (str(r.started_utc or ""), str(r.run_id)))  # a stale catalog row: any type


def folder_account(run_dir: Path, run_id: str) -> tuple[RunInfo, tuple[str, ...]] | None:
    """What run folder ``run_dir`` says of run ``run_id`` now: its ``run.json`` and the grades its
    judged membranes met so far (as ``castrig serve``, ``castrig lots`` and ``filter check`` read
    them from the folder). Both catalogs (SQLite, the fleet's) bring a stale ``running`` row up to
    date from it. None if the folder cannot be read or holds another run."""
    from castrig.store.base import grades_of

    try:
        rec = SqliteRunStore(Path(run_dir).parent).open_run(run_dir)
    except (BadInput, sqlite3.Error, OSError):
        return None
    try:
        if rec.info.run_id != run_id:
            return None
        return rec.info, tuple(grades_of(rec))
    except sqlite3.Error:
        return None
    finally:
        rec.close()


#: What a run folder holds while :meth:`SqliteRunStore.create_run` makes it, before anything is recorded.
_CREATION_FILES = ("run.json", LOCK_NAME, RESERVE_NAME, "run.sqlite-shm")
_EMPTY_WHEN_NEW = ("run.sqlite", "run.sqlite-wal", "run.sqlite-journal")
#: run.json being written when its maker died (:func:`~castrig.atomic.atomic_write_json`'s temporary).
_RUN_JSON_TEMP = re.compile(r"\.run\.json\..+\.tmp")
#: The name create_run gives a run folder: ``YYYYMMDD-HHMMSS-RECIPE`` (UTC), ``-N`` added when taken.
RUN_FOLDER_NAME = re.compile(r"\d{8}-\d{6}-[A-Za-z0-9_.-]+")
#: An empty folder younger than this may be between create_run's mkdir and its lock: kept, its maker may live.
EMPTY_FOLDER_GRACE_S = 60.0
#: The reason :func:`run_damage` gives for such a folder starts so.
NEVER_STARTED = "never started"
PRUNE_HINT = "`castrig runs --prune-never-started` removes it"


class NeverStarted(DamagedRun):
    """A run folder whose making was cut short, nothing recorded (:func:`never_started`): exit 2,
    saying so and how to remove it, not "damaged"."""

    def __init__(self, run_dir: Path, reason: str):
        self.run_dir = Path(run_dir)
        self.reason = reason
        BadInput.__init__(self, f"{run_dir}: {reason}", file=str(run_dir))


def _journal_of_nothing(journal: Path) -> bool:
    """A rollback journal beside an empty (or absent) run.sqlite holds no committed record: SQLite
    reads a 0-page database as empty and deletes such a journal rather than roll it back (pager.c,
    hasHotJournal), and the one create_run leaves began on an empty database (its header's original
    size, bytes 16-19, is 0 pages). A journal of an older database (a page count there) is kept."""
    with open(journal, "rb") as fh:
        head = fh.read(20)
    return len(head) == 0 or (len(head) == 20 and int.from_bytes(head[16:20], "big") == 0)


def _db_of_nothing(db: Path) -> bool:
    """``run.sqlite`` holds no table: empty, or one page -- the header the switch to WAL writes --
    whose schema b-tree (a table leaf at byte 100) has no cell."""
    with open(db, "rb") as fh:
        page = fh.read(65537)
    if not page:
        return True
    if len(page) < 105 or page[:16] != b"SQLite format 3\x00":
        return False
    size = int.from_bytes(page[16:18], "big")
    return len(page) == (65536 if size == 1 else size) and page[100] == 13 and page[103:105] == b"\0\0"


def _castrig_made(run_dir: Path, names: set[str]) -> bool:
    """``run_dir`` is a folder create_run made: named as it names them, or its run.json names it."""
    if RUN_FOLDER_NAME.fullmatch(run_dir.name):
        return True
    if "run.json" not in names:
        return False
    try:
        return json.loads(runjson.read_text(run_dir)).get("run_id") == run_dir.name
    except (OSError, ValueError, AttributeError):
        return False


def never_started(run_dir: Path) -> str | None:
    """Why ``run_dir`` is a folder whose making was cut short (a kill -9, a power cut) with
    nothing recorded, else None: a folder named as create_run names them (or by its run.json)
    holding only what create_run writes before the first record -- the lock, run.json or its
    temporary, the disk reserve, an empty (or absent) database and a journal of nothing -- or
    nothing at all (once older than :data:`EMPTY_FOLDER_GRACE_S`). Whether its maker lives is
    the caller's to test (the lock)."""
    run_dir = Path(run_dir)
    names: dict[str, int] = {}
    try:
        for p in run_dir.iterdir():
            if p.is_symlink() or not p.is_file():
                return None
            size = p.stat().st_size
            if p.name in _CREATION_FILES or _RUN_JSON_TEMP.fullmatch(p.name):
                pass
            elif p.name in _EMPTY_WHEN_NEW and size == 0:
                pass
            elif p.name == "run.sqlite" and _db_of_nothing(p):
                pass  # the WAL header alone: the kill came before the schema
            elif p.name == "run.sqlite-journal" and _journal_of_nothing(p):
                pass
            else:
                return None
            names[p.name] = size
        if not _castrig_made(run_dir, set(names)):
            return None
        if not names and time.time() - run_dir.stat().st_mtime < EMPTY_FOLDER_GRACE_S:
            return None  # perhaps between its mkdir and its lock right now
    except OSError:
        return None
    if "run.json" not in names:
        held = ", ".join(sorted(names))
        return f"no run.json; it holds {held}" if held else "an empty folder"
    if _run_json_ended(run_dir):
        return None  # run.json records a run that ended (its database lost since): a record, never pruned
    if "run.sqlite" not in names:
        return "run.sqlite is missing"
    said = "run.sqlite is empty (0 bytes)" if names["run.sqlite"] == 0 else \
        f"run.sqlite holds no table ({names['run.sqlite']} bytes: its header alone)"
    journal = names.get("run.sqlite-journal")
    return said if journal is None else f"{said}, its run.sqlite-journal ({journal} bytes) holds nothing committed"


def _run_json_ended(run_dir: Path) -> bool:
    """Does run.json say the run ended (an outcome other than running, an end time, a resumed part)?"""
    try:
        info = json.loads(runjson.read_text(run_dir))
    except (OSError, ValueError):
        return False
    if not isinstance(info, dict):
        return False
    parts = info.get("parts")
    return (info.get("outcome") not in (None, "running") or bool(info.get("ended_utc"))
            or (isinstance(parts, list) and len(parts) > 1))


def never_started_reason(why: str) -> str:
    """What readers say of a folder that :func:`never_started` (``why``)."""
    return (f"{NEVER_STARTED} ({why}): the process died while making the folder, nothing was recorded; run the "
            f"recipe again ({PRUNE_HINT})")


def refuse_not_a_run_folder(run_dir: Path) -> None:
    """BadInput unless ``run_dir`` is a folder with a run.json or a run.sqlite (one of them may
    be damaged: said by what reads it); a folder that never started is said to be one."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir() or not (runjson.present(run_dir) or (run_dir / "run.sqlite").is_file()):
        refuse_never_started(run_dir)  # killed before it wrote run.json: say so, not "not a run folder"
        run = _a_run_in(run_dir)
        also = f"; it is a data root: give one of its run folders, e.g. {run}" if run is not None else ""
        raise BadInput(f"{run_dir}: not a run folder (needs run.json and run.sqlite){also}", file=str(run_dir))


def _a_run_in(folder: Path, look_at: int = 1000) -> Path | None:
    """A run folder among the first ``look_at`` entries of ``folder`` (None: none, or no folder)."""
    try:
        for entry in itertools.islice(folder.iterdir() if folder.is_dir() else (), look_at):
            if (entry / "run.json").is_file():
                return entry
    except OSError:
        return None
    return None


def refuse_never_started(run_dir: Path) -> None:
    """:class:`NeverStarted` if ``run_dir`` never started and nobody makes it now; :class:`Busy`
    if its maker lives (a resume of a folder being made)."""
    why = never_started(run_dir)
    if why is None:
        return
    holder = run_holder(run_dir)
    if holder is not None:
        raise Busy(f"{run_dir}: being made now (pid {holder.get('pid')}, {holder.get('purpose')}); nothing recorded yet",
                   holder=holder)
    raise NeverStarted(run_dir, never_started_reason(why))


def remove_never_started(run_dir: Path, *, purpose: str, before: Callable[[str], Any] | None = None) -> str | None:
    """Remove ``run_dir`` if it is a folder that :func:`never_started`, owning it first (:class:`Busy`
    while its maker lives: a folder being made right now looks the same) and checking again once
    nobody else can write to it; ``before(why)`` runs then, before anything goes. Why it never
    started, or None (nothing done) if it holds a record after all. OSError if it cannot be removed."""
    run_dir = Path(run_dir)
    why = never_started(run_dir)  # what it held before this owned it (an empty folder gets our lock)
    if why is None:
        return None
    claim_run(run_dir, purpose=purpose)
    try:
        if never_started(run_dir) is None:
            return None
        if before is not None:
            before(why)
        shutil.rmtree(run_dir)
    finally:
        release_run(run_dir)
    return why


def run_damage(run_dir: Path) -> str | None:
    """Why a known run folder can no longer be read (cheap checks), or None."""
    db = run_dir / "run.sqlite"
    try:
        if not db.is_file() or db.stat().st_size <= 65536:  # (a database with a record is longer than a page)
            why = never_started(run_dir)
            if why is not None:
                return never_started_reason(why)
    except OSError:
        pass  # said below
    try:
        read_run_info(run_dir)
    except DamagedRun as exc:
        return exc.reason
    try:
        if not db.is_file():
            return "run.sqlite is missing"
        if db.stat().st_size == 0:
            return "run.sqlite is empty (0 bytes)"
        with open(db, "rb") as fh:
            if fh.read(16) != b"SQLite format 3\x00":
                return "run.sqlite is not an SQLite database"
    except OSError as exc:
        return f"run.sqlite cannot be read ({exc.strerror or exc})"
    return None
