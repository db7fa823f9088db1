"""The fleet store: many rigs' catalog, events, samples and results in one PostgreSQL database.

Selected by ``CASTRIG_STORE=postgresql://…`` or a profile's ``store: postgresql://…`` (see
:func:`open_configured_store`). Run folders stay files — on a shared folder —, holding
``run.json``, images (referenced from the database by path and sha256), results and the log.

Why write-ahead to the run folder: every record is first committed to the run folder's
``run.sqlite`` exactly as the SQLite backend does (WAL, ``synchronous=FULL``), then pushed to
PostgreSQL keyed by ``(run_uid, local id)`` with ``ON CONFLICT DO NOTHING``. So

- a write is at least as durable as with SQLite (it *is* the SQLite write, plus a PostgreSQL
  commit with the server's default ``synchronous_commit=on``);
- a dropped connection is retried once at once, then every ``retry_interval_s`` (wall time) at
  the next write; meanwhile records wait in ``run.sqlite`` and the backlog is pushed in one
  transaction when the server is back — no sample is ever lost, none is written twice;
- ``castrig store sync RUN_DIR`` (:mod:`castrig.store.sync`) is the same push, so any run folder,
  also one recorded by the SQLite backend, can be brought into the fleet, idempotently;
- every run folder stays readable offline (report, export, resume) with the SQLite backend.

``run_uid`` (a UUID kept in ``run.sqlite``'s ``meta`` table) names a run across rigs: run ids
(``YYYYmmdd-HHMMSS-recipe``) collide between rigs, and always on the twin's virtual clock.
The samples' local id is SQLite's ``rowid``: do not ``VACUUM`` a run.sqlite that is not synced yet.

Schema (in a PostgreSQL schema, default ``castrig``):

    runs(run_uid PK, run_id, run_dir, host, recipe_name, profile_name, operator, started_utc,
         ended_utc, outcome, outcome_reason, grades, info_json JSONB)
    samples(run_uid, local_id, t_s, channel, value)                  PK (run_uid, local_id)
    events(run_uid, id, t_s, kind, source, message, data_json JSONB)  PK (run_uid, id)
    journal(run_uid, seq, t_s, step_index, state, data_json JSONB)    PK (run_uid, seq)
    images(run_uid, id, t_s, name, path, illumination, pixel_size_um, sha256, metadata_json JSONB)
    results(run_uid, id, t_s, name, path, json JSONB)
    membranes(run_uid, membrane_id, k, cast_step, support_position, simulated, status, t_start_s,
              t_end_s, process_json JSONB, metrics_json JSONB, verdict_json JSONB, grades_met,
              target_grade, target_met, lot_id, lost_reason)            PK (run_uid, membrane_id)

Membrane rows change as a membrane is made, judged or lost: every push upserts them all (a handful
per run), where the other tables are append-only and pushed past their marks.
"""

from __future__ import annotations

import json
import math
import os
import re
import socket
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from castrig.errors import BadInput, CastrigError
from castrig.logs import module_logger
from castrig.redact import redact_url, redact_urls, scrub  # the one redaction (redact_url re-exported: sync uses it from here)
from castrig.store.lock import CRASHED_REASON, live_outcome
from castrig.store.base import Event, ImageRecord, JournalEntry, MembraneRecord, RunInfo, RunRecorder, RunStore, RunSummary
from castrig.store.sqlite_store import SqliteRunRecorder, SqliteRunStore, folder_account, hand_over
from castrig.store.sqlite_connect import ValueTooLarge, connect, connect_readonly

if TYPE_CHECKING:  # psycopg is an optional extra: imported only when a fleet store is used
    import numpy as np  # names an argument's type only: `castrig runs`/`lots` need not load numpy
    import psycopg

log = module_logger("castrig.store.postgres")

DEFAULT_SCHEMA = "castrig"
#: How long a listing's row refresh waits for a lock another transaction holds (PostgreSQL units).
REFRESH_LOCK_TIMEOUT = "1s"
URL_PREFIXES = ("postgresql://", "postgres://")
T = TypeVar("T")

#: Bound every network wait, so a vanished server costs a write seconds, not minutes.
_CONNECT_KW: dict[str, Any] = {
    "connect_timeout": 3,
    "tcp_user_timeout": 5000,  # ms unacknowledged before the kernel drops the connection
    "keepalives": 1,
    "keepalives_idle": 5,
    "keepalives_interval": 2,
    "keepalives_count": 2,
    "application_name": "castrig",
    # a table another session holds (a VACUUM FULL, a long transaction, a stopped sync) fails the
    # push after 10 s, retried later, instead of waiting for it without end
    "options": "-c lock_timeout=10000",
}

