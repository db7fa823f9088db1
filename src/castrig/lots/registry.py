"""Membrane lots: every judged membrane that met a grade is a lot, named by its membrane id.

A run makes one membrane per cast (``<run id>-m<k>``); each judged membrane that met at least one
grade, in a run that is not still running, is a lot (a run recorded before membranes existed is
one lot named by its run id). Membranes that are not lots are listed by :func:`not_lots` with
the reason (lost in a crash, no grade met, not judged).

The lots are derived from the store (nothing to keep in step by hand); only the intended use
an operator assigns to a lot is stored, in ``DATA/lots.json``. Assigning and unassigning read,
check and rewrite that file while holding ``DATA/lots.lock`` (an OS lock, :mod:`castrig.oslock`,
gone with the process however it dies): two ``castrig lots assign`` at the same moment are
served one after the other — the second sees the first's use (and is refused if it wants the
other one), and neither write drops the other's assignment. The file is written atomically.
What needs no write (an unknown lot, the same use again, a lot with no use unassigned) is
answered before the lock is taken, so it works on a read-only data root too.

Policy for uses (``assign_use``):

* a lot whose run's record is not closed (the run crashed and was not resumed, or still runs) is
  refused, as the filter and co-culture checks refuse it (:func:`open_run_refusal`, one rule):
  ``castrig resume RUN`` closes a crashed run's record; a lot of a run that ended aborted or
  faulted after it was judged takes a use, and its record says how the run ended;

* a lot has at most one intended use: a blood filter and a co-culture diaphragm exclude each other
  (the membrane is cut for one device; blood contact and cell culture need different handling),
  so assigning the other use is refused with the use it already has — ``castrig lots unassign``
  first, deliberately; assigning the same use again changes nothing;
* a membrane made on the digital twin (``simulated``) is not a membrane anyone can use: it is
  refused for a use unless ``--allow-simulated`` is given, and then the record says so
  (``simulated: true, allow_simulated: true``), as do the filter and co-culture checks. Which grades suit which use is
:data:`SUITABLE_GRADES`: the uses are claims 5 and 6 of the specification, which we read as
using "the composite membrane of any one of claims 1 to 4" — a narrower grade can be required
per build or set-up (``required_grade``).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

from castrig import oslock
from castrig.errors import BadInput, Busy
from castrig.jsontext import loads
from castrig.regular import read_regular
from castrig.store import open_store
from castrig.atomic import atomic_write_json
from castrig.store.lock import recorded_elsewhere
from castrig.store.sqlite_connect import DamagedRun
from castrig.store.sqlite_store import MOVED_OUT, open_run_folder
from castrig.utc import parse_utc

Use = Literal["blood_filter", "coculture"]
USES: dict[str, str] = {
    "blood_filter": "second-stage leukocyte filter (claims 5, 9-13)",
    "coculture": "cell co-culture diaphragm (claims 6, 14)",
}
SUITABLE_GRADES: dict[str, tuple[str, ...]] = {
    "blood_filter": ("claim1", "claim2", "claim3", "claim4"),
    "coculture": ("claim1", "claim2", "claim3", "claim4"),
}
#: Outcomes of a run whose record is not closed: its lots take no use and go into no build until
#: it has ended (:func:`open_run_refusal`).
OPEN_RUN_OUTCOMES = ("crashed", "running")
_ASSIGNMENTS = "lots.json"
#: Far above what `lots assign` writes (a few hundred bytes a lot).
_ASSIGNMENTS_MAX_BYTES = 64 << 20
_LOCK = "lots.lock"
#: How long an assignment waits for another one in progress (each holds the lock for a scan and a write).
LOCK_WAIT_S = 60.0


@dataclass
class Lot:
    """One membrane lot: the run that made it, what it met, what it measured, what it is for."""

    lot_id: str
    run_dir: str
    recipe_name: str
    started_utc: str
    grades_met: list[str]
    metrics: dict[str, Any] = field(default_factory=dict)
    intended_use: str | None = None
    simulated: bool = False
    run_id: str = ""
    membrane_id: str | None = None  # None: a run recorded before membranes (the run is the lot)
    assignment: dict[str, Any] = field(default_factory=dict)
    #: How the run that made it ended, as `castrig runs` shows it (completed, crashed, aborted…):
    #: a filter build or co-culture set-up takes lots from completed runs only.
    run_outcome: str = "completed"
    #: When it was made (the end of its evaporation) on the wall clock, UTC: a night's fourth
    #: membrane is made hours after its run's ``started_utc`` (:func:`made_utc`).
    made_utc: str = ""

    def suits(self, use: str, required_grade: str | None = None) -> bool:
        grades = (required_grade,) if required_grade else SUITABLE_GRADES[use]
        return any(g in self.grades_met for g in grades)

    @property
    def uses(self) -> list[str]:
        return [u for u in USES if self.suits(u)]


def _running_elsewhere(run_id: str, run_dir: str, host: str) -> str:
    """A run that run.json records running on ``host``, not this computer, as lots and checks say it."""
    return (f"run {run_id} is recorded running on {host} (this computer cannot tell whether its process is alive), "
            f"its record not closed: wait for it to end there, or `castrig resume --take-over {run_dir}` if that "
            "process is gone")


def open_run_refusal(lot: Lot) -> str | None:
    """Why ``lot`` may not be used yet, or None: its run's record is not closed (no end written),
    so no record that uses it could say how the run that made it ended. One rule for ``lots
    assign`` and the filter and co-culture checks. A membrane judged before an abort or a fault
    is usable: its record was complete when it was judged, and the run's end is written."""
    if lot.run_outcome not in OPEN_RUN_OUTCOMES:
        return None
    host = recorded_elsewhere(Path(lot.run_dir)) if lot.run_outcome == "running" else None
    if host:  # only its own host judges it crashed: its lock may not show here
        return f"made by {_running_elsewhere(lot.run_id or lot.run_dir, lot.run_dir, host)}"
    how = (f"its process is gone and it was not resumed: `castrig resume {lot.run_dir}` closes its record "
           "(to the recipe's end, or abort it there)") if lot.run_outcome == "crashed" else "wait for it to end"
    return f"made by run {lot.run_id or lot.run_dir}, which is {lot.run_outcome}, its record not closed ({how})"


