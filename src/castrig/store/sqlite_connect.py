"""Connections to a run folder's SQLite file, and what can go wrong with them (part of the run
store, :mod:`castrig.store.sqlite_store`).

A writer's connection is in WAL mode with the synchronous level the profile asks for
(:func:`connect`); a reader's is read-only, reads text leniently and refuses values larger than
castrig ever writes (:func:`connect_readonly`, :func:`bounded_reader`), and neither opens a
``-journal``/``-wal``/``-shm`` beside the file that is no regular file (:func:`sidecar_problem`:
SQLite opens them by name, and a named pipe there hung every reader). A full disk is told from
other write errors (:func:`is_disk_full`); :func:`writable_now` says whether a reader holds the
file before a resume or a sync takes it over.
"""

from __future__ import annotations

import os
import socket
import sqlite3
import stat
import time
from collections.abc import Callable
from pathlib import Path

from castrig.errors import BadInput, Busy, CastrigError


SYNCHRONOUS = "FULL"


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
    why = not_a_file(os.path.realpath(path)) or sidecar_problem(os.path.realpath(path))  # (a named pipe catalog.sqlite-journal stopped `castrig run` at its start)
    if why is not None:
        raise StoreError(f"{Path(path).parent}: {why}; move it aside (SQLite keeps only regular files there)")
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
    ``a?b`` cut the URI short there, and every reader found no database (status showed nothing).
    sqlite3.OperationalError if a file SQLite opens beside it is no regular file (:func:`sidecar_problem`)."""
    real = Path(path).resolve()
    why = sidecar_problem(real)
    if why is not None:
        raise sqlite3.OperationalError(f"{real.parent}: {why}")
    return real.as_uri()


#: The files SQLite opens beside a database by name: its rollback journal, its WAL and the WAL's index.
SIDECARS = ("-journal", "-wal", "-shm")


def sidecar_problem(db_path: str | Path) -> str | None:
    """Why SQLite must not open the database ``db_path`` (resolved), or None: a file it opens beside
    it (:data:`SIDECARS`) is a symbolic link or no regular file. A named pipe ``run.sqlite-journal`` (whoever may write
    the data root can make one) was opened by every reader, which then waited for a writer for ever:
    the served runs list, ``castrig runs`` and ``castrig report`` hung, and each request held a
    server thread until none was left."""
    for suffix in SIDECARS:
        side = Path(f"{db_path}{suffix}")
        if os.path.islink(side):
            # SQLite makes none; a writer refuses one ('unable to open database file', and `castrig store
            # sync` ended in that traceback), and through one it would read another database's journal
            try:
                return f"{side.name} is a symbolic link (to {os.readlink(side)}), which SQLite never makes there"
            except OSError:
                return f"{side.name} is a symbolic link, which SQLite never makes there"
        try:
            mode = os.stat(side).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:  # a symlink loop, a folder closed to this user: SQLite could not open it either
            return f"{side.name} cannot be read ({exc.strerror or exc})"
        if not stat.S_ISREG(mode):
            return f"{side.name} is not a regular file (a named pipe or device SQLite would wait on)"
    return None


def not_a_file(db_path: str | Path) -> str | None:
    """Why the database ``db_path`` (resolved) is no file SQLite can keep, or None (a regular
    file, or none yet): a folder or a named pipe named catalog.sqlite refused every `castrig run`
    on the data root as 'unable to open database file' or 'disk I/O error', which named neither
    what was wrong nor what to do."""
    try:
        mode = os.stat(db_path).st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{Path(db_path).name} cannot be read ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kind = "a folder" if stat.S_ISDIR(mode) else "a named pipe" if stat.S_ISFIFO(mode) else "not a regular file"
    return f"{Path(db_path).name} is {kind}, not a database"


def lenient_text(raw: bytes) -> str:
    """A reader's ``text_factory``: TEXT that is not UTF-8 (a hand edit, ``CAST(X'41FF' AS TEXT)``)
    read with U+FFFD. SQLite's default raised OperationalError on the whole query: the live page
    showed no events or no plots without a word, and the report was a traceback."""
    return raw.decode("utf-8", errors="replace")


#: The longest TEXT or BLOB value a reader takes from a run's database (castrig writes at most tens
#: of kB in one: a membrane's verdict). SQLite holds up to 1 GB in one: an event message of 100 MB
#: (whoever may write the data root) took 480 MB of castrig serve's memory per run page asked for,
#: and 1.1 GB per saved report. A longer value is SQLite's DataError "string or blob too big".
READ_VALUE_MAX_BYTES = 4 << 20


def bounded_reader(conn: sqlite3.Connection) -> sqlite3.Connection:
    """``conn`` refusing values longer than :data:`READ_VALUE_MAX_BYTES` (sqlite3.DataError)."""
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, READ_VALUE_MAX_BYTES)
    return conn


class ValueTooLarge(sqlite3.DataError):
    """A bounded reader met a value over :data:`READ_VALUE_MAX_BYTES` in table ``table``."""

    def __init__(self, table: str):
        self.table = table
        super().__init__(f"table {table} holds a value over {READ_VALUE_MAX_BYTES} bytes (string or blob too big)")


def connect_readonly(path: Path) -> sqlite3.Connection:
    """A reader's connection: ``mode=ro``, the journal mode left as it is (no write access needed).

    A WAL database in a folder nobody may write (a read-only copy, a full disk) cannot get its
    ``-shm`` file: then it is opened ``immutable`` — right for a copy, which nobody writes.
    """
    uri = ro_uri(path)
    try:
        conn = bounded_reader(sqlite3.connect(f"{uri}?mode=ro", uri=True, isolation_level=None, timeout=10.0))
        conn.text_factory = lenient_text
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError:
        if not os.access(path, os.R_OK):
            raise
    conn = bounded_reader(sqlite3.connect(f"{uri}?mode=ro&immutable=1", uri=True, isolation_level=None, timeout=10.0))
    conn.text_factory = lenient_text
    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    return conn


def connect_reader_leaving_no_sidecars(path: Path) -> sqlite3.Connection:
    """A reader's connection to a WAL database in a folder this user may write (the data root's
    catalog), that removes the ``-wal`` and ``-shm`` files when it closes as the last connection,
    as a writer's does: a ``mode=ro`` connection makes them and cannot remove them, so every
    ``castrig runs``, ``lots`` or ``status`` left catalog.sqlite-wal and -shm in the data root.
    Opened read-write (``mode=rw``: never creating the database) but ``query_only``: it writes no
    row; closing while another process holds the database (a run indexing itself) leaves that
    process's files alone, as SQLite does for every connection. A folder or file it may not
    write: :func:`connect_readonly`."""
    if not (os.access(path, os.W_OK) and os.access(Path(path).parent, os.W_OK)):
        return connect_readonly(path)
    if _wal_index_cannot_grow() and not os.path.exists(f"{path}-shm"):
        # no writer's WAL index to share, and none this process could make: under `ulimit -f 4`
        # the open failed (disk I/O error) and left an empty -wal and a 4 KiB -shm in the data
        # root; read the file as it is instead (a writer starting meanwhile makes its own)
        conn = bounded_reader(sqlite3.connect(f"{ro_uri(path)}?mode=ro&immutable=1", uri=True, isolation_level=None))
        conn.text_factory = lenient_text
        return conn
    conn = bounded_reader(sqlite3.connect(f"{ro_uri(path)}?mode=rw", uri=True, isolation_level=None, timeout=10.0))
    try:
        conn.execute("PRAGMA query_only=1")
        conn.text_factory = lenient_text
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
    except BaseException:
        conn.close()
        raise
    return conn


#: Bytes a WAL index (``-shm``) takes at the least: SQLite maps it in 32 KiB pieces.
_WAL_INDEX_BYTES = 32 * 1024


def _wal_index_cannot_grow() -> bool:
    """This process may not write a file as large as a WAL index (a file-size limit, ``ulimit -f``)."""
    import resource

    soft = resource.getrlimit(resource.RLIMIT_FSIZE)[0]
    return soft != resource.RLIM_INFINITY and soft < _WAL_INDEX_BYTES


#: SQLite's answers that mean "no room": SQLITE_FULL, a failed write (EFBIG, EDQUOT: disk I/O error),
#: and a WAL index (``-shm``) that could not grow to its 32 KiB: under an 8-16 KiB file-size limit
#: (``ulimit -f``) a new run's folder was refused "cannot create the run folder ... (disk I/O error)",
#: with no word of a full disk, where 4 and 32 KiB said "disk full".
_FULL_CODES = {13, 778, 4874}  # SQLITE_FULL, SQLITE_IOERR_WRITE, SQLITE_IOERR_SHMSIZE


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


def _busy(exc: BaseException | None) -> bool:
    """``exc`` is SQLite's 'database is locked' (SQLITE_BUSY or SQLITE_LOCKED): another connection holds it."""
    return isinstance(exc, sqlite3.OperationalError) and (
        (getattr(exc, "sqlite_errorcode", None) or 0) & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
        or "database is locked" in str(exc))


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


def _has_table(db: sqlite3.Connection, name: str) -> bool:
    return db.execute("SELECT 1 FROM sqlite_master WHERE type='table' AND name=?", (name,)).fetchone() is not None