_DDL = """
CREATE SCHEMA IF NOT EXISTS {s};
CREATE TABLE IF NOT EXISTS {s}.runs(
    run_uid TEXT PRIMARY KEY, run_id TEXT NOT NULL, run_dir TEXT NOT NULL, host TEXT NOT NULL,
    recipe_name TEXT, profile_name TEXT, operator TEXT, started_utc TEXT, ended_utc TEXT,
    outcome TEXT, outcome_reason TEXT, grades TEXT NOT NULL DEFAULT '', info_json JSONB NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.samples(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, local_id BIGINT NOT NULL,
    t_s DOUBLE PRECISION NOT NULL, channel TEXT NOT NULL, value DOUBLE PRECISION,
    PRIMARY KEY(run_uid, local_id));
CREATE INDEX IF NOT EXISTS samples_channel ON {s}.samples(run_uid, channel, t_s);
CREATE TABLE IF NOT EXISTS {s}.events(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, id BIGINT NOT NULL,
    t_s DOUBLE PRECISION NOT NULL, kind TEXT NOT NULL, source TEXT NOT NULL, message TEXT NOT NULL,
    data_json JSONB NOT NULL, PRIMARY KEY(run_uid, id));
CREATE TABLE IF NOT EXISTS {s}.journal(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, seq BIGINT NOT NULL,
    t_s DOUBLE PRECISION NOT NULL, step_index INTEGER NOT NULL, state TEXT NOT NULL,
    data_json JSONB NOT NULL, PRIMARY KEY(run_uid, seq));
CREATE TABLE IF NOT EXISTS {s}.images(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, id BIGINT NOT NULL,
    t_s DOUBLE PRECISION NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, illumination TEXT NOT NULL,
    pixel_size_um DOUBLE PRECISION NOT NULL, sha256 TEXT NOT NULL, metadata_json JSONB NOT NULL,
    PRIMARY KEY(run_uid, id));
CREATE TABLE IF NOT EXISTS {s}.results(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, id BIGINT NOT NULL,
    t_s DOUBLE PRECISION NOT NULL, name TEXT NOT NULL, path TEXT NOT NULL, json JSONB NOT NULL,
    PRIMARY KEY(run_uid, id));
CREATE TABLE IF NOT EXISTS {s}.membranes(
    run_uid TEXT NOT NULL REFERENCES {s}.runs ON DELETE CASCADE, membrane_id TEXT NOT NULL,
    k INTEGER NOT NULL, cast_step INTEGER NOT NULL, support_position INTEGER, simulated BOOLEAN NOT NULL,
    status TEXT NOT NULL, t_start_s DOUBLE PRECISION, t_end_s DOUBLE PRECISION, process_json JSONB NOT NULL,
    metrics_json JSONB, verdict_json JSONB, grades_met TEXT NOT NULL, target_grade TEXT, target_met BOOLEAN,
    lot_id TEXT, lost_reason TEXT, PRIMARY KEY(run_uid, membrane_id));
"""

#: Per record table: (local key, local SQL selecting (key, columns…) past a key, PostgreSQL columns
#: after run_uid, indexes of JSON columns). Local keys are the SQLite ids (samples: rowid).
_TABLES: dict[str, tuple[str, str, tuple[str, ...], tuple[int, ...]]] = {
    "samples": ("rowid", "SELECT rowid, t_s, channel, value FROM samples WHERE rowid > ? ORDER BY rowid",
                ("local_id", "t_s", "channel", "value"), ()),
    "events": ("id", "SELECT id, t_s, kind, source, message, data_json FROM events WHERE id > ? ORDER BY id",
               ("id", "t_s", "kind", "source", "message", "data_json"), (5,)),
    "journal": ("seq", "SELECT seq, t_s, step_index, state, data_json FROM journal WHERE seq > ? ORDER BY seq",
                ("seq", "t_s", "step_index", "state", "data_json"), (4,)),
    "images": ("id", "SELECT id, t_s, name, path, illumination, pixel_size_um, sha256, metadata_json FROM images"
               " WHERE id > ? ORDER BY id",
               ("id", "t_s", "name", "path", "illumination", "pixel_size_um", "sha256", "metadata_json"), (7,)),
    "results": ("id", "SELECT id, t_s, name, path, json FROM results WHERE id > ? ORDER BY id",
                ("id", "t_s", "name", "path", "json"), (4,)),
}

_RUN_COLS = ("run_id", "run_dir", "host", "recipe_name", "profile_name", "operator", "started_utc",
             "ended_utc", "outcome", "outcome_reason", "grades", "info_json")
_SUMMARY_COLS = ("run_id", "run_dir", "recipe_name", "profile_name", "operator", "started_utc", "ended_utc")


