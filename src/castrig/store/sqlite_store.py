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

The SQLite connections, their checks and errors are :mod:`castrig.store.sqlite_connect`; run
folders that never started or are damaged, and the room kept for a full disk,
:mod:`castrig.store.folders`; a run's membranes read back, :mod:`castrig.store.membrane_rows`.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import socket
import sqlite3
import sys
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the listings (`castrig runs`, `lots`, `status`) need not load numpy
    import numpy as np

from castrig.atomic import atomic_write_json, fsync_dir
from castrig.errors import BadInput
from castrig.jsontext import plain
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
from castrig.store.folders import (
    NEVER_STARTED,
    NeverStarted,
    _free_reserve,
    _keep_reserve,
    never_started,
    never_started_reason,
    read_run_info,
    refuse_not_a_run_folder,
    run_damage,
)
from castrig.store.membrane_rows import _membranes, _read, decoded_rows
from castrig.store.sqlite_connect import (
    DamagedRun,
    SYNCHRONOUS,
    StoreError,
    _busy,
    _has_table,
    _write_error,
    connect,
    connect_readonly,
    connect_reader_leaving_no_sidecars,
    is_disk_full,
)


SCHEMA_VERSION = 1


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


def _little_room(folder: Path, need: int = 1 << 20) -> bool:
    try:
        st = os.statvfs(folder)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < need


#: How long a write to the data root's catalog waits for another process's transaction on it.
CATALOG_BUSY_MS = 3000
#: Rows a listing writes to the catalog in one transaction (one commit, one fsync): the first
#: ``castrig runs`` over 3 000 new run folders wrote and synced each row on its own, 56-81 s.
#: A listing killed meanwhile leaves the batches committed before; the rest are indexed next time.
CATALOG_BATCH_ROWS = 256


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
        # made_utc: the wall-clock time the image was written into the run (t_s is the run's clock,
        # virtual on the twin), a lab sorts a fleet's images by it; in the record only, so the
        # file's bytes stay what the run's clock and seed make (the twin's runs repeat)
        meta["made_utc"] = made_utc_now()
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

    def moved_to(self, run_dir: Path) -> None:
        self._lock_dir = getattr(self, "_lock_dir", self.run_dir)  # the lock is held under the path it was taken at
        super().moved_to(run_dir)

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
            release_run(getattr(self, "_lock_dir", self.run_dir))


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


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "item"


def run_folder_word(recipe_name: str) -> str:
    """What a run folder's name takes of its recipe's name (``<stamp>-<word>``): the name itself
    where its letters or digits are ASCII ones (the folder keeps those), else ``recipe`` — a
    recipe called ``膜``, ``..`` or ``🧪`` made the folder ``<stamp>-`` (the lists show the recipe's
    own name beside it)."""
    return recipe_name if re.search(r"[A-Za-z0-9]", recipe_name) else "recipe"


def utc_now_iso(epoch: float | None = None, timespec: str = "seconds") -> str:
    when = datetime.now(timezone.utc) if epoch is None else datetime.fromtimestamp(epoch, timezone.utc)
    return when.isoformat(timespec=timespec).replace("+00:00", "Z")