def _assignments(root: Path, *, checked: bool = True) -> dict[str, Any]:
    """``DATA/lots.json``: lot id -> its assignment, as :func:`assign_use` writes it. BadInput
    naming the file, the lot and the field for anything else (``checked``): a hand-edited value
    ended `lots`, `lots assign`/`unassign` and the filter check in a traceback, an
    ``intended_use`` of any text reached the exports, and ``"allow_simulated": "no"`` read as
    yes. ``checked=False``: as it is (:func:`unassign_use` removes a damaged entry)."""
    path = root / _ASSIGNMENTS
    if not (path.exists() or path.is_symlink()):
        return {}
    try:  # (a named pipe or a folder by that name is refused, not read as no assignments)
        data = loads(read_regular(path, max_bytes=_ASSIGNMENTS_MAX_BYTES).decode("utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInput(f"{path}: not valid JSON: {exc}", file=str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot be read ({getattr(exc, 'strerror', None) or exc})", file=str(path)) from None
    if not isinstance(data, dict):
        raise BadInput(f"{path}: holds a JSON {type(data).__name__}, not an object of lot id -> assignment "
                       "(as `castrig lots assign` writes it)", file=str(path))
    if checked:
        for lot_id, entry in data.items():
            why = _assignment_problem(entry)
            if why is not None:
                raise BadInput(f"{path}: lot {lot_id!r}: {why}; `castrig lots unassign {lot_id}` removes the entry",
                               file=str(path), field=f"{lot_id}")
    return data


#: The fields of an assignment (``lots.json``) and what each may hold.
_ASSIGNMENT_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "assigned_utc": ("a text (UTC time)", (str,)), "simulated": ("true or false", (bool,)),
    "allow_simulated": ("true or false", (bool,)), "membrane_id": ("a text or null", (str, type(None))),
    "run_id": ("a text", (str,)), "run_outcome": ("a text", (str,)),
}


def _assignment_problem(entry: Any) -> str | None:
    """What is wrong with one entry of ``lots.json``, or None."""
    if not isinstance(entry, dict):
        return f"the assignment is a JSON {type(entry).__name__}, not an object"
    use = entry.get("intended_use")
    if use not in USES:
        return f"intended_use = {json.dumps(use)[:60]} (allowed: one of {', '.join(USES)})"
    for name, (allowed, types) in _ASSIGNMENT_FIELDS.items():
        if name in entry and not isinstance(entry[name], types):
            return f"{name} = {json.dumps(entry[name])[:60]} (allowed: {allowed})"
    return None