#: The tables and indexes :data:`_DDL` makes: where all are there, it is not run (its CREATE …
#: IF NOT EXISTS still waits for a lock another session holds on a table, and a run's end waited
#: 2 × lock_timeout for its catalog row behind a VACUUM FULL of the samples).
_DDL_RELATIONS = tuple(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (?:\{s\}\.)?(\w+)", _DDL))


def _has_every_table(conn: "psycopg.Connection", schema: str) -> bool:
    sql = "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = ANY(%s)"
    row = conn.execute(sql, (schema, list(_DDL_RELATIONS))).fetchone()  # type: ignore[arg-type]
    return bool(row) and int(row[0]) == len(_DDL_RELATIONS)


class FleetStoreError(CastrigError):
    """The fleet database cannot be reached (or refused the push)."""


def is_postgres_url(value: object) -> bool:
    return isinstance(value, str) and value.startswith(URL_PREFIXES)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BadInput("the PostgreSQL store needs psycopg: pip install 'castrig[postgres]'", field="CASTRIG_STORE") from exc
    return psycopg


def _check_schema(schema: str) -> str:
    allowed = "allowed: 1 to 63 lower-case letters, digits and _, not starting with a digit or pg_, not information_schema"
    if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", schema):
        raise BadInput(f"CASTRIG_STORE_SCHEMA {schema!r}: not a schema name castrig uses ({allowed})", field="CASTRIG_STORE_SCHEMA")
    if schema.startswith("pg_") or schema == "information_schema":
        # PostgreSQL's own: creating tables there fails, which was reported as "unreachable" (exit 3)
        raise BadInput(f"CASTRIG_STORE_SCHEMA {schema!r}: reserved by PostgreSQL for its own catalogs ({allowed})",
                       field="CASTRIG_STORE_SCHEMA")
    return schema




# -- the connection ---------------------------------------------------------------------------------
class Fleet:
    """One connection to the fleet database that notices when it drops and comes back later.

    ``attempt(fn)`` runs ``fn(conn)`` in one transaction; on a connection error it reconnects and
    tries once more at once, then gives up until ``retry_interval_s`` of wall time have passed
    (the run goes on meanwhile; its records wait in the run folder).
    """

    def __init__(self, url: str, schema: str = DEFAULT_SCHEMA, *, retry_interval_s: float = 2.0):
        self.url = url
        self.schema = _check_schema(schema)
        self.retry_interval_s = retry_interval_s
        self._pg = _psycopg()
        self._conn: psycopg.Connection | None = None
        self._down_until = 0.0
        self._ddl_done = False
        self.last_error: str | None = None
        self.refused = False  # the last error was a value the database refused, not an outage

    def _state(self) -> str:
        return "refused the records" if self.refused else "unreachable"

    @property
    def online(self) -> bool:
        return self._conn is not None and not self._conn.closed

    def _connect(self) -> "psycopg.Connection":
        conn = self._pg.connect(self.url, autocommit=True, **_CONNECT_KW)
        if not self._ddl_done and _has_every_table(conn, self.schema):
            self._ddl_done = True
        if not self._ddl_done:
            with conn.transaction():
                # one rig at a time creates the tables (CREATE … IF NOT EXISTS races otherwise)
                conn.execute("SELECT pg_advisory_xact_lock(hashtext('castrig-ddl'))")
                conn.execute(_DDL.format(s=self.schema))  # type: ignore[arg-type]
            self._ddl_done = True
        return conn

    def attempt(self, fn: Callable[["psycopg.Connection"], T], *, force: bool = False) -> tuple[bool, T | None]:
        """(True, result) if ``fn`` committed; (False, None) if the database is unreachable."""
        if self._conn is None and not force and time.monotonic() < self._down_until:
            return False, None
        for attempt in (1, 2):
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = self._connect()
                with self._conn.transaction():
                    result = fn(self._conn)
                self.last_error = None
                self._down_until = 0.0
                return True, result
            except self._pg.Error as exc:
                self._drop()
                self.last_error = scrub(f"{type(exc).__name__}: {exc}".strip(), self.url)
                # a value it will not take is not an outage: said as what it is
                self.refused = isinstance(exc, (self._pg.DataError, self._pg.IntegrityError))
                log.warning(f"fleet database {self._state()}", url=redact_url(self.url), attempt=attempt, error=self.last_error)
            except BaseException:  # an interrupt mid-protocol leaves the connection unusable
                self._drop()
                raise
        self._down_until = time.monotonic() + self.retry_interval_s
        return False, None

    def require(self, fn: Callable[["psycopg.Connection"], T]) -> T:
        """Like :meth:`attempt` but raise if the database cannot be reached (sync, listing)."""
        ok, result = self.attempt(fn, force=True)
        if not ok:
            raise FleetStoreError(f"fleet database {redact_url(self.url)} {self._state()}: {self.last_error}")
        return result  # type: ignore[return-value]

    def _drop(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # noqa: BLE001 - already broken
                pass
        self._conn = None

    def close(self) -> None:
        self._drop()


# -- pushing one run folder's records --------------------------------------------------------------
def run_uid_of(db: sqlite3.Connection) -> str:
    """The run's fleet-wide id, created once and kept in ``run.sqlite``'s meta table."""
    db.execute("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT)")
    db.execute("INSERT OR IGNORE INTO meta VALUES('run_uid', ?)", (uuid.uuid4().hex,))
    return str(db.execute("SELECT value FROM meta WHERE key='run_uid'").fetchone()[0])


def _run_row(info: RunInfo, run_dir: Path, grades: Iterable[str] | None) -> dict[str, Any]:
    """The catalog row of a run, as PostgreSQL takes it (:func:`pg_text`, :func:`pg_json`)."""
    row = {
        "run_id": info.run_id, "run_dir": str(Path(run_dir).resolve()), "host": socket.gethostname(),
        "recipe_name": info.recipe_name, "profile_name": info.profile_name, "operator": info.operator,
        "started_utc": info.started_utc, "ended_utc": info.ended_utc, "outcome": info.outcome,
        "outcome_reason": info.outcome_reason, "grades": None if grades is None else ",".join(grades),
        "info_json": json.dumps(redact_urls(info.to_dict()), sort_keys=True, default=str),  # no passwords, also from older runs
    }
    return {c: pg_json(v) if c == "info_json" else pg_text(v) for c, v in row.items()}


def pg_text(value: Any) -> Any:
    """A text PostgreSQL takes: a NUL character (which it refuses in any text) as U+FFFD."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def pg_json(text: Any) -> Any:
    """A JSON text PostgreSQL's jsonb takes: NaN and ±Infinity (which Python's json writes and
    jsonb refuses) as null, NUL characters as U+FFFD; text that is no JSON at all is kept as a
    string under ``unreadable_json``. One such value in a run (a NaN metric, an operator's name
    with a NUL) failed every push of the whole run, for good, as "unreachable"."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return json.dumps({"unreadable_json": pg_text(str(text))[:10_000]})

    def clean(v: Any) -> Any:
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, str):
            return pg_text(v)
        if isinstance(v, dict):
            return {pg_text(str(k)): clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(value), allow_nan=False)


