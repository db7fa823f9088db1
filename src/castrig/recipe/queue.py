"""``castrig queue``: unattended production, one recipe after another — and resumable.

All recipes are validated against the profile before the first one starts, and so is what all the
runs together dispense from each pump: nobody refills a syringe during the night (there is no
refill step), so the queue's total (recipes × repetitions) must fit in its ``syringe_volume_ml``
(``--resume``: the runs left, against a syringe refilled before resuming). A run that fails on
its own (an interlock, a device fault, RH that would not settle) is recorded (its folder says why)
and the queue goes on — provided the rig was verified safe after it; if the safe state could not
be verified, nobody is there to look, so the queue stops. A run that faulted on a full disk stops
it too: every run left would fault as it starts (each recorded faulted, --resume never running
them); they stay pending, and a run that could not even make its folder runs again on --resume.
So does a run that could not make its folder for any other reason (a data root that refuses new
folders, no file left to open), and one refused for its profile (edited or gone since the queue
checked it; exit 2): every run left would fail the same way.

A run that was aborted on purpose stops the queue once the rig is safe: SIGTERM (``systemctl
stop``, a shutdown) or SIGHUP (the terminal closed) to the queue, ``castrig abort`` of its run,
the web page's abort, 'a' at the pause prompt. The next recipe is not started; the items not
started are recorded ``not run`` and stay pending, so ``castrig queue --resume`` runs them later.
The aborted run itself is recorded ``aborted`` and not resumed by the queue (``castrig resume
--after-abort`` continues it by hand) — except after SIGHUP, which nobody decided: that run stays
the queue's running item and ``--resume`` continues it. A SIGTERM or SIGHUP between two runs
stops the queue before the next one starts. Exit code 3.

Ctrl-Z does not suspend the queue, in a run (as ``castrig run``) or between two: a stopped queue
would keep the rig's lock and start none of the runs left, with nothing said. It says so, and
what stops it (Ctrl-C: the queue stops, interrupted; ``--resume`` goes on later).

The queue's state is ``DATA/queue-<stamp>.json``, written (atomically) before every run starts
and after it ends: one item per run to make (recipe, repetition, seed), each ``pending``,
``running`` (with its run folder once known) or ended with its outcome. After Ctrl-C or a crash
``castrig queue --resume DATA/queue-<stamp>.json`` skips the items that ended, resumes the one
that was running (``castrig resume`` of its folder, or runs it if it never got a folder) and runs
those that never started. A folder the queue was making when it died — ``run.json`` written,
``run.sqlite`` missing or empty, nothing else: no step ran, nothing was recorded — cannot be
resumed; it is removed (once the queue owns it) and its recipe runs afresh, the item's
``replaced`` saying which folder and why. The summary lists every item, also those that never ran
(``not run``), and says for each run how many of its membranes met their target grade (each its
own: its analyse step's grade, else the recipe's), per grade: ``claim1: 2 of 3 met``.

A recipe refused when its turn comes (edited, broken or removed since the queue checked it) is
recorded ``refused`` with the reason, before its rig is touched, and the queue goes on.

Exit code: 130 interrupted, 0 when every run completed, 2 when every run completed but a recipe
was refused, else 3 (also when an abort stopped it). A run that completed but missed
its target grade does not change it (the rig did what the recipe asked; the summary and
``castrig lots`` say what was made) — the summary's ``target`` column says ``claim1: 0 of 1 met``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from rich.markup import escape
from rich.table import Table

from castrig import oslock
from castrig.atomic import atomic_write_json, remove_dead_temporaries
from castrig.errors import BadInput, Busy, RigUnreachable
from castrig.jsontext import loads
from castrig.printable import Console
from castrig.recipe.display import say, status_every_s
from castrig.recipe.compat import check_queue_syringes, check_recipe_for_profile, dispensed_ml
from castrig.recipe.membranes import target_column, target_summary
from castrig.recipe.model import Recipe, load_recipe
from castrig.recipe.runner import RunResult
from castrig.recipe.session import (NO_RUN_FOLDER, ResumeNotRecorded, StopRequest, is_disk_full_text, needs_after_abort, resume_run,
                                    run_recipe, stop_requests)
from castrig.rig.not_suspended import not_suspended
from castrig.rig.profile import load_profile
from castrig.store import data_root as resolve_root
from castrig.store import CannotMakeRunFolder, runjson
from castrig.store.base import RunInfo
from castrig.store.folders import remove_never_started

_ENDED = ("completed", "aborted", "faulted", "not_resumable", "refused")
#: What an item of a queue's state file holds, and what each field may be (--resume checks them).
_ITEM_FIELDS: dict[str, tuple[str, tuple[type, ...]]] = {
    "recipe": ("a recipe file's path", (str,)), "seed": ("a whole number", (int,)),
    "status": ("one of pending, running, " + ", ".join(_ENDED), (str,)),
    "run_dir": ("a run folder's path or null", (str, type(None))),
}


def run_queue(
    recipes: list[Path],
    *,
    repeat: int,
    profile: Path,
    data_root: Path | None,
    seed: int | None,
    operator: str,
) -> int:
    status_every_s()  # $CASTRIG_STATUS_EVERY_MIN refused (exit 2) before the queue's state file exists
    for path in recipes:
        # each recipe is read again at every repetition and by `queue --resume`, maybe days later:
        # a pipe (`<(cat recipe.yaml)`) would be empty by then, and its /dev/fd name meaningless
        if not Path(path).is_file():
            kind = "a folder" if Path(path).is_dir() else "not a regular file (a pipe?)" if Path(path).exists() else "missing"
            raise BadInput(f"{path}: {kind}; castrig queue reads each recipe again for every repetition and on "
                           f"--resume, so it needs recipe files (castrig run takes a pipe)", file=str(path), field="RECIPE")
    prof = load_profile(profile)
    volumes = {}
    for path in recipes:
        recipe = load_recipe(path)
        check_recipe_for_profile(recipe, Path(path), prof, Path(profile))
        volumes[str(path)] = dispensed_ml(recipe)
    # the whole night without a refill: every run's volumes together, per pump
    check_queue_syringes([(str(path), volumes[str(path)]) for _ in range(repeat) for path in recipes], prof, Path(profile))
    base_seed = prof.sim.seed if seed is None else seed
    root = resolve_root(data_root or prof.store)
    root.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S")
    try:
        state_path = _new_state_path(root, stamp)
    except OSError as exc:  # its lock's holder record cannot be written: a full disk
        why = escape(exc.strerror or str(exc))
        Console(stderr=True).print(f"[bold red]error:[/] cannot start a queue in {escape(str(root))} ({why}): nothing started, "
                                   "the rig not touched; free space first", highlight=False, soft_wrap=True)
        return 3
    # whole paths: `queue --resume` runs from wherever cron or the next operator starts it
    items = [{"recipe": str(Path(path).absolute()), "repeat": rep + 1, "seed": base_seed + k, "status": "pending", "run_dir": None,
              "outcome": None}
             for k, (rep, path) in enumerate((rep, path) for rep in range(repeat) for path in recipes)]
    state = {"profile": str(Path(profile).absolute()), "data": str(Path(data_root).absolute()) if data_root else None,
             "operator": operator,
             "created_utc": _now(), "items": items, "runs": [], "stopped": None}
    try:
        return _work(state, state_path, Path(state["profile"]), Path(state["data"]) if state["data"] else None)
    finally:
        oslock.release(_lock_of(state_path))


def _new_state_path(root: Path, stamp: str) -> Path:
    """``DATA/queue-<stamp>.json`` for a new queue, owned (its lock taken) by this process: two
    queues started in the same second on one data root get ``-2``, ``-3``… rather than one file."""
    for k in range(1, 1000):
        path = root / f"queue-{stamp}{'' if k == 1 else f'-{k}'}.json"
        if path.exists():
            continue
        try:
            oslock.acquire(_lock_of(path), purpose=f"castrig queue {path.name}", what=f"queue {path}")
        except Busy:
            continue
        if not path.exists():  # (made by another queue between the look and the lock)
            return path
        oslock.release(_lock_of(path))
    raise BadInput(f"{root}: a thousand queues started in the second {stamp}: no name left for another", file=str(root))


#: Far above any state file a queue writes (a few KB an item).
STATE_MAX_BYTES = 64 << 20


def read_state_text(state_path: str | Path) -> str:
    """A queue state file's text: a regular file, bounded (a named pipe given as the state file
    waited for ever on its open; :class:`~castrig.regular.NotRegularFile`, an OSError, instead)."""
    from castrig.regular import read_regular

    return read_regular(state_path, max_bytes=STATE_MAX_BYTES).decode("utf-8")


def resume_queue(state_path: Path) -> int:
    """Go on with a queue from its state file (``DATA/queue-<stamp>.json``)."""
    state_path = Path(state_path).absolute()  # the run folders and the resume line it prints hold wherever cron starts
    status_every_s()  # $CASTRIG_STATUS_EVERY_MIN refused (exit 2) before the queue is owned or read
    if not state_path.exists():
        raise BadInput(f"--resume {state_path}: not a queue state file (DATA/queue-*.json): no such file", file=str(state_path))
    with _owned(state_path, "castrig queue --resume"):  # before its state is read: the owner may be writing it
        remove_dead_temporaries(state_path.parent, state_path.name)  # what a kill -9 mid-write left of it
        try:
            state = loads(read_state_text(state_path))
            state["items"]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise BadInput(f"--resume {state_path}: not a queue state file (DATA/queue-*.json): {exc}", file=str(state_path)) from None
        _check_items(state, state_path)
        state["stopped"] = None
        data_root = Path(state["data"]) if state.get("data") else state_path.parent
        _check_syringes_left(state, state_path)
        return _work(state, state_path, Path(state["profile"]), data_root)


def _check_items(state: Any, state_path: Path) -> None:
    """BadInput naming the file, the item and the field where a queue's state file holds what no
    queue writes (a hand edit: ``items: [5]``, an item without its status or recipe, a seed "abc"
    ended --resume in AttributeError, KeyError and TypeError tracebacks)."""
    items = state.get("items") if isinstance(state, dict) else None
    if isinstance(state, dict) and not isinstance(state.get("data"), (str, type(None))):
        # (``"data": [1]`` ended --resume in a TypeError traceback)
        raise BadInput(f"--resume {state_path}: data = {json.dumps(state['data'])[:60]} (allowed: the data root's path "
                       "or null, as castrig queue writes it)", file=str(state_path), field="data")
    if not isinstance(items, list):
        raise BadInput(f"--resume {state_path}: not a queue state file (DATA/queue-*.json): items is not a list",
                       file=str(state_path), field="items")
    for n, item in enumerate(items, 1):
        if not isinstance(item, dict):
            raise BadInput(f"--resume {state_path}: items[{n}] is a JSON {type(item).__name__}, not an item "
                           "(as castrig queue writes it)", file=str(state_path), field=f"items[{n}]")
        for name, (allowed, types) in _ITEM_FIELDS.items():
            value = item.get(name)
            bad = (name not in item and name != "run_dir") or not isinstance(value, types) or isinstance(value, bool) \
                or (name == "status" and value not in ("pending", "running", *_ENDED))
            if bad:
                raise BadInput(f"--resume {state_path}: items[{n}].{name} = {json.dumps(value)[:60]} (allowed: {allowed})",
                               file=str(state_path), field=f"items[{n}].{name}")


def _lock_of(state_path: Path) -> Path:
    """``queue-<stamp>.lock`` beside the queue's state: who holds it owns the queue."""
    return state_path.with_suffix(".lock")