def intended_uses(root: str | Path) -> dict[str, str]:
    """lot id -> intended use, as ``castrig lots assign`` recorded them under data root ``root``
    (``DATA/lots.json``; {} if there is none). BadInput naming the file if it is not JSON."""
    return {lot_id: str(a["intended_use"]) for lot_id, a in _assignments(Path(root)).items()
            if isinstance(a, dict) and a.get("intended_use")}


def made_utc(info: Any, t_s: Any) -> str:
    """When a membrane made at run time ``t_s`` (its ``t_end_s``) was made, on the wall clock (UTC,
    whole seconds), from the run's parts (run.json: each part's wall-clock start and run-clock
    ``t0_s``): on the rig's wall clock its part's start + (``t_s`` - ``t0_s``), never after that
    part's end; on the twin's virtual clock, where hours of run time pass in seconds, the start of
    the part it was made in. The run's start where the record says no more. Every lot of a night
    was said made at the night's start (``castrig lots``: 22:00 for a membrane made at 05:14)."""
    if isinstance(t_s, bool) or not isinstance(t_s, (int, float)) or not math.isfinite(t_s):
        return info.started_utc
    part = None
    for p in info.parts:  # in order: the last to start at or before t_s made it
        t0 = p.get("t0_s")
        if isinstance(t0, (int, float)) and not isinstance(t0, bool) and math.isfinite(t0) and t0 <= t_s:
            part = p
    started = parse_utc(part.get("started_utc")) if part is not None else None
    if started is None:
        return info.started_utc
    if not info.virtual_time:
        ended = parse_utc(part.get("ended_utc"))
        try:
            started += timedelta(seconds=t_s - float(part["t0_s"]))
        except OverflowError:  # (a hand-edited time of 1e300 s)
            return info.started_utc
        started = min(started, ended) if ended is not None else started
    return started.strftime("%Y-%m-%dT%H:%M:%SZ")


def scan_lots(root: str | Path | None) -> tuple[list[Lot], list[tuple[str, str]]]:
    """(lots, membranes that are not lots with the reason) under a data root, in the order of its
    runs (oldest first): one read of every run folder, for a caller that says both (``castrig lots``
    read them all twice, once for each list: 3 000 runs, ~4 s of its ~10 s of CPU)."""
    store = open_store(root)
    assigned = _assignments(store.root)
    lots: list[Lot] = []
    others: list[tuple[str, str]] = []
    for r in store.list_runs():
        # a damaged folder (or a copy of a run) is no lot, but what it holds is not known: said as
        # such, so an empty list is not read as "no lots" (`castrig runs` shows the folder)
        unreadable = f"its run folder {r.run_dir} cannot be read, so its membranes are not listed (`castrig runs` says why)"
        if r.outcome == "damaged":
            others.append((f"{r.run_id}-m*", unreadable))
            continue
        if r.outcome == MOVED_OUT:  # (not read: the data root does not own that folder)
            others.append((f"{r.run_id}-m*", f"{r.reason} (its membranes are not listed)"))
            continue
        try:
            # the folder itself, read only: a fleet store's recorder pushes the run's row as it
            # opens (a crashed run's row, closed by `castrig runs`, went back to running)
            rec = open_run_folder(Path(r.run_dir))
        except BadInput:
            others.append((f"{r.run_id}-m*", unreadable))
            continue
        try:
            membranes = rec.membranes()
            legacy_metrics = dict(rec.results().get("metrics") or {}) if not membranes else {}
            simulated_run = rec.info.seed is not None or bool(rec.info.virtual_time)
            info = rec.info
        except DamagedRun as exc:  # a row that cannot be read: this run's membranes unknown, the others listed
            others.append((f"{r.run_id}-m*", f"{unreadable}: {exc.reason}"))
            continue
        finally:
            rec.close()
        if not membranes:  # recorded before membranes: the run is the lot
            if r.outcome == "completed" and r.grades:
                a = assigned.get(r.run_id) or {}
                lots.append(Lot(r.run_id, r.run_dir, r.recipe_name, r.started_utc, list(r.grades), legacy_metrics,
                                a.get("intended_use"), simulated_run, r.run_id, None, a))
            continue
        host = recorded_elsewhere(Path(r.run_dir)) if r.outcome == "running" else None
        for mb in membranes:
            if mb.status == "lost":
                others.append((mb.membrane_id, f"lost: {mb.lost_reason}"))
            elif r.outcome == "running" and host:  # only its own host judges it crashed
                others.append((mb.membrane_id, f"its {_running_elsewhere(r.run_id, r.run_dir, host)}"))
            elif r.outcome == "running":
                others.append((mb.membrane_id, f"its run {r.run_id} is still running, its record not closed: wait for it "
                                               f"to end (`castrig status {r.run_dir}`)"))
            elif mb.status == "made" and (mb.process or {}).get("analysis_failed"):  # its images are in the run folder
                others.append((mb.membrane_id, f"not judged (made; its analysis failed: {mb.process['analysis_failed']}; "
                               f"the run's events say how to measure its images with castrig analyse membrane)"))
            elif mb.status == "made" and r.outcome == "completed":  # the recipe has no analyse of it: resume has nothing to do
                others.append((mb.membrane_id, "not judged (made; its recipe has no analyse of it after its cast, "
                               "and the run completed)"))
            elif mb.status == "made":  # evaporated under control, the run ended before its capture/analyse
                others.append((mb.membrane_id, f"not judged (made, not analysed: the run ended {r.outcome} before its "
                               f"capture/analyse; `castrig resume{' --after-abort' if r.outcome == 'aborted' else ''}` "
                               "images and judges it)"))
            elif mb.status != "judged":
                others.append((mb.membrane_id, f"not judged ({mb.status}; the run ended {r.outcome})"))
            elif not mb.grades_met:
                others.append((mb.membrane_id, "met no grade" + (f" (target {mb.target_grade})" if mb.target_grade else "")))
            else:
                lot_id = mb.lot_id or mb.membrane_id
                a = assigned.get(lot_id) or {}
                lots.append(Lot(lot_id, r.run_dir, r.recipe_name, r.started_utc, list(mb.grades_met), dict(mb.metrics or {}),
                                a.get("intended_use"), mb.simulated, r.run_id, mb.membrane_id, a, r.outcome,
                                made_utc(info, mb.t_end_s)))
    return lots, others