def _pg_row(row: Iterable[Any], json_cols: Iterable[int]) -> list[Any]:
    """A local row as PostgreSQL takes it (:func:`pg_text`, :func:`pg_json` on ``json_cols``)."""
    js = set(json_cols)
    return [pg_json(v) if i in js else pg_text(v) for i, v in enumerate(row)]


def upsert_run(conn: "psycopg.Connection", schema: str, run_uid: str, row: Mapping[str, Any]) -> int:
    """Insert or update the catalog row; 1 if anything changed, 0 if it was already so.

    ``grades`` None keeps what the catalog has (a push does not know them; ``index_run`` does).
    """
    cols = [c for c in _RUN_COLS if not (c == "grades" and row.get(c) is None)]
    placeholders = ", ".join("%s::jsonb" if c == "info_json" else "%s" for c in cols)
    sql = (
        f"INSERT INTO {schema}.runs AS r(run_uid, {', '.join(cols)}) VALUES(%s, {placeholders})"
        f" ON CONFLICT (run_uid) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in cols)}"
        f" WHERE ({', '.join('r.' + c for c in cols)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in cols)})"
    )
    return conn.execute(sql, [run_uid, *(row[c] for c in cols)]).rowcount  # type: ignore[arg-type]


def current_run(conn: "psycopg.Connection", schema: str, run_uid: str) -> dict[str, Any] | None:
    """The catalog row of ``run_uid`` as the database holds it now (None: no row yet)."""
    row = conn.execute(f"SELECT {', '.join(_RUN_COLS)} FROM {schema}.runs WHERE run_uid = %s",  # type: ignore[arg-type]
                       (run_uid,)).fetchone()
    return None if row is None else dict(zip(_RUN_COLS, row))


def _same_row(old: Mapping[str, Any], new: Mapping[str, Any]) -> bool:
    def norm(c: str, v: Any) -> Any:
        return json.loads(v) if c == "info_json" and isinstance(v, str) else v

    return all(norm(c, old.get(c)) == norm(c, new.get(c)) for c in _RUN_COLS if not (c == "grades" and new.get(c) is None))


def update_run_if(conn: "psycopg.Connection", schema: str, run_uid: str, old: Mapping[str, Any],
                  new: Mapping[str, Any]) -> int:
    """Compare-and-set: write ``new`` over the catalog row only if it is still ``old`` (1 if so).

    Why: a reader (``castrig runs``, ``store sync``) writes what it read from the run folder;
    the run's owner (a ``castrig resume`` that ended meanwhile) may have written a newer row since,
    which the reader's older account must not replace. The owner writes unconditionally."""
    cols = [c for c in _RUN_COLS if not (c == "grades" and new.get(c) is None)]

    def ph(c: str) -> str:
        return "%s::jsonb" if c == "info_json" else "%s"

    def js(c: str, v: Any) -> Any:
        return json.dumps(v) if c == "info_json" and not isinstance(v, str) else v

    sql = (f"UPDATE {schema}.runs AS r SET {', '.join(f'{c} = {ph(c)}' for c in cols)} WHERE r.run_uid = %s"
           f" AND ({', '.join('r.' + c for c in _RUN_COLS)}) IS NOT DISTINCT FROM ({', '.join(ph(c) for c in _RUN_COLS)})")
    args = [js(c, new[c]) for c in cols] + [run_uid] + [js(c, old[c]) for c in _RUN_COLS]
    return conn.execute(sql, args).rowcount  # type: ignore[arg-type]


def folder_uid(run_dir: Path) -> str | None:
    """The fleet-wide id kept in a run folder's ``run.sqlite`` (read-only; None if it has none)."""
    try:
        db = connect_readonly(Path(run_dir) / "run.sqlite")
        try:
            row = db.execute("SELECT value FROM meta WHERE key='run_uid'").fetchone()
        finally:
            db.close()
    except sqlite3.Error:
        return None
    return None if row is None else str(row[0])


def folder_row(run_dir: Path, run_id: str) -> tuple[dict[str, Any], str] | None:
    """The catalog row run folder ``run_dir`` gives now (:func:`folder_account`) and the outcome a
    reader shows (:func:`live_outcome`). A run whose owner is gone while run.json still says
    ``running`` is written ``crashed``: a rig that cannot see the folder's lock reads the row as
    it is, so it must not say ``running`` for good. Only the host that ran it judges that (an OS
    lock taken on another host, over a shared folder, may not show here). None if the folder
    cannot be read."""
    account = folder_account(run_dir, run_id)
    if account is None:
        return None
    info, grades = account
    row = _run_row(info, run_dir, grades)
    shown = live_outcome(run_dir, info.outcome)
    if shown == "crashed" and info.host in (None, "", socket.gethostname()):
        row.update(outcome="crashed", outcome_reason=CRASHED_REASON)
    return row, shown


def sync_run_row(conn: "psycopg.Connection", schema: str, run_uid: str, run_dir: Path, run_id: str) -> bool:
    """Write the catalog row from the run folder (``store sync``); True if it changed. The row is
    read before the folder and written only if still so (:func:`update_run_if`): a newer row
    written meanwhile by the run's owner is read again, with the folder, and kept if it is so."""
    for _ in range(5):
        old = current_run(conn, schema, run_uid)
        got = folder_row(run_dir, run_id)
        if got is None:
            raise FleetStoreError(f"{run_dir}: the run folder cannot be read any more")
        new = got[0]
        if old is None:
            cols = ", ".join(_RUN_COLS)
            ph = ", ".join("%s::jsonb" if c == "info_json" else "%s" for c in _RUN_COLS)
            sql = f"INSERT INTO {schema}.runs(run_uid, {cols}) VALUES(%s, {ph}) ON CONFLICT (run_uid) DO NOTHING"
            if conn.execute(sql, [run_uid, *(new[c] for c in _RUN_COLS)]).rowcount:  # type: ignore[arg-type]
                return True
            continue  # someone wrote it first: compare with theirs
        if _same_row(old, new):
            return False
        if update_run_if(conn, schema, run_uid, old, new):
            return True
    raise FleetStoreError(f"{run_dir}: its catalog row kept changing while it was synced; sync again")