@contextmanager
def _owned(state_path: Path, purpose: str) -> Iterator[None]:
    """The queue owned by this process while it works (``queue-<stamp>.lock`` beside its state, an
    OS lock: it goes with the process). A `queue --resume` started while the queue still ran was
    refused only while a run's folder was held; between two runs it ran the same items again, in
    parallel — casts made twice. Now it is :class:`Busy` (exit 4) before it reads or writes anything."""
    lock = _lock_of(state_path)
    oslock.acquire(lock, purpose=f"{purpose} {state_path.name}", what=f"queue {state_path}")
    try:
        yield
    finally:
        oslock.release(lock)


def _check_syringes_left(state: dict[str, Any], state_path: Path) -> None:
    """What the items left to run dispense together must fit in each syringe (BadInput if not):
    the item that was running counts with its steps not yet done (from its folder's journal), the
    items not started with their whole recipe. Against a full syringe: whoever resumes the queue
    may have refilled it (the message says to). An item whose recipe cannot be read is not
    counted here; it fails on its own when the queue reaches it, as before."""
    runs: list[tuple[str, dict[str, float]]] = []
    for item in state["items"]:
        if item.get("status") in _ENDED:
            continue
        try:
            run_dir = Path(item["run_dir"]) if item.get("status") == "running" and item.get("run_dir") else None
            if run_dir is not None and runjson.present(run_dir):  # (not a regular file: not counted, below)
                recipe = Recipe.model_validate(runjson.load(run_dir)["recipe"])
                runs.append((str(item["recipe"]), dispensed_ml(recipe, _steps_not_done(run_dir, len(recipe.steps)))))
            else:
                runs.append((str(item["recipe"]), dispensed_ml(load_recipe(item["recipe"]))))
        except (BadInput, OSError, ValueError, KeyError, TypeError):
            continue
    if runs:
        check_queue_syringes(runs, load_profile(Path(state["profile"])), Path(state["profile"]), resumed=True)