def list_lots(root: str | Path | None = None) -> list[Lot]:
    """The lots under a data root: judged membranes that met at least one grade."""
    return scan_lots(root)[0]


def not_lots(root: str | Path | None = None) -> list[tuple[str, str]]:
    """(membrane id, why it is not a lot) for every other membrane under a data root."""
    return scan_lots(root)[1]


def get_lot(lot_id: str, root: str | Path | None = None, *, file: str | None = None, field_name: str = "lot") -> Lot:
    """The lot with this id, or a BadInput naming the file, the field and the lots there are."""
    lots, others = scan_lots(root)
    for lot in lots:
        if lot.lot_id == lot_id:
            return lot
    where = f"{file}: " if file else ""
    why = next((reason for membrane_id, reason in others
                if membrane_id == lot_id or (membrane_id.endswith("-m*")  # (a run recorded before membranes: the run is its lot)
                                             and (lot_id.startswith(membrane_id[:-1]) or lot_id == membrane_id[:-3]))), None)
    if why is not None:  # a membrane that is not a lot (yet): say why, not "no such lot"
        raise BadInput(f"{where}{field_name} = {lot_id!r}: not a lot: {why} (allowed: a judged membrane that met a grade, "
                       "of a run that has ended; see `castrig lots`)", file=file, field=field_name)
    known = ", ".join(lot.lot_id for lot in lots[-5:]) or "none"
    raise BadInput(f"{where}{field_name} = {lot_id!r}: no such lot in {open_store(root).root} (lots are judged membranes that met a grade; "
                   f"latest: {known}; see `castrig lots`)", file=file, field=field_name)


@contextmanager
def _assignments_locked(root: str | Path | None) -> Iterator[Path]:
    """Hold ``DATA/lots.lock`` around a read-check-write of the assignments; yields the data root.

    Waits (up to :data:`LOCK_WAIT_S`) while another process assigns, then :class:`Busy` naming it.
    A lock that cannot be taken (a read-only data root, another user's) is a BadInput naming it
    and why. Taken only when there is something to write: the callers check the lot first.
    """
    store_root = open_store(root).root
    path = store_root / _LOCK
    deadline = time.monotonic() + LOCK_WAIT_S
    while True:
        try:
            oslock.acquire(path, purpose="castrig lots assign/unassign", what=f"the lot assignments ({store_root / _ASSIGNMENTS})")
            break
        except Busy as exc:
            holder = exc.holder
            if isinstance(holder, oslock.Holder) and oslock.process_stopped(holder.pid, holder.host):
                # a holder stopped (Ctrl-Z, SIGSTOP) lets go only once continued: waited for
                # silently for the whole minute, then refused; refused at once (the refusal says
                # it is STOPPED, and kill -CONT: oslock.Holder.describe)
                raise
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        except OSError as exc:
            raise BadInput(f"{path}: cannot take the lock on the lot assignments ({exc.strerror or exc}); "
                           "assigning and unassigning write to the data root", file=str(path)) from None
    try:
        yield store_root
    finally:
        oslock.release(path)