def pushed_marks(conn: "psycopg.Connection", schema: str, run_uid: str) -> dict[str, int]:
    """Highest local id of each table already in the database (every push is a prefix)."""
    marks = {}
    for table, (_, _, cols, _) in _TABLES.items():
        sql = f"SELECT coalesce(max({cols[0]}), 0) FROM {schema}.{table} WHERE run_uid = %s"
        row = conn.execute(sql, (run_uid,)).fetchone()  # type: ignore[arg-type]
        marks[table] = int(row[0]) if row else 0
    return marks


PUSH_BATCH = 20_000  # local rows read and sent at a time


def push_records(conn: "psycopg.Connection", schema: str, run_uid: str, local: sqlite3.Connection,
                 marks: Mapping[str, int], *, membranes: bool = True) -> tuple[dict[str, int], dict[str, int]]:
    """Copy the local rows past ``marks`` into the database, inside the caller's transaction;
    ``membranes``: and upsert every membrane row (a live run's recorder: only when one changed).

    Returns (the marks after it, rows newly inserted per table). Idempotent: rows are keyed by
    (run_uid, local id) and conflicts are ignored, so a push repeated after an ambiguous commit
    (connection lost while committing) writes nothing twice.
    """
    new_marks, inserted = dict(marks), {}
    for table, (_, select, cols, json_cols) in _TABLES.items():
        inserted[table] = 0
        ph = ", ".join("%s::jsonb" if i in json_cols else "%s" for i in range(len(cols)))
        sql = f"INSERT INTO {schema}.{table}(run_uid, {', '.join(cols)}) VALUES(%s, {ph}) ON CONFLICT DO NOTHING"
        try:
            rows_in = local.execute(select, (marks.get(table, 0),))
            # in batches: a night's 550 000 samples were all held at once (246 MB, in the rig's process
            # too when it caught up after an outage)
            while rows := rows_in.fetchmany(PUSH_BATCH):
                with conn.cursor() as cur:
                    cur.executemany(sql, [(run_uid, *_pg_row(r, json_cols)) for r in rows])  # type: ignore[arg-type]
                    inserted[table] += max(cur.rowcount, 0)
                new_marks[table] = int(rows[-1][0])
        except sqlite3.DataError:  # a bounded reader's refusal (sqlite_connect.bounded_reader), said with the table
            raise ValueTooLarge(table) from None
    try:
        inserted["membranes"] = push_membranes(conn, schema, run_uid, local) if membranes else 0
    except sqlite3.DataError:
        raise ValueTooLarge("membranes") from None
    return new_marks, inserted


_MEMBRANE_COLS = ("membrane_id", "k", "cast_step", "support_position", "simulated", "status", "t_start_s", "t_end_s",
                  "process_json", "metrics_json", "verdict_json", "grades_met", "target_grade", "target_met", "lot_id",
                  "lost_reason")


def push_membranes(conn: "psycopg.Connection", schema: str, run_uid: str, local: sqlite3.Connection) -> int:
    """Upsert every local membrane row; returns how many rows changed (0 when already so)."""
    try:
        rows = local.execute(f"SELECT {', '.join(_MEMBRANE_COLS)} FROM membranes ORDER BY k").fetchall()
    except sqlite3.OperationalError:  # a run folder from before membranes
        return 0
    if not rows:
        return 0
    jsonb = {"process_json", "metrics_json", "verdict_json"}
    ph = ", ".join("%s::jsonb" if c in jsonb else "%s" for c in _MEMBRANE_COLS)
    upd = [c for c in _MEMBRANE_COLS if c != "membrane_id"]
    sql = (f"INSERT INTO {schema}.membranes AS m(run_uid, {', '.join(_MEMBRANE_COLS)}) VALUES(%s, {ph})"
           f" ON CONFLICT (run_uid, membrane_id) DO UPDATE SET {', '.join(f'{c} = EXCLUDED.{c}' for c in upd)}"
           f" WHERE ({', '.join('m.' + c for c in upd)}) IS DISTINCT FROM ({', '.join('EXCLUDED.' + c for c in upd)})")
    changed = 0
    with conn.cursor() as cur:
        for r in rows:
            r = _pg_row(r, [i for i, c in enumerate(_MEMBRANE_COLS) if c in jsonb])
            r[4] = bool(r[4])
            r[13] = None if r[13] is None else bool(r[13])
            cur.execute(sql, [run_uid, *r])  # type: ignore[arg-type]
            changed += max(cur.rowcount, 0)
    return changed


def push_folder_records(conn: "psycopg.Connection", schema: str, run_uid: str, local: sqlite3.Connection) -> dict[str, int]:
    """Every record of a run folder's ``run.sqlite`` that the database lacks, pushed in the
    caller's transaction (``castrig store sync``, the fleet listing's refresh); rows newly
    inserted per table. FleetStoreError if the folder grew meanwhile (its run is live: sync later)."""
    marks, inserted = push_records(conn, schema, run_uid, local, pushed_marks(conn, schema, run_uid))
    if local_backlog(local, marks):  # pragma: no cover - the run grew while we pushed
        raise FleetStoreError("run changed during sync")
    return inserted


