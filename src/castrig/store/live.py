"""Reading runs for people who are not at the rig: the web application and ``castrig status|watch``.

Only files are read — ``run.json``, the run's SQLite (opened read-only, the public schema of
DESIGN §5), and the runner's ``control/status.json`` — never a device. A run is ``running`` only
while a process holds its ``run.lock`` (:func:`castrig.store.lock.live_outcome`).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from castrig.oslock import process_stopped
from castrig.store import runjson
from castrig.store.commands import read_status
from castrig.store.lock import LOCK_NAME, live_outcome, recorded_elsewhere, run_holder
from castrig.store.recipe_text import recipe_file_text
from castrig.store.folders import NEVER_STARTED, run_damage
from castrig.store.membrane_rows import membrane_counts
from castrig.store.sqlite_connect import bounded_reader, lenient_text, ro_uri

#: What a run whose process still holds it can be: ``running``, waiting for a pause
#: (``pausing``) or in one (``paused``), and, once it is ending, making the rig safe
#: (``making_safe``) or trying again to reach a safe state it could not verify
#: (``unsafe_retrying``) — never "running" while the rig is not known to be safe.
LIVE_STATES = ("running", "paused", "pausing", "making_safe", "unsafe_retrying")
#: The states the runner publishes in ``control/status.json`` that a reader shows instead of ``running``.
_SHOWN_STATES = LIVE_STATES[1:]
#: live states of a run that is ending: the rig is being made safe, no step goes on
ENDING_STATES = ("making_safe", "unsafe_retrying")
#: A live runner writes its status at least every second or so while it ticks (longer only during
#: an analysis or a device that does not answer); silent for longer than this, it is stopped
#: (SIGSTOP, a suspended terminal), hung or very busy -- readers say so instead of a plain "running".
SILENT_S = 60.0

#: Event kinds an operator must see (highlighted on the page, "last warning" in ``castrig status``).
WARNING_KINDS = frozenset({"interlock", "warning", "membrane_lost", "fault", "error"})


def run_dirs(root: Path, only: Callable[[Path], bool] | None = None) -> list[Path]:
    """Every run folder under the data root, newest first (folder names start with the UTC stamp);
    ``only``: a cheap test a folder must pass before the dearer checks of :func:`_inside`."""
    return list(newest_run_dirs(root, only))


def newest_run_dirs(root: Path, only: Callable[[Path], bool] | None = None) -> Iterator[Path]:
    """:func:`run_dirs` one at a time, newest first: the folders are sorted by name alone and each
    checked (run.json there, :func:`_inside`) only when its turn comes, so a reader that wants the
    newest few (the runs page) checks no more (each check ~0.1 ms: 2 s for 20 000 folders)."""
    root = Path(root)
    if not root.is_dir():
        return
    real = root.resolve()
    names = []
    try:
        with os.scandir(root) as entries:
            for e in entries:
                try:
                    if e.is_dir():
                        names.append(e.name)
                except OSError:
                    continue
    except OSError:
        return
    for name in sorted(names, reverse=True):
        d = root / name
        if os.path.exists(d / runjson.NAME) and (only is None or only(d)) and _inside(real, d):
            yield d


def find_run(root: Path, uid: str) -> Path | None:
    """The run folder named ``uid`` directly under ``root`` (never a path outside it)."""
    if not uid or "/" in uid or "\\" in uid or uid.startswith("."):
        return None
    p = Path(root) / uid
    try:
        return p if runjson.present(p) and _inside(Path(root).resolve(), p) else None  # (one not a file: damaged)
    except OSError:  # a name the file system refuses (longer than 255 bytes): no such run, not a 500
        return None


#: The files of a run folder a reader opens by name (its micrographs are held in by `file_in`).
RECORD_FILES = ("run.json", "run.sqlite", "run.sqlite-wal")


def _inside(real_root: Path, run_dir: Path) -> bool:
    """A run folder that is really in the data root, its records really in it: a symlink there
    to a folder elsewhere, or a run.json or run.sqlite linked to another one's (placed by whoever
    may write the data root), served those files to every reader of the web application, as
    `file_in` already refuses for a run's micrographs."""
    try:
        real = run_dir.resolve()
        if real.parent != real_root:
            return False
        return links_held_in(run_dir, RECORD_FILES)
    except (OSError, RuntimeError):  # a symlink loop
        return False