def made_utc_now() -> str:
    """The wall-clock time a membrane or an image is made, as ``made_utc`` keeps it: UTC ISO 8601
    always to the millisecond (``2026-12-07T10:31:02.117Z``), so the texts sort as the times do
    (on the twin a night's casts fall within one second of wall time)."""
    return utc_now_iso(timespec="milliseconds")


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
        self._index_rows([_catalog_row(recorder, grades)])

    def _index_rows(self, rows: list[tuple[Any, ...]]) -> None:
        """Catalog rows (:func:`_catalog_row`) written in one transaction, as :meth:`index_run` says."""
        if not rows:
            return
        try:
            conn = self._catalog()
        except sqlite3.DatabaseError as exc:
            if not _damaged(exc):  # (a full disk as the catalog is opened: said by the caller, no traceback)
                raise StoreError(f"cannot write {self.root / 'catalog.sqlite'}: {exc}") from exc
            _say_damaged_catalog(self.root / "catalog.sqlite", exc)
            return
        try:
            with _Tx(conn) as c:
                c.executemany("INSERT OR REPLACE INTO runs VALUES(?,?,?,?,?,?,?,?,?)", rows)
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
            conn = connect_reader_leaving_no_sidecars(path)
            try:
                rows = [tuple(r) for r in conn.execute(
                    "SELECT run_id, run_dir, recipe_name, profile_name, operator, started_utc, ended_utc, outcome, grades"
                    " FROM runs")]
            finally:
                conn.close()
        except sqlite3.Error:
            return []
        here = str(self.root.resolve())  # (strings, not Paths: 20 000 rows took 0.5 s of pathlib)
        return [r if _folder_of(r) == here or _moved_out(Path(here), Path(str(r[1])))
                else (r[0], os.path.join(here, os.path.basename(os.path.normpath(str(r[1])))), *r[2:]) for r in rows]

    def _is_copy(self, run_dir: Path, run_id: str) -> bool:
        """``run_dir`` holds a copy of run ``run_id`` whose own folder is under the root: the same run
        (started at the same time, by the same process), not another run that happens to share the id."""
        own = self.root / run_id
        if run_dir.name == run_id or not (own / "run.json").is_file():
            return False

        def identity(folder: Path) -> tuple[Any, ...] | None:
            try:
                info = runjson.load(folder)
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
        return self.newest_runs()[0]

    def newest_runs(self, keep: Callable[[RunSummary], bool] | None = None,
                    newest: int | None = None) -> tuple[list[RunSummary], int]:
        """The ``newest`` runs (all: None) that ``keep`` keeps, oldest first, as :meth:`list_runs`
        lists them, and how many runs the data root holds. Only the rows it returns are checked
        against their folders (damage, a crashed ``running``): each catalog row cost ~0.4 ms of
        such checks, 1.3 s of CPU for 3 000 runs before a single one was shown; the catalog's
        own order (start time) says which rows are newest. Folders the catalog lacks are read
        (and indexed) whatever ``newest`` says: only they can tell their start time."""
        if not self.root.is_dir():
            return [], 0
        # (a row an older build let a copy of the run take: the run's own folder is indexed again below)
        here = str(self.root.resolve())
        known = {r[0]: r for r in self._catalog_rows()
                 if os.path.basename(str(r[1])) == r[0] or _folder_of(r) != here or not self._is_copy(Path(r[1]), r[0])}
        fresh, moved = self._unindexed_runs(known)
        rows = sorted((r for r in known.values() if (r[0], r[1]) not in moved),
                      key=lambda r: (str(r[5] or ""), str(r[0])), reverse=True)  # a stale catalog row: any type
        out = [r for r in fresh if keep is None or keep(r)]
        kept = 0
        for r in rows:
            if newest is not None and kept >= newest:
                break  # (the fresh rows may be newer still: the newest of both are taken below)
            summary = self._checked_row(r) if _folder_of(r) == here else moved_out_summary(r)
            if keep is None or keep(summary):
                out.append(summary)
                kept += 1
        out.sort(key=lambda r: (str(r.started_utc or ""), str(r.run_id)))
        return (out if newest is None else out[max(0, len(out) - newest):]), len(rows) + len(fresh)

    def _checked_row(self, r: tuple[Any, ...]) -> RunSummary:
        """A catalog row as a reader shows it: ``damaged`` (with the reason) when its folder can no
        longer be read, a ``running`` row brought up to date from its folder (crashed, ended)."""
        run_dir = Path(r[1])
        damage = run_damage(run_dir) if run_dir.is_dir() else None
        if damage is not None:
            return RunSummary(*r[:7], "damaged", (), reason=damage)
        outcome, grades = live_outcome(run_dir, r[7]), tuple(g for g in (r[8] or "").split(",") if g)
        if r[7] == "running" and run_dir.is_dir():
            fresh = self._refresh_row(run_dir, r, outcome)
            if fresh is not None:
                return fresh
        return RunSummary(*r[:7], outcome, grades)

    def _unfamiliar_folders(self, indexed: set[str]) -> list[Path]:
        """The root's folders that no catalog row names (by folder, not id: a run folder renamed
        inside the root, its row moved to the new name, was listed from its row and again from
        the folder). Told by name (``indexed``: the rows' folders), without resolving each folder
        (a symlink's target is resolved)."""
        here = str(self.root.resolve())
        out = []
        try:
            with os.scandir(self.root) as entries:
                for e in entries:
                    try:
                        if not e.is_dir():
                            continue
                        where = str(Path(e.path).resolve()) if e.is_symlink() else os.path.join(here, e.name)
                    except OSError:
                        continue
                    if where not in indexed:
                        out.append(Path(e.path))
        except OSError:
            return []
        return sorted(out)

    def _unindexed_runs(self, known: dict[str, tuple[Any, ...]]) -> tuple[list[RunSummary], set[tuple[Any, Any]]]:
        """The runs of the folders no catalog row names (indexed as they are read), and the
        ``(run_id, run_dir)`` of catalog rows they replace (a run folder renamed: its row follows it)."""
        from castrig.store.base import grades_of

        here = str(self.root.resolve())
        out: list[RunSummary] = []
        moved: set[tuple[Any, Any]] = set()
        folders = self._unfamiliar_folders({os.path.normpath(str(r[1])) for r in known.values()})
        to_index: list[tuple[Any, ...]] = []  # (written CATALOG_BATCH_ROWS at a time: one commit each)

        def write_index() -> None:
            try:
                self._index_rows(to_index)
            except (StoreError, OSError, sqlite3.Error):
                pass  # a read-only or full data root: listed from the folder, indexed another time
            to_index.clear()

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
                if row is not None and (not Path(str(row[1])).is_dir() or _folder_of(row) != here):
                    # its row names a folder that is gone, or one outside the root: the run was moved
                    # here (renamed, or moved back), its row follows it
                    moved.add((row[0], row[1]))
                try:
                    grades = tuple(grades_of(rec))
                except DamagedRun as exc:  # a row of it cannot be read: listed as such, the other runs listed too
                    out.append(RunSummary(run_dir.name, str(run_dir.resolve()), i.recipe_name, i.profile_name, i.operator,
                                          i.started_utc, i.ended_utc, "damaged", (), reason=exc.reason))
                    continue
                to_index.append(_catalog_row(rec, grades))
                if len(to_index) >= CATALOG_BATCH_ROWS:
                    write_index()
                out.append(RunSummary(i.run_id, str(run_dir.resolve()), i.recipe_name, i.profile_name, i.operator,
                                      i.started_utc, i.ended_utc, live_outcome(run_dir, i.outcome), grades))
        write_index()
        return out, moved