def fleet_store_record(url: str, schema: str) -> dict[str, str]:
    """What run.json keeps of the fleet store a run pushes to (``extra.fleet_store``): the URL
    without its password, and the schema. A resume without that store says so (or takes the
    operator's profile's, where it is the same URL with its password)."""
    return {"url": redact_url(url), "schema": schema}


def recorded_fleet_store(info: RunInfo) -> dict[str, str] | None:
    """The fleet store run ``info`` pushed to (``extra.fleet_store``; for a run recorded before
    that, the profile's ``store:``), or None for a run of the SQLite backend."""
    got = (info.extra or {}).get("fleet_store")
    if isinstance(got, dict) and is_postgres_url(got.get("url")):
        return {"url": str(got["url"]), "schema": str(got.get("schema") or DEFAULT_SCHEMA)}
    store = (info.profile or {}).get("store")
    return {"url": redact_url(store), "schema": DEFAULT_SCHEMA} if is_postgres_url(store) else None


def local_backlog(local: sqlite3.Connection, marks: Mapping[str, int]) -> int:
    """Local records past ``marks`` (not in the database yet)."""
    n = 0
    for table, (key, _, _, _) in _TABLES.items():
        n += int(local.execute(f"SELECT count(*) FROM {table} WHERE {key} > ?", (marks.get(table, 0),)).fetchone()[0])
    return n


# -- the backend ------------------------------------------------------------------------------------
class PostgresRunRecorder(RunRecorder):
    """Writes a run to its folder's ``run.sqlite`` (durable when the call returns), and a pusher
    thread copies the records to PostgreSQL.

    Why a thread: on a real rig the clock is the wall clock, and a database that has vanished
    without a reset costs seconds of connect timeout; the control loop must not wait for it.
    Nor on one that holds a lock or hangs: the runner's thread shares no lock with the network
    (the push lock is the pusher's; a change of the run row only bumps a counter) and reads the
    run folder, never the database. Before, a table lock held for 27 s by another session (a
    VACUUM FULL, a long transaction) stopped the wall-clock runner as long: the pumps' safe-mode
    watchdog tripped and the membrane was lost; a frozen server stopped the run for good.
    """

    #: How long the end of a run waits for the last push; the rest waits for ``castrig store sync``.
    CLOSE_WAIT_S = 15.0

    def __init__(self, local: SqliteRunRecorder, fleet: Fleet):
        self._local = local
        self.run_dir = local.run_dir
        self.info = local.info
        self._fleet = fleet
        # a second connection to the local records, used under ``_lock`` by whichever thread pushes
        self._db = sqlite3.connect(self.run_dir / "run.sqlite", timeout=10.0, check_same_thread=False,
                                   isolation_level=None)
        self.run_uid = run_uid_of(self._db)
        self._lock = threading.RLock()  # the push's (network I/O under it): never taken by the runner
        self._marks: dict[str, int] | None = None  # unknown until the database is reached
        self._run_changes = 1  # changes of the run row (info, membranes, outcome) made ...
        self._run_pushed = 0   # ... and the count the database holds
        self._wake = threading.Event()
        self._stopping = False
        self._thread = threading.Thread(target=self._pusher, name=f"castrig-push-{self.info.run_id}", daemon=True)
        self._thread.start()
        self._wake.set()

    # -- pushing ---------------------------------------------------------------------------------
    def _pusher(self) -> None:
        while True:
            self._wake.wait(timeout=self._fleet.retry_interval_s)
            self._wake.clear()
            last = self._stopping
            try:
                self.push(force=last)
            except Exception as exc:  # noqa: BLE001 - the pusher must outlive any surprise
                log.error("fleet push failed", error=f"{type(exc).__name__}: {exc}")
            if last:
                return

    def push(self, *, force: bool = False) -> bool:
        """Push the run row and every record not in the database yet; False if unreachable."""
        schema = self._fleet.schema
        with self._lock:
            out: dict[str, dict[str, int]] = {}
            changes = self._run_changes  # (a change made while this push runs is pushed next time)

            def tx(conn: "psycopg.Connection") -> None:
                marks = self._marks if self._marks is not None else pushed_marks(conn, schema, self.run_uid)
                changed = changes != self._run_pushed
                if changed:
                    upsert_run(conn, schema, self.run_uid, _run_row(self.info, self.run_dir, None))
                # the membranes with the run row, when one of them changed (save_membrane): upserted
                # with every sample's push, a 20-cast night's every judged verdict (~20 kB each)
                # went to the database once a second
                out["marks"], _ = push_records(conn, schema, self.run_uid, self._db, marks, membranes=changed)

            ok, _ = self._fleet.attempt(tx, force=force)
            if ok:
                self._marks, self._run_pushed = out["marks"], changes
            else:
                self._marks = None  # ask the database again after reconnecting
            return ok

    @property
    def _run_dirty(self) -> bool:
        return self._run_changes != self._run_pushed

    @property
    def pending(self) -> int | None:
        """Records not in the database yet (None: not known, the database was not reached)."""
        with self._lock:
            return None if self._marks is None else local_backlog(self._db, self._marks) + int(self._run_dirty)

    def flush(self) -> bool:
        """Push now, in the calling thread; True when the database holds every record of the run.
        (Not for the runner's thread: it waits on the network. ``castrig store sync`` and tests.)"""
        with self._lock:
            return self.push(force=True) and self.pending == 0

    def _written(self) -> None:
        self._wake.set()

    def _run_changed(self) -> None:
        self._run_changes += 1  # (the runner's thread alone changes it: no lock)
        self._wake.set()

    # -- writing: the run folder first (durable), then the database --------------------------------
    def add_samples(self, t_s: float, values: Mapping[str, float]) -> None:
        self._local.add_samples(t_s, values)
        self._written()

    def add_event(self, t_s: float, kind: str, source: str, message: str, data: Mapping[str, Any] | None = None) -> None:
        self._local.add_event(t_s, kind, source, message, data)
        self._written()

    def add_journal(self, t_s: float, step_index: int, state: str, data: Mapping[str, Any] | None = None) -> int:
        seq = self._local.add_journal(t_s, step_index, state, data)
        self._written()
        return seq

    def save_image(self, t_s: float, name: str, image: np.ndarray, *, pixel_size_um: float, illumination: str,
                   metadata: Mapping[str, Any] | None = None) -> Path:
        path = self._local.save_image(t_s, name, image, pixel_size_um=pixel_size_um, illumination=illumination,
                                      metadata=metadata)
        self._written()
        return path

    def save_result(self, t_s: float, name: str, result: Mapping[str, Any]) -> Path:
        path = self._local.save_result(t_s, name, result)
        self._written()
        return path

    def save_membrane(self, membrane: MembraneRecord) -> None:
        self._local.save_membrane(membrane)
        self._run_changed()  # pushed with the run row: membranes are upserted, not appended

    def membranes(self) -> list[MembraneRecord]:
        return self._local.membranes()

    def update_info(self, **changes: Any) -> None:
        self._local.update_info(**changes)
        self._run_changed()

    def finish(self, outcome: str, reason: str | None = None) -> None:
        self._local.finish(outcome, reason)
        self._run_changed()

    # -- reading: the run folder (the record; the database holds a copy) ----------------------------
    # Never the database: a read there waited on it (a flush first) in the runner's thread, and a
    # resume of a run folder read the records of a copy of it that had been synced since.
    def samples(self, channel: str | None = None) -> list[tuple[float, str, float]]:
        return self._local.samples(channel)

    def events(self, kind: str | None = None) -> list[Event]:
        return self._local.events(kind)

    def journal(self) -> list[JournalEntry]:
        return self._local.journal()

    def images(self) -> list[ImageRecord]:
        return self._local.images()

    def results(self) -> dict[str, dict[str, Any]]:
        return self._local.results()

    def last_sample_t_s(self) -> float | None:
        return self._local.last_sample_t_s()

    def close(self) -> None:
        """Stop the pusher after one last push, waiting for it at most :attr:`CLOSE_WAIT_S`; what
        is still missing waits for ``castrig store sync``.

        The last push runs in the pusher's thread, not here: with the database hung the run's
        process hung at its end, the outcome unrecorded, deaf to SIGTERM. Idempotent, as the
        SQLite recorder's is: the run's session closes its record when the run ends and again on
        its way out."""
        if self._stopping:
            return
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout=self.CLOSE_WAIT_S)
        hung = self._thread.is_alive()
        done = not hung and self._marks is not None and not self._run_dirty and local_backlog(self._db, self._marks) == 0
        if not done:
            log.warning("run not fully in the fleet database; run `castrig store sync`",
                        run_dir=str(self.run_dir), error=self._fleet.last_error or ("no answer" if hung else None))
        if not hung:  # (a pusher still waiting on the network keeps its connections; the process ends it)
            self._fleet.close()
            self._db.close()
        self._local.close()