def links_held_in(folder: Path, names: tuple[str, ...]) -> bool:
    """Every one of ``names`` in ``folder`` that is a symlink leads to a file in the folder
    (:func:`file_in`); the others are taken as they are."""
    return all(file_in(folder, name) is not None for name in names if (Path(folder) / name).is_symlink())


def run_outcome(run_dir: Path) -> str:
    """The outcome a reader shows for a run folder: run.json's, ``crashed`` where it says running
    and no process owns the folder (``store.lock.live_outcome``)."""
    return live_outcome(run_dir, str(read_info(run_dir).get("outcome", "running")))


def read_info(run_dir: Path) -> dict[str, Any]:
    try:
        data = runjson.load(run_dir)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


@contextmanager
def open_ro(run_dir: Path) -> Iterator[sqlite3.Connection | None]:
    """The run's SQLite, read-only (None while it does not exist yet, or while a file SQLite would
    open beside it is no regular file: :func:`~castrig.store.sqlite_connect.sidecar_problem`)."""
    path = Path(run_dir) / "run.sqlite"
    try:
        uri = ro_uri(path) if path.is_file() else None
    except sqlite3.OperationalError:  # (the runs list says it damaged, naming the file)
        uri = None
    if uri is None:
        yield None
        return
    db = bounded_reader(sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=5))
    db.text_factory = lenient_text
    try:
        yield db
    finally:
        db.close()


