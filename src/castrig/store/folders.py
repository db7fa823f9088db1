"""Run folders as found on disk (part of the run store, :mod:`castrig.store.sqlite_store`):
one that never started (a folder made and left before its run began: named, never listed as a
run, removable), one that is damaged (its run.json or database unreadable: named with the
reason, :func:`run_damage`), the room kept beside a live run's files so that a full disk still
lets the run record how it ended (:func:`_keep_reserve`).
"""

from __future__ import annotations

import itertools
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from castrig.errors import BadInput, Busy
from castrig.jsontext import loads
from castrig.regular import FileTooBig, NotRegularFile
from castrig.store import runjson
from castrig.store.lock import LOCK_NAME, claim_run, release_run, run_holder
from castrig.store.base import RunInfo
from castrig.store.sqlite_connect import DamagedRun, sidecar_problem


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
        data = loads(text)
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
        return runjson.load(run_dir).get("run_id") == run_dir.name
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
        info = runjson.load(run_dir)
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
        why = sidecar_problem(db.resolve())
    except (OSError, RuntimeError):  # a symlink loop: said below
        why = None
    if why is not None:
        return why
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