def _steps_not_done(run_dir: Path, n: int) -> set[int]:
    from castrig.store import SqliteRunStore

    try:
        with SqliteRunStore(run_dir.parent).open_run(run_dir) as rec:
            done = {e.step_index for e in rec.journal() if e.state == "done"}
    except Exception:  # noqa: BLE001 - an unreadable folder: count all its steps
        done = set()
    return set(range(n)) - done


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class _DamagedRun(Exception):
    """A folder that may be the item's run, whose run.json cannot be read: the queue stops (cast
    again, a run that had dispensed would dispense twice)."""

    def __init__(self, run_dir: Path, why: Exception):
        super().__init__(f"cannot resume {run_dir}: {run_dir / 'run.json'}: {why}; mend or remove the folder, "
                         "then resume the queue")


def _run_info(run_dir: Path) -> dict[str, Any]:
    """The item's run.json (:class:`_DamagedRun` if there is one that cannot be read)."""
    try:
        info = runjson.load(run_dir)
    except (OSError, ValueError) as exc:
        raise _DamagedRun(run_dir, exc) from None
    if not isinstance(info, dict):
        raise _DamagedRun(run_dir, ValueError("not a JSON object"))
    return info


def _find_run_dir(root: Path, item: dict[str, Any]) -> Path | None:
    """The run folder an item started (it died before the queue could write it down).
    :class:`_DamagedRun` when none is found but a folder changed since the item started holds a
    run.json that cannot be read: it may be the item's."""
    found, unreadable = [], []
    since = _epoch(item.get("started_utc")) - 2.0
    for info_path in root.glob("*/run.json"):
        try:
            info = _run_info(info_path.parent)
        except _DamagedRun as exc:
            try:
                if info_path.parent.stat().st_mtime >= since:
                    unreadable.append(exc)
            except OSError:
                pass
            continue
        if RunInfo.field_error(info) is not None:
            continue  # a damaged run.json (a field of the wrong type): not the item's run to resume
        if info.get("recipe_path") == item["recipe"] and info.get("seed") in (item["seed"], None) \
                and info.get("started_utc", "") >= (item.get("started_utc") or ""):
            found.append((info.get("started_utc", ""), info_path.parent))
    if not found and unreadable:
        raise unreadable[0]
    return sorted(found)[0][1] if found else None