def _folder_of(row: tuple[Any, ...]) -> str:
    """The folder holding a catalog row's run folder (a string: pathlib cost 0.5 s over 20 000 rows)."""
    return os.path.dirname(os.path.normpath(str(row[1])))


#: The outcome a catalog row shows for a run whose folder was moved out of the data root.
MOVED_OUT = "moved"


def _moved_out(root: Path, recorded: Path) -> bool:
    """A catalog row's folder is outside the data root ``root`` (resolved) because its run moved it
    there: a folder there, none of its name under the root. A row of a data root moved or copied
    since (``mv runs /archive/runs``) names a folder under the root by that name instead."""
    try:
        return recorded.parent != root and not (root / recorded.name).exists() and recorded.is_dir()
    except (OSError, ValueError):  # a path this user may not look at (EACCES), or none a file system takes
        return False


def moved_out_summary(row: tuple[Any, ...]) -> RunSummary:
    """How the lists show a run whose folder was moved out of the data root while it ran (the
    runner records the outcome where the folder went, and its catalog row follows it): what the
    row says, and where the folder is now -- never read from here (the data root does not own it;
    whoever may move a folder could have put it anywhere)."""
    where = Path(str(row[1]))
    return RunSummary(*row[:7], MOVED_OUT, tuple(g for g in (row[8] or "").split(",") if g),
                      reason=f"its folder was moved to {where}, outside this data root (recorded {row[7] or 'no outcome'}); "
                             f"not read from here: castrig status {where} reads it there, or move it back")


def _catalog_row(recorder: RunRecorder, grades: Iterable[str]) -> tuple[Any, ...]:
    """The catalog's row of a run (the ``runs`` table's columns, in order)."""
    i = recorder.info
    # a folder whose path is not UTF-8 (a data root named in Latin-1 on a NAS) as text SQLite takes:
    # its odd bytes as U+FFFD. The listing finds the folder under its root by name (_catalog_rows)
    return (i.run_id, plain(str(Path(recorder.run_dir).resolve())), i.recipe_name, i.profile_name, i.operator,
            i.started_utc, i.ended_utc, i.outcome, ",".join(grades))


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