class PostgresRunStore(RunStore):
    """Run folders under ``root`` (a shared folder); catalog and records in PostgreSQL.

    The local ``root/catalog.sqlite`` is kept too, so ``castrig runs`` still works offline.
    """

    def __init__(self, root: Path, url: str, *, schema: str = DEFAULT_SCHEMA, retry_interval_s: float = 2.0,
                 synchronous: str = "FULL"):
        if not is_postgres_url(url):
            raise BadInput(f"not a PostgreSQL URL: {redact_url(url)}", field="CASTRIG_STORE")
        self.root = Path(root)
        self.url = url
        self.schema = _check_schema(schema)
        self.retry_interval_s = retry_interval_s
        self._local = SqliteRunStore(self.root, synchronous=synchronous)  # the run folder's durability
        self._fleet = Fleet(url, schema, retry_interval_s=retry_interval_s)

    def _recorder(self, local: SqliteRunRecorder) -> PostgresRunRecorder:
        # each run its own connection: a recorder lives as long as its run
        return PostgresRunRecorder(local, Fleet(self.url, self.schema, retry_interval_s=self.retry_interval_s))

    def create_run(self, info: RunInfo) -> PostgresRunRecorder:
        # run.json says where its records go: a resume in a shell without CASTRIG_STORE must know
        info.extra = {**(info.extra or {}), "fleet_store": self.fleet_record()}
        return self._recorder(self._local.create_run(info))

    def fleet_record(self) -> dict[str, str]:
        return fleet_store_record(self.url, self.schema)

    def open_run(self, run_dir: Path) -> PostgresRunRecorder:
        return self._recorder(self._local.open_run(run_dir))

    def index_run(self, recorder: RunRecorder, grades: Iterable[str] = ()) -> None:
        grades = list(grades)
        self._local.index_run(recorder, grades)
        uid = getattr(recorder, "run_uid", None)
        if uid is None:
            db = connect(Path(recorder.run_dir) / "run.sqlite")
            try:
                uid = run_uid_of(db)
            finally:
                hand_over(db)
                db.close()
        row = _run_row(recorder.info, recorder.run_dir, grades)
        ok, _ = self._fleet.attempt(lambda c: upsert_run(c, self.schema, uid, row), force=True)
        if not ok:
            log.warning("catalog row not in the fleet database yet", run_dir=str(recorder.run_dir))

    def list_runs(self) -> list[RunSummary]:
        """Every rig's runs from the fleet catalog (the local catalog if the database is down).

        A row that says ``running`` (or ``crashed``) whose run folder this machine sees is brought
        up to date from the folder as the SQLite catalog's is: its grades so far, and once no
        process owns the folder, its ending (``crashed`` while run.json says running) written
        back, compare-and-set (:func:`update_run_if`), for the rigs that cannot see the folder."""
        sql = f"SELECT run_uid, {', '.join(_RUN_COLS)} FROM {self.schema}.runs ORDER BY started_utc, run_id"
        ok, rows = self._fleet.attempt(lambda c: c.execute(sql).fetchall(), force=True)  # type: ignore[arg-type]
        if not ok or rows is None:
            log.warning("fleet database unreachable: listing this data root only", error=self._fleet.last_error)
            return self._local.list_runs()
        out = []
        for r in rows:
            uid, row = r[0], dict(zip(_RUN_COLS, r[1:]))
            fresh = self._refresh_row(uid, row) if row["outcome"] in ("running", "crashed") else None
            if fresh is not None:
                out.append(fresh)
                continue
            out.append(RunSummary(*(row[c] for c in _SUMMARY_COLS), live_outcome(Path(row["run_dir"]), row["outcome"]),
                                  tuple(g for g in (row["grades"] or "").split(",") if g)))
        return out

    def _refresh_row(self, run_uid: str, row: dict[str, Any]) -> RunSummary | None:
        """``row`` as its run folder gives it now (:func:`folder_row`), written back when the run is
        no longer live and the row differs; None if this machine cannot read that run's folder."""
        run_dir = Path(row["run_dir"])
        if not run_dir.is_dir() or folder_uid(run_dir) != run_uid:  # another rig's folder, or another run there
            return None
        got = folder_row(run_dir, row["run_id"])
        if got is None:
            return None
        new, shown = got
        new.update(run_dir=row["run_dir"], host=row["host"])  # a reader's path to it is not the run's
        if shown != "running" and not _same_row(row, new):
            try:
                ok, _ = self._fleet.attempt(lambda c: self._write_refreshed(c, run_uid, run_dir, row, new), force=True)
            except (FleetStoreError, sqlite3.Error) as exc:  # the folder changed or cannot be read now
                ok, self._fleet.last_error = False, f"{type(exc).__name__}: {exc}"
            if not ok:  # the row stays as it was: it never says ended over records the fleet lacks
                log.warning("catalog row not brought up to date; run `castrig store sync RUN_DIR`",
                            run_dir=str(run_dir), error=self._fleet.last_error)
        return RunSummary(*(new[c] for c in _SUMMARY_COLS), shown, tuple(g for g in (new["grades"] or "").split(",") if g))

    def _write_refreshed(self, conn: "psycopg.Connection", run_uid: str, run_dir: Path, old: dict[str, Any],
                         new: dict[str, Any]) -> None:
        """Write ``new`` over ``old`` with the records the fleet lacks, in one transaction: a run
        resumed without the fleet store (its later part only in the folder) would otherwise be
        listed ended, with grades, over the crashed part's records only. A listing does not wait
        on another writer of the same rows (a `castrig store sync`, another rig's listing): past
        :data:`REFRESH_LOCK_TIMEOUT` the row is left as read (and the listing names `store sync`)."""
        conn.execute(f"SET LOCAL lock_timeout = '{REFRESH_LOCK_TIMEOUT}'")
        db = connect_readonly(run_dir / "run.sqlite")
        try:
            inserted = push_folder_records(conn, self.schema, run_uid, db)
        finally:
            db.close()
        if any(inserted.values()):  # said on stderr: the listing on stdout stays a table
            rows = ", ".join(f"{n} {t}" for t, n in inserted.items() if n)
            print(f"{run_dir}: the fleet lacked records of this run (resumed without the fleet store?): pushed {rows} "
                  "from its folder", file=sys.stderr)
        update_run_if(conn, self.schema, run_uid, old, new)

    def close(self) -> None:
        self._fleet.close()


def open_configured_store(root: str | Path | None = None, url: str | None = None, *,
                          synchronous: str = "FULL") -> RunStore:
    """The store selected by ``url``, else ``$CASTRIG_STORE``: PostgreSQL for a ``postgresql://``
    URL, else SQLite. ``root`` may itself be such a URL (a profile's ``store:``); the run folders
    then go under ``$CASTRIG_DATA`` or ``./runs``.
    """
    from castrig.store import data_root

    if is_postgres_url(root):
        url, root = str(root), None
    url = url or os.environ.get("CASTRIG_STORE") or None
    if url and is_postgres_url(url):
        return PostgresRunStore(data_root(root), url, schema=os.environ.get("CASTRIG_STORE_SCHEMA", DEFAULT_SCHEMA),
                                synchronous=synchronous)
    if url:
        raise BadInput(f"CASTRIG_STORE={redact_url(url)}: expected a postgresql:// URL (or unset it for SQLite)",
                       field="CASTRIG_STORE")
    return SqliteRunStore(data_root(root), synchronous=synchronous)