def _epoch(utc: str | None) -> float:
    """Seconds since the epoch of a time the queue wrote (:func:`_now`); 0 if there is none."""
    try:
        return datetime.fromisoformat(str(utc).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return 0.0


def _replace_never_started(run_dir: Path, item: dict[str, Any], save: Callable[[], None]) -> bool:
    """Remove ``run_dir`` if it never started (owning it first: :class:`Busy` if its maker lives);
    note it in ``item["replaced"]`` and ``save`` the queue's state first, so that a queue dying
    during the removal finds the item without a folder, not a folder half gone. False (nothing
    done) if it holds a record after all."""
    def note(why: str) -> None:
        item.setdefault("replaced", []).append({"run_dir": str(run_dir), "reason": f"never started ({why}; nothing recorded)",
                                                "replaced_utc": _now()})
        item["run_dir"] = None
        save()

    why = remove_never_started(run_dir, purpose=f"castrig queue --resume: replacing {run_dir}", before=note)
    if why is None:
        return False
    Console(stderr=True).print(f"{escape(str(run_dir))}: never started ({escape(why)}; the queue died while making it, nothing "
                               f"recorded): removed, {escape(Path(item['recipe']).name)} runs afresh", highlight=False, soft_wrap=True)
    return True


#: What to do before ``--resume`` when a run could not make its folder for a reason other than a full disk.
_MAKE_ROOM = "make the data root take run folders again first"

#: Why a queue is not suspended between its runs either (Ctrl-Z, rig.not_suspended).
_HOLDS_THE_RIG = ("castrig queue is not suspended, between its runs either (it owns the rig for the night: "
                  "stopped, it would hold the rig and start none of the runs left, with nothing said)")


def _work(state: dict[str, Any], state_path: Path, profile: Path, data_root: Path | None) -> int:
    # SIGTERM or SIGHUP outside a run (its report being written, the next run's rig being opened)
    # stops the queue before it starts another run; during a run the run's handlers abort it and
    # note the stop in the same StopRequest, so the queue stops after it too. Ctrl-Z suspends
    # the queue neither in a run (the run's handlers) nor between two: a stopped queue kept the
    # rig's lock, and the night's runs silently waited for a `fg`
    what_stops_it = ("Ctrl-C stops the queue (castrig queue --resume goes on later); a queue meant to go on without "
                     "this terminal is started under nohup or tmux")
    with stop_requests("the queue") as stop, \
            not_suspended(lambda text: say(f"[yellow]{escape(text)}[/]"), what_stops_it, why=_HOLDS_THE_RIG):
        stop.exit_code = _work_items(state, state_path, profile, data_root, stop)  # every run and the state file written:
        return stop.exit_code  # a SIGTERM from here to the process's end keeps the code (session.keep_exit_code)


def _work_items(state: dict[str, Any], state_path: Path, profile: Path, data_root: Path | None, stop: StopRequest) -> int:
    root = state_path.parent
    operator = state.get("operator", "")
    stop_code = 0  # the exit code of a stop before the items ran (5 rig not reachable, 4 busy, 2 a damaged run folder)
    try:
        _save(state_path, state)
    except _StateUnwritable as exc:
        if not state_path.exists():  # a new queue: nothing started, nothing to go on with
            Console(stderr=True).print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
            return 3
        state["stopped"], stop_code = str(exc), 3
    frames: dict[str, list[tuple[str, dict[str, Any]]]] = {}  # run folder -> its camera frames, read once
    for n, item in enumerate(state["items"] if not state["stopped"] else ()):
        if item["status"] in _ENDED:
            continue
        if stop.reason:
            state["stopped"] = f"{stop.reason}: queue stopped before {Path(item['recipe']).name} started"
            break
        result: RunResult | None = None
        try:
            if item["status"] == "running":  # crashed or interrupted while it ran: resume its folder
                try:
                    run_dir = Path(item["run_dir"]) if item.get("run_dir") else _find_run_dir(root, item)
                    if run_dir is not None and not runjson.present(run_dir):
                        run_dir = item["run_dir"] = None  # gone (a replacement cut short): it never got a folder
                    info = _run_info(run_dir) if run_dir is not None else {}
                except _DamagedRun as exc:  # a damaged run, not one never made: the item stays 'running'
                    state["stopped"] = str(exc)
                    stop_code = 2
                    break
                if run_dir is not None:
                    item["run_dir"] = str(run_dir)
                    try:
                        replaced = info.get("outcome") != "completed" and _replace_never_started(
                            run_dir, item, lambda: _save(state_path, state))
                    except Busy as exc:  # its maker is alive after all: the item stays 'running'
                        state["stopped"] = f"cannot resume {run_dir}: {exc}"
                        stop_code = 4
                        break
                    if replaced:
                        item["run_dir"] = None  # result stays None: the recipe runs afresh below
                    elif info.get("outcome") == "completed" or needs_after_abort(info.get("outcome"), info.get("outcome_reason")):
                        # it ended (or someone aborted it); the queue died before noting it
                        result = RunResult(info["outcome"], info.get("outcome_reason"), run_dir=str(run_dir),
                                           membranes=_membranes(run_dir))
                    else:
                        try:
                            result = resume_run(run_dir, quiet=True, stop=stop, camera_taken=_camera_frames(state["items"][:n], frames))
                        except (RigUnreachable, Busy, ResumeNotRecorded) as exc:  # the item stays 'running': --resume retries it
                            state["stopped"] = f"cannot resume {run_dir}: {exc}"
                            stop_code = 5 if isinstance(exc, RigUnreachable) else 4 if isinstance(exc, Busy) else 3
                            break
                        except BadInput as exc:
                            # refused with the rig made safe and nothing recorded (its steps left beyond
                            # what the rig reaches now): as a recipe refused at its turn, the queue goes
                            # on; the item keeps its folder, which a person resumes once the rig can
                            # (the queue stopped with its state unsaved, the rest of the night unrun)
                            item.update(status="refused", outcome="refused", reason=str(exc), ended_utc=_now())
                            _save(state_path, state)
                            Console(stderr=True).print(f"[bold red]refused:[/] {escape(str(exc))}; the queue goes on",
                                                       highlight=False, soft_wrap=True)
                            continue
                        result.membranes = result.membranes or _membranes(run_dir)
            if result is None:
                item.update(status="running", started_utc=_now())
                _save(state_path, state)
                try:
                    result = run_recipe(Path(item["recipe"]), profile, data_root=data_root, seed=item["seed"], operator=operator,
                                        quiet=True, stop=stop, camera_taken=_camera_frames(state["items"][:n], frames))
                except (RigUnreachable, Busy) as exc:  # nothing ran, no folder: pending again, --resume runs it
                    item.update(status="pending", started_utc=None)
                    state["stopped"] = f"{item['recipe']} not started: {exc}"
                    stop_code = 5 if isinstance(exc, RigUnreachable) else 4
                    break
                except CannotMakeRunFolder as exc:
                    # the data root takes no folder now (its permissions changed, remounted read-only):
                    # every run left would be refused the same way -- it was called a broken recipe and
                    # the queue went on, spending the night's recipes. Stopped as for a full disk
                    item.update(status="pending", started_utc=None)
                    state["stopped"] = (f"{Path(item['recipe']).name} not started: {exc}: queue stopped, the recipes left "
                                        f"pending ({_MAKE_ROOM})")
                    stop_code = 3
                    break
                except BadInput as exc:
                    if _names_the_profile(exc, profile):
                        # the queue's profile, edited or gone since the queue checked it: every run left
                        # is refused the same way -- each was, the queue going on until none was left
                        item.update(status="pending", started_utc=None)
                        state["stopped"] = (f"{Path(item['recipe']).name} not started: {exc}: queue stopped, the "
                                            "recipes left pending (correct the profile first)")
                        stop_code = 2
                        break
                    # refused before its rig was touched (its recipe edited, broken or gone since the
                    # queue checked it): recorded, and the queue goes on with the next one, as after
                    # a run that failed on its own (it stopped the queue, the item left running)
                    item.update(status="refused", outcome="refused", reason=str(exc), run_dir=None, ended_utc=_now())
                    _save(state_path, state)
                    # said as it happens, as `castrig run` says it (the queue's exit 2 had no reason
                    # but in the state file)
                    Console(stderr=True).print(f"[bold red]refused:[/] {escape(str(exc))}; the queue goes on",
                                               highlight=False, soft_wrap=True)
                    continue
            full = result.outcome == "faulted" and is_disk_full_text(result.reason or "")
            if result.run_dir == NO_RUN_FOLDER:  # nothing ran: pending again, --resume runs it
                # (whatever kept the folder from being made -- a full disk, a data root that refuses
                # folders, no file left to open -- the next run meets it too: the queue stops)
                item.update(status="pending", started_utc=None)
                state["stopped"] = (f"{Path(item['recipe']).name} not started: {result.reason}: queue stopped, the recipes "
                                    f"left pending ({'free space first' if full else _MAKE_ROOM})")
                stop_code = 3
                break
            _record(item, result)
            _save(state_path, state)
            if result.outcome == "interrupted" or stop.ctrl_c:  # (ctrl_c: as its rig was closed, the run recorded)
                state["stopped"] = "interrupted by the operator"
            elif result.safe is not None and not result.safe.safe:
                state["stopped"] = f"safe state not verified after {result.run_dir}: queue stopped"
            elif result.outcome == "aborted" and result.asked:  # on purpose: the queue stops, the rig safe
                state["stopped"] = f"{result.run_dir} aborted ({result.reason}): queue stopped, the rig left safe"
            elif full:  # every run left would fault as it starts: the queue stops, they stay pending
                state["stopped"] = f"{result.run_dir}: {result.reason}: queue stopped (free space first)"
            elif stop.reason:  # a signal while the run ended (or its report was written)
                state["stopped"] = f"{stop.reason}: queue stopped after {result.run_dir}"
            if state["stopped"]:
                break
        except _StateUnwritable as exc:  # (outside a run: the rig closed) the file keeps what it said before
            if result is None and item["status"] == "running" and not item.get("run_dir"):
                item.update(status="pending", started_utc=None)  # not started: the state file says so too
            state["stopped"], stop_code = str(exc), 3
            break
        except KeyboardInterrupt:  # Ctrl-C outside a run (as one ended, or the next one's rig opening):
            # the run that ended is recorded and the queue's state written as for a stop, with the
            # way to go on (it said only "interrupted", its item left running with no folder)
            if result is not None and item.get("status") == "running":
                _record(item, result)
            state["stopped"] = "interrupted by the operator"
            break
    state["runs"] = [i for i in state["items"] if i["status"] != "pending"]  # (kept for readers of older summaries)
    for item in state["items"]:
        if item["status"] == "pending":
            item["outcome"] = "not run"
    try:
        _save(state_path, state)
    except _StateUnwritable as exc:
        state["stopped"] = state["stopped"] or str(exc)
        stop_code = stop_code or 3
    _print_summary(state, state_path)
    if state["stopped"]:
        Console(stderr=True).print(f"[red]{escape(state['stopped'])}[/] — go on with: castrig queue --resume "
                                   f"{escape(str(state_path))}", highlight=False, soft_wrap=True)  # (a path a script greps for: never wrapped)
    if state["stopped"] == "interrupted by the operator":
        return 130
    if stop_code:
        return stop_code
    if all(i["outcome"] in ("completed", "refused") for i in state["items"]) and any(i["outcome"] == "refused" for i in state["items"]):
        return 2  # every run that could start completed; a recipe was refused (bad input)
    return 0 if all(i["outcome"] == "completed" for i in state["items"]) else 3


def _names_the_profile(exc: BadInput, profile: Path) -> bool:
    """Whether ``exc`` is about the queue's profile file (every run of the queue uses it)."""
    try:
        return exc.file is not None and Path(exc.file).resolve() == Path(profile).resolve()
    except (OSError, RuntimeError, ValueError):
        return False


class _StateUnwritable(Exception):
    """The queue's state file cannot be written (a full disk): the queue stops between two runs
    (exit 3), the file as last written, the way to go on said -- it raised out of the queue as a
    traceback, the summary unsaid."""

    def __init__(self, state_path: Path, exc: OSError):
        super().__init__(f"cannot write the queue's state {state_path} ({exc.strerror or exc}): the queue stopped, no run "
                         "under way, the rig safe; free space first")


def _save(state_path: Path, state: dict[str, Any]) -> None:
    try:
        atomic_write_json(state_path, state)
    except OSError as exc:
        raise _StateUnwritable(state_path, exc) from None


def _camera_frames(items: list[dict[str, Any]], read: dict[str, list[tuple[str, dict[str, Any]]]]
                   ) -> list[tuple[str, dict[str, Any]]]:
    """The frames the camera gave the queue's runs so far, in order (``(illumination, metadata)``
    as each run stored them): the rig is opened anew for every run, and a folder camera started
    its folder over at each, so every run of a night judged its first membrane on the first
    run's micrograph. ``read``: the folders read so far (each is read once, not at every run of
    a 1000-run queue). A run folder that cannot be read gives none."""
    from castrig.store import SqliteRunStore

    out: list[tuple[str, dict[str, Any]]] = []
    for item in items:
        run_dir = item.get("run_dir")
        if not run_dir:
            continue
        if run_dir not in read:
            try:
                with SqliteRunStore(Path(run_dir).parent).open_run(Path(run_dir)) as rec:
                    read[run_dir] = [(im.illumination, im.metadata) for im in rec.images()]
            except Exception:  # noqa: BLE001 - a summary never stops on one unreadable folder (as _membranes)
                read[run_dir] = []
        out += read[run_dir]
    return out


def _membranes(run_dir: Path) -> list[dict[str, Any]]:
    from castrig.store import SqliteRunStore

    try:
        with SqliteRunStore(run_dir.parent).open_run(run_dir) as rec:
            return [mb.to_dict() for mb in rec.membranes()]
    except Exception:  # noqa: BLE001 - a summary never stops on one unreadable folder
        return []


def _record(item: dict[str, Any], result: RunResult) -> None:
    verdict = result.verdict or {}
    targets = result.targets or next((mb.get("target_grade") for mb in result.membranes if mb.get("target_grade")),
                                     verdict.get("target_grade"))
    line, ok = target_summary(result.membranes, targets)
    # the run's target grade(s), in cast order ("claim1", or "claim3,claim1" when membranes differ)
    target = ",".join(dict.fromkeys(g for g in result.targets.values() if g)) or None if result.targets else targets
    report = None
    run_dir = result.run_dir
    if run_dir == NO_RUN_FOLDER:  # nothing ran: what happened, not a report that failed on "(no run folder)"
        report, run_dir = f"no folder made: {result.reason}", None
    elif run_dir:
        try:
            from castrig.report import build_report

            report = str(build_report(Path(result.run_dir)))
        except Exception as exc:  # noqa: BLE001 - a report failing must never stop production
            report = f"report failed: {exc}"
    grades = sorted({g for mb in result.membranes for g in (mb.get("grades_met") or [])}) or verdict.get("grades_met", [])
    # an interrupted run (Ctrl-C), or one aborted because its terminal hung up (nobody decided it),
    # is the one `--resume` goes on with: it stays "running"
    goes_on = result.outcome == "interrupted" or (result.outcome == "aborted" and not needs_after_abort(result.outcome, result.reason))
    item.update(status="running" if goes_on else result.outcome, outcome=result.outcome, reason=result.reason, run_dir=run_dir,
                grades_met=grades, target_grade=target, target_met=ok, membranes=line,
                target=target_column(result.membranes, targets) or None,
                safe=None if result.safe is None else result.safe.safe, report=report, ended_utc=_now())


def _print_summary(state: dict[str, Any], state_path: Path) -> None:
    items = state["items"]
    table = Table(title=f"queue summary ({len(items)} runs) — {state_path}")
    for col in ("#", "recipe", "outcome", "target", "membranes", "report"):
        table.add_column(col)
    for i, r in enumerate(items, 1):
        # per target grade, how many met it ("claim1: 2 of 3 met"), as `castrig runs --grade` counts
        # a run (listed when some membrane met the grade); a summary from before says met / NOT met
        target = r.get("target") or ("—" if not r.get("target_grade") else
                                     f"{r['target_grade']} {'met' if r.get('target_met') else 'NOT met'}")
        table.add_row(str(i), Path(str(r["recipe"])).name, str(r["outcome"]), target if r["outcome"] != "not run" else "—",
                      str(r.get("membranes") or "—"), str(r.get("report") or r.get("run_dir") or "—"))
    Console(width=220, markup=False).print(table)  # recipe file names as written, never markup