def _rows(db: sqlite3.Connection | None, sql: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if db is None:
        return []
    try:
        return [tuple(r) for r in db.execute(sql, args)]
    except sqlite3.Error:  # the schema is not written yet, or a table an older run lacks
        return []


def _json(text: Any) -> Any:
    try:
        return json.loads(text) if text else None
    except (TypeError, ValueError):
        return None


def _json_object(text: Any) -> dict[str, Any]:
    """A ``*_json`` column for a live page: its object, {} for anything else (a hand-edited
    ``metadata_json = '[1]'`` ended `castrig status` and the report in a traceback)."""
    v = _json(text)
    return v if isinstance(v, dict) else {}


def membranes(db: sqlite3.Connection | None) -> list[dict[str, Any]]:
    out = []
    for mid, status, grades, target, met, lost, verdict in _rows(
            db, "SELECT membrane_id, status, grades_met, target_grade, target_met, lost_reason, verdict_json FROM membranes ORDER BY k"):
        out.append({"membrane_id": mid, **_membrane_state(status, grades, target, met), "lost_reason": lost,
                    "verdict": _json_object(verdict) or None})
    return out


def membrane_states(db: sqlite3.Connection | None) -> list[dict[str, Any]]:
    """Each membrane's status, grades met and target (what :func:`membrane_counts` and the runs
    list read), without its verdict: the runs list decoded every membrane's whole verdict, ~6 ms a
    20-membrane run, on every 10 s reload of each open page for each run not kept (a live or
    crashed one)."""
    return [_membrane_state(*r) for r in _rows(db, "SELECT status, grades_met, target_grade, target_met FROM membranes ORDER BY k")]


def _membrane_state(status: Any, grades: Any, target: Any, met: Any) -> dict[str, Any]:
    g = _json(grades) if isinstance(grades, str) and grades.startswith("[") else [x for x in str(grades or "").split(",") if x]
    # (only names: a hand-edited '[[1]]' or '[1, 2]' was a 500 on the runs list, for every run)
    g = [x for x in g if isinstance(x, str)] if isinstance(g, list) else []
    return {"status": status, "grades_met": g, "target_grade": target, "target_met": None if met is None else bool(met)}


def membrane_glance(mb: dict[str, Any]) -> dict[str, Any]:
    """A membrane of :func:`membranes` with its verdict cut to each grade's status: what a live
    page's membrane table shows between reports. The stream sent every judged membrane's whole
    verdict (every bound of four grades, ~20 kB) to each open page every second: 400 kB a second
    near the end of a 20-cast run; the whole verdicts come with the report's part, fetched when a
    membrane changes."""
    verdict = mb.get("verdict") or {}
    grades = verdict.get("grades") if isinstance(verdict.get("grades"), list) else []
    glance = {"grades": [{"grade": g.get("grade"), "status": g.get("status")} for g in grades if isinstance(g, dict)],
              "grades_met": verdict.get("grades_met")} if verdict else None
    return {**mb, "verdict": glance}


class _Damaged(ValueError):
    """A record a reader cannot show (the run is listed as damaged, with this reason)."""


def _damaged_summary(run_dir: Path, reason: str) -> dict[str, Any]:
    from castrig.jsontext import plain

    return {"uid": plain(run_dir.name), "status": "damaged", "recipe": "", "operator": "", "started_utc": None,
            "ended_utc": None, "outcome_reason": reason, "step": {}, "membranes": 0, "membrane_counts": "", "grades": [],
            "virtual_time": False}


def _step_from_journal(db: sqlite3.Connection | None, recipe: dict[str, Any]) -> dict[str, Any]:
    # the last step that ran: a lost membrane's steps are journaled 'skipped' after it (an abort
    # in m1's evaporation records its capture and analyse skipped), and are not where the run is
    rows = (_rows(db, "SELECT step_index, state, t_s FROM journal WHERE state != 'skipped' ORDER BY seq DESC LIMIT 1")
            or _rows(db, "SELECT step_index, state, t_s FROM journal ORDER BY seq DESC LIMIT 1"))
    steps = recipe.get("steps") or []
    if not rows:
        return {"step_index": -1, "step_label": "", "n_steps": len(steps)}
    i, state, t = rows[0]
    if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(steps):
        # (the recorder's reader says the same of that row: sqlite_store._step)
        raise _Damaged(f"run.sqlite: the journal's last step_index {i!r} is none of the recipe's {len(steps)} steps")
    st = steps[i] if isinstance(steps[i], dict) else {}
    return {"step_index": int(i), "step_type": st.get("type", ""), "step_label": st.get("label") or st.get("type", ""),
            "n_steps": len(steps), "step_state": state}


def _age_s(utc: Any) -> float | None:
    """Seconds since an ISO UTC time the runner wrote (None if there is none to read)."""
    from datetime import datetime, timezone

    from castrig.utc import parse_utc

    when = parse_utc(utc)
    return None if when is None else max(0.0, (datetime.now(timezone.utc) - when).total_seconds())


def shown_status(run_dir: Path, outcome: str) -> str:
    """What a reader shows for a run whose outcome (``live_outcome``) is ``outcome``: the state the
    runner publishes (paused, pausing, making_safe, unsafe_retrying) in place of ``running``; and
    ``being resumed`` while a resume holds it before its part begins (:func:`resume_claim`: not
    the outcome of the part before, nor its status file's state)."""
    if resume_claim(run_dir) is not None:
        return "being resumed"
    if outcome != "running":
        return outcome
    state = (read_status(Path(run_dir)) or {}).get("state")
    return str(state) if state in _SHOWN_STATES else outcome


def resume_claim(run_dir: Path, info: dict[str, Any] | None = None) -> dict[str, Any] | None:
    """The owner (run.lock's record: pid, host, purpose) of a ``castrig resume`` that has claimed
    the folder and not yet begun its part; else None. A resume claims the folder, then opens the
    rig and makes it safe (seconds on hardware), and only then records its part in run.json and
    publishes its own status (from then on, to its end, run.json and the status file are its
    own: :func:`_by_holder`): meanwhile run.json's outcome and ``control/status.json`` are the part
    before's, and readers said "completed" or "faulted", or the dead part's step and time left, of
    a run being resumed. ``info``: run.json as already read (read here if not given)."""
    if not (Path(run_dir) / LOCK_NAME).exists():
        return None
    holder = run_holder(run_dir)
    if holder is None or not str(holder.get("purpose") or "").startswith("castrig resume"):
        return None
    info = read_info(run_dir) if info is None else info
    parts = info.get("parts")
    last = parts[-1] if isinstance(parts, list) and parts and isinstance(parts[-1], dict) else {}
    if _by_holder(last, "started_utc", holder):
        return None  # its part has begun (or ended): run.json and the status file are its own
    if info.get("outcome", "running") != "running" and _by_holder(info, "ended_utc", holder):
        return None  # it recorded the run's end with no part of its own (an abort whose process died making safe)
    return holder


def _by_holder(record: dict[str, Any], when: str, holder: dict[str, Any]) -> bool:
    """Whether ``record`` (run.json, or its last part) was written by the lock's ``holder``: its pid
    and host, and its time ``when`` no earlier than the holder took the lock (both in whole
    seconds) -- whatever the outcome it records. A resume that has recorded the run's end holds
    the folder on through the fleet store's copy, the log's close and the rig's (seconds): readers
    said "being resumed" of a run that had completed. (A record an earlier process of the same pid
    wrote, before a reboot, is not the holder's.)"""
    from castrig.utc import parse_utc

    pid = holder.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or (record.get("pid"), record.get("host")) != (pid, holder.get("host")):
        return False
    took, written = parse_utc(holder.get("started_utc")), parse_utc(record.get(when))
    return took is None or (written is not None and written >= took)


def resume_words(holder: dict[str, Any]) -> str:
    """What readers say of a run a resume has claimed (:func:`resume_claim`)."""
    return (f"being resumed: castrig resume (pid {holder.get('pid', '?')} on {holder.get('host', '?')}) holds the run "
            "folder and is opening the rig; the run goes on after the step shown")


_ESCAPED_LETTER = re.compile(rb"\\u00[4-7]", re.IGNORECASE)


def may_be_live(run_dir: Path) -> bool:
    """False only for a folder whose run cannot be live: no process holds its lock and its
    run.json does not hold the word ``running`` (a live run is ``running`` in run.json, or held
    by a ``castrig resume``; one on another host is ``running`` in run.json). Reads one file's
    bytes and tests one lock, where :func:`summary` (1.5 ms) opened the database: ``castrig
    status`` over 3 000 ended runs took 2 s of CPU to say none was running, 20 000 took 15 s."""
    run_dir = Path(run_dir)
    try:
        if run_holder(run_dir) is not None:
            return True
        fd = os.open(run_dir / "run.json", os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        return True  # (a link, a missing or odd file: summary says what it is)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > runjson.MAX_BYTES:
            return True
        text = os.read(fd, st.st_size + 1)
        # (a letter written as a JSON escape, \\u0072unning: taken as may be; castrig's own escapes
        # are of non-ASCII characters, an em dash in a description)
        return b"running" in text or _ESCAPED_LETTER.search(text) is not None
    except OSError:
        return True
    finally:
        os.close(fd)


def summary(run_dir: Path) -> dict[str, Any]:
    """One row of the runs table / ``GET /api/runs``."""
    run_dir = Path(run_dir)
    if any("\ud800" <= c <= "\udfff" for c in run_dir.name):
        # (bytes that are not UTF-8 in its name: every page and answer naming it was a 500)
        return _damaged_summary(run_dir, "its folder name is not UTF-8: rename the folder to read it here")
    damage = run_damage(run_dir)
    if damage is not None and damage.startswith(NEVER_STARTED) and run_holder(run_dir) is not None:
        damage = "being made now: nothing recorded yet"  # its maker lives (a run in its first moments)
    if damage is not None:  # what `castrig runs` says of it: not a run to report on
        return _damaged_summary(run_dir, damage)
    info = read_info(run_dir)
    status = run_outcome(run_dir)
    resuming = resume_claim(run_dir, info) is not None
    if resuming:
        status = "running"
    with open_ro(run_dir) as db:
        mbs = membrane_states(db)  # (only what the row shows: no verdict decoded)
        try:
            step = _step_from_journal(db, info.get("recipe") or {})
        except _Damaged as exc:
            return _damaged_summary(run_dir, str(exc))
    # (not the status file the part before the resume left: the resume's runner has not written one)
    live = read_status(run_dir) if status == "running" and not resuming else None
    if live:
        # what the runner says of its step, where it says it (a status.json from another version or
        # tool may lack a key: the journal's step stands for it, not None)
        step.update({k: live[k] for k in ("step_index", "step_type", "step_label", "n_steps")
                     if isinstance(live.get(k), int if k in ("step_index", "n_steps") else str)})
        if live.get("state") in _SHOWN_STATES:
            status = str(live["state"])
    grades = sorted({g for mb in mbs for g in mb["grades_met"]})
    return {
        "uid": run_dir.name,
        "status": status,
        "recipe": info.get("recipe_name", ""),
        "operator": info.get("operator", ""),
        "started_utc": info.get("started_utc"),
        "ended_utc": info.get("ended_utc"),
        "outcome_reason": info.get("outcome_reason"),
        "step": step,
        "membranes": len(mbs),
        # how they ended, as `castrig runs` says it ("4: 2 met, 1 not met, 1 lost"): a count and
        # the grades any met made a night with one membrane kept look like a perfect one
        "membrane_counts": membrane_counts(mbs),
        "grades": grades,
        "virtual_time": bool(info.get("virtual_time")),
    }


def last_values(db: sqlite3.Connection | None) -> dict[str, dict[str, float]]:
    rows = _rows(db, "SELECT s.channel, s.t_s, s.value FROM samples s JOIN (SELECT channel, MAX(rowid) AS r FROM samples "
                     "GROUP BY channel) last ON s.rowid = last.r")
    return {c: {"t_s": t, "value": v} for c, t, v in rows}


def held_setpoint(values: dict[str, dict[str, float]]) -> float | None:
    """The RH setpoint the loop held at the run's last sample, None once it had let go: a
    setpoint is sampled only while the loop holds one, and a run that ended on a purge showed
    the last condition's 70 %RH beside the room's 50 as if still held."""
    sp, rh = values.get("rh_setpoint_pct"), values.get("rh_near_pct")
    if sp is None or (rh is not None and sp["t_s"] < rh["t_s"]):
        return None
    return sp["value"]


def events(db: sqlite3.Connection | None, after_id: int = 0, limit: int = 2000) -> list[dict[str, Any]]:
    out = []
    for eid, t, kind, source, message, data in _rows(
            db, "SELECT id, t_s, kind, source, message, data_json FROM events WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)):
        d = _json_object(data)
        warn = kind in WARNING_KINDS or (kind == "run_end" and d.get("outcome") not in (None, "completed")) \
            or (kind == "safe_state" and d.get("safe") is False)
        out.append({"id": eid, "t_s": t, "kind": kind, "source": source, "message": message, "warning": bool(warn)})
    return out


def last_warning(db: sqlite3.Connection | None) -> dict[str, Any] | None:
    kinds = tuple(sorted(WARNING_KINDS))
    rows = _rows(db, f"SELECT id, t_s, kind, source, message FROM events WHERE kind IN ({','.join('?' * len(kinds))}) "
                     "ORDER BY id DESC LIMIT 1", kinds)
    return None if not rows else dict(zip(("id", "t_s", "kind", "source", "message"), rows[0]))


def images(db: sqlite3.Connection | None, run_dir: Path | None = None) -> list[dict[str, Any]]:
    """The run's images; their sizes in px (from their files) when ``run_dir`` is given."""
    out = []
    for iid, t, name, path, ill, px, meta in _rows(
            db, "SELECT id, t_s, name, path, illumination, pixel_size_um, metadata_json FROM images ORDER BY id"):
        m = _json_object(meta)
        out.append({"id": iid, "t_s": t, "name": name, "illumination": ill, "pixel_size_um": px,
                    "membrane_id": m.get("membrane_id"), **_image_shape(run_dir, path)})
    return out


def _image_shape(run_dir: Path | None, path: str) -> dict[str, Any]:
    """Width and height in pixels, for the page's scale bar: from the TIFF's header and first
    directory only (:func:`castrig.image_bounds.tiff_size_px`), never its tags' values or pixels;
    a file that gives none is said (``image_unreadable``), not a traceback or a wait."""
    found = file_in(run_dir, path) if run_dir is not None else None  # (none from outside the run folder)
    if found is None:
        return {}
    from castrig.errors import BadInput
    from castrig.image_bounds import tiff_size_px

    try:
        width, height = tiff_size_px(found)
    except (BadInput, OSError) as exc:
        text = str(exc.args[0] if isinstance(exc, BadInput) and exc.args else exc)
        return {"image_unreadable": text.replace(f"{found}: ", "", 1)[:200]}
    return {"height_px": height, "width_px": width}


def image_rel(run_dir: Path, image_id: int) -> str | None:
    """The image's path in the record (for :func:`held_file_in`), or None: no such image."""
    with open_ro(run_dir) as db:
        rows = _rows(db, "SELECT path FROM images WHERE id = ?", (image_id,))
    return str(rows[0][0]) if rows and rows[0][0] is not None else None


@contextmanager
def held_file_in(run_dir: Path, rel: str) -> Iterator[Path | None]:
    """:func:`file_in`, the file held open from its check to its last read: ``/proc/self/fd/N``,
    the very file that was checked (a regular file, really inside the run folder), whatever its
    name holds later; None where :func:`file_in` finds none or the file is no regular one. A
    micrograph swapped for a named pipe between the look and the decoder's open held the server's
    one decoding slot for ever (every report and micrograph after it waited), and one swapped for
    a link out of the run folder was read."""
    from castrig.regular import open_regular

    path = file_in(run_dir, rel)
    fh = open_regular(path, follow=False) if path is not None else None
    if fh is None:
        yield None
        return
    with fh:
        held = Path(f"/proc/self/fd/{fh.fileno()}")
        try:
            inside = Path(run_dir).resolve() in Path(os.readlink(held)).parents
        except OSError:
            inside = False
        yield held if inside else None


def file_in(run_dir: Path, rel: str) -> Path | None:
    """``run_dir / rel`` resolved, if it is a file inside the run folder (never one a symlink, an
    absolute or a ``..`` path in the record leads out to), else None."""
    try:
        p = (Path(run_dir) / rel).resolve()
        return p if p.is_file() and Path(run_dir).resolve() in p.parents else None
    except (OSError, ValueError):
        return None


#: Keys of a run's detail that only a live run's status file fills (null for every other run).
LIVE_DETAIL_KEYS = ("step_elapsed_s", "step_duration_s", "run_left_is_estimate", "paused_by", "state", "detail",
                    "safe_state", "status_written_utc", "status_age_s")


def detail(run_dir: Path, *, with_recipe: bool = True, image_sizes: bool = True) -> dict[str, Any]:
    """``GET /api/runs/{uid}``: status, step, time left, last values, membranes, grades, last warning.
    ``image_sizes=False``: the images' sizes are not read from their files (a console line that
    shows none of them had read every image's header at every refresh)."""
    run_dir = Path(run_dir)
    out = summary(run_dir)
    if out["status"] == "damaged":
        return out | {"last_values": {}, "membrane_records": [], "last_warning": None, "images": [], "t_s": None,
                      "step_left_s": None, "run_left_s": None, "setpoint_rh_pct": None, "band_rh_pct": None,
                      **dict.fromkeys(LIVE_DETAIL_KEYS), "owner": None, "owner_stopped": False, "running_on_host": None,
                      **({"recipe_as_written": None} if with_recipe else {})}
    claim = resume_claim(run_dir) if out["status"] == "running" else None
    # (not the status file the part before the resume left: its step, time left, state)
    live = read_status(run_dir) if out["status"] in LIVE_STATES and claim is None else None
    with open_ro(run_dir) as db:
        out["last_values"] = last_values(db)
        out["membrane_records"] = membranes(db)
        out["last_warning"] = last_warning(db)
        out["images"] = images(db, run_dir if image_sizes else None)
        t_rows = _rows(db, "SELECT MAX(t_s) FROM samples")
    out["t_s"] = t_rows[0][0] if t_rows else None
    # an ended run has nothing left; a crashed one's time left is unknown (it stopped mid-step:
    # 0.0 read as "done" to a script), as a live one's until its status file says
    out["step_left_s"] = out["run_left_s"] = 0.0 if out["status"] not in (*LIVE_STATES, "crashed") else None
    out["setpoint_rh_pct"] = held_setpoint(out["last_values"])
    out["band_rh_pct"] = None
    # what only a live run's status file says: null otherwise, so that every run's detail (and
    # `castrig status --json`) has one shape (a script's d["state"] was a KeyError once it ended)
    out.update(dict.fromkeys(LIVE_DETAIL_KEYS))
    if live:
        for k in ("t_s", "step_elapsed_s", "step_duration_s", "step_left_s", "run_left_s", "run_left_is_estimate",
                  "setpoint_rh_pct", "band_rh_pct", "paused_by", "state", "detail", "safe_state"):
            out[k] = live.get(k)
        if out["status"] in ENDING_STATES:
            # the run is ending: the aborted step's time left is none to speak of (status, watch, the page)
            out["step_left_s"] = out["run_left_s"] = None
            if not out.get("outcome_reason"):
                out["outcome_reason"] = (live.get("safe_state") or {}).get("reason")  # why it is ending (run.json says it at the end)
        out["status_written_utc"] = live.get("written_utc")
        out["status_age_s"] = _age_s(live.get("written_utc"))
    if claim is not None:
        out["state"], out["detail"] = "resuming", resume_words(claim)
    elif out["status"] == "crashed":  # stopped paused, or with a pause asked: that pause is gone
        out["detail"] = pause_at_crash(run_dir)
    holder = run_holder(run_dir) if out["status"] in LIVE_STATES else None
    out["owner"] = holder
    # a stopped owner (SIGSTOP, Ctrl-Z) is said at once, not after SILENT_S of silence
    out["owner_stopped"] = holder is not None and process_stopped(holder.get("pid"), holder.get("host"))
    # recorded running on another host, whose lock may not show here: not judged crashed from here
    out["running_on_host"] = recorded_elsewhere(run_dir) if holder is None and out["status"] in LIVE_STATES else None
    if with_recipe:
        found = recipe_file_text(run_dir)
        out["recipe_as_written"] = found[0] if found else None
    return out


def samples(run_dir: Path, channels: list[str] | None = None, since_t_s: float | None = None,
            after_rowid: int = 0, limit: int = 200_000) -> dict[str, Any]:
    """Samples as ``{"channels": {name: [[t_s, value], ...]}, "cursor": last rowid}``.

    ``since_t_s`` keeps samples after that run time; ``after_rowid`` (the previous ``cursor``)
    keeps only those written since, which is how the live page follows the run.
    """
    sql = "SELECT rowid, t_s, channel, value FROM samples WHERE rowid > ?"
    args: list[Any] = [after_rowid]
    if since_t_s is not None:
        sql += " AND t_s > ?"
        args.append(since_t_s)
    if channels:
        sql += f" AND channel IN ({','.join('?' * len(channels))})"
        args += channels
    sql += " ORDER BY rowid LIMIT ?"
    args.append(limit)
    out: dict[str, list[list[float]]] = {}
    cursor = after_rowid
    with open_ro(run_dir) as db:
        for rowid, t, ch, v in _rows(db, sql, tuple(args)):
            out.setdefault(ch, []).append([t, v])
            cursor = rowid
    return {"channels": out, "cursor": cursor}


def pause_at_crash(run_dir: Path) -> str | None:
    """The words of :func:`castrig.store.paused_at_stop.crashed_words` for a crashed run that
    stopped paused or pausing (None if it was neither): its pause went with its process."""
    from types import SimpleNamespace

    from castrig.store.paused_at_stop import crashed_words, pause_at_stop

    with open_ro(run_dir) as db:  # (since the last resume: a pause before it was said by it)
        rows = _rows(db, "SELECT t_s, kind, source, data_json FROM events WHERE id > coalesce((SELECT max(id) FROM events "
                         "WHERE kind = 'resume'), 0) AND kind IN ('pause', 'command') ORDER BY id")
    pause = pause_at_stop([SimpleNamespace(t_s=t, kind=k, source=src, data=_json_object(d)) for t, k, src, d in rows])
    return crashed_words(pause) if pause is not None else None


def crashed_hint(run_dir: Path) -> str:
    """What to do about a crashed run's rig, which its dead process left as it last drove it (the
    wet air on): an abort of it reaches nobody."""
    try:
        profile = runjson.load(run_dir).get("profile_path") or "P"
    except Exception:  # noqa: BLE001 - a hint never fails the refusal it is added to
        profile = "P"
    return (f". Its process is gone and the rig is as it left it: `castrig safe --profile {profile}` makes it safe; "
            f"`castrig resume {run_dir}` makes it safe and continues the run")