def assign_use(lot_id: str, use: str, root: str | Path | None = None, *, allow_simulated: bool = False) -> Lot:
    """Record a lot's intended use, after checking its grades, whether it is real, and that it
    has no other use (the policy of the module docstring); the check and the write are one step
    for every other process (``DATA/lots.lock``). The lot is checked before the lock is taken
    (an unknown lot, or the same use again, needs no write and no lock), and again under it."""
    if use not in USES:
        raise BadInput(f"--use {use!r}: unknown use (allowed: one of {', '.join(USES)})", field="--use")
    lot = _checked_for(lot_id, use, root, allow_simulated)
    if lot.intended_use == use:
        return lot  # the same use again: nothing changes
    with _assignments_locked(root) as store_root:
        lot = _checked_for(lot_id, use, root, allow_simulated)  # what another process wrote meanwhile
        if lot.intended_use == use:
            return lot
        data = _assignments(store_root)
        from castrig.store import utc_now_iso

        data[lot_id] = {"intended_use": use, "assigned_utc": utc_now_iso(), "simulated": lot.simulated,
                        "allow_simulated": bool(lot.simulated and allow_simulated), "membrane_id": lot.membrane_id,
                        "run_id": lot.run_id, "run_outcome": lot.run_outcome}
        atomic_write_json(store_root / _ASSIGNMENTS, data)
    lot.intended_use, lot.assignment = use, data[lot_id]
    return lot


def _checked_for(lot_id: str, use: str, root: str | Path | None, allow_simulated: bool) -> Lot:
    """The lot, if it may be given ``use`` (it may already have it), else BadInput saying why."""
    lot = get_lot(lot_id, root, field_name="LOT")
    refusal = open_run_refusal(lot)
    if refusal is not None:  # as the filter and co-culture checks refuse it: a use is for a lot whose run has ended
        raise BadInput(f"lot {lot_id}: {refusal} (allowed: a lot of a run that has ended)", field="LOT")
    if not lot.suits(use):
        raise BadInput(f"lot {lot_id}: grades met {', '.join(lot.grades_met)} do not suit {use} "
                       f"(allowed: one of {', '.join(SUITABLE_GRADES[use])})", field="--use")
    if lot.simulated and not allow_simulated:
        raise BadInput(f"lot {lot_id}: made on the digital twin (simulated), not a membrane for a {USES[use]}; "
                       "give --allow-simulated to assign it anyway (the record will say so)", field="--allow-simulated")
    if lot.intended_use and lot.intended_use != use:
        raise BadInput(f"lot {lot_id}: already assigned to {lot.intended_use}; a lot has one use ({' and '.join(USES)} "
                       f"exclude each other): `castrig lots unassign {lot_id}` first if that is really meant", field="--use")
    return lot


def unassign_use(lot_id: str, root: str | Path | None = None) -> Lot:
    """Remove a lot's intended use (deliberately, before giving it another). An unknown lot is
    refused, and a lot with no use left as it is, before the lock is taken (nothing to write)."""
    store_root = open_store(root).root
    if lot_id in (raw := _assignments(store_root, checked=False)) and _assignment_problem(raw[lot_id]) is not None:
        # a damaged entry (every other command refuses lots.json for it): removed, as asked
        with _assignments_locked(root) as store_root:
            data = _assignments(store_root, checked=False)
            if data.pop(lot_id, None) is not None:
                atomic_write_json(store_root / _ASSIGNMENTS, data)
    lot = get_lot(lot_id, root, field_name="LOT")
    if lot.lot_id in _assignments(store_root):
        with _assignments_locked(root) as store_root:
            data = _assignments(store_root)
            if data.pop(lot_id, None) is not None:
                atomic_write_json(store_root / _ASSIGNMENTS, data)
    lot.intended_use, lot.assignment = None, {}
    return lot
