"""Exploration on many workers: the study lives in Optuna's storage, and workers take trials from it.

Why Optuna's own distributed optimisation (and not a task queue or a scheduler of our own): the
search already is an Optuna study, and Optuna's storages are exactly a shared, transactional
record of trials with the states a distributed search needs (``WAITING`` → ``RUNNING`` →
``COMPLETE``/``FAIL``), an atomic hand-out of queued trials (``enqueue_trial`` + ``ask``), samplers
that know other workers' running trials (TPE's ``constant_liar``), heartbeats for dead workers and
:class:`optuna.storages.RetryHeartbeatStaleTrialCallback` to run their trials again. Nothing else needs to
run: no broker, no scheduler, no result back-end.

Two storages, chosen by ``--storage``:

- none, or a file path / ``journal:PATH``: Optuna's :class:`~optuna.storages.JournalStorage` over
  an append-only file (``FOLDER/study.journal``) — one machine, no database; every process
  replays the same log. Its workers hold an OS lock (``FOLDER/workers/<id>.lock``, released by
  the kernel however a worker dies), and a ``RUNNING`` trial whose worker's lock is free is failed
  and retried at once; journal storage has no heartbeat of its own, so the lock file's time is
  the worker's (touched every ``HEARTBEAT_S``): one stopped past ``GRACE_S`` is stale too.
- ``postgresql://…`` (the fleet store's server) or any SQLAlchemy URL: Optuna's
  :class:`~optuna.storages.RDBStorage`, with ``heartbeat_interval`` and ``grace_period``: a worker on
  another machine that stops beating is failed by the next worker that looks
  (:func:`optuna.storages.fail_stale_trials`), and retried by the same callback.

Counting: a trial is counted when it is ``COMPLETE``; a failed trial's retry is a new trial with
its parameters (and ``retry_of``), so a killed worker loses nothing and no point is counted twice
(a stale worker that finishes after its trial was failed cannot ``tell`` it again: Optuna refuses
to update a finished trial, and its result is dropped, with a line saying so). The study's settings are a study user
attribute, so ``castrig explore worker --storage URL --study NAME`` needs nothing else, and a study
is resumed from the storage alone.

Search trials on several workers are proposed by TPE with ``constant_liar`` (running trials count
as bad until told), so they are not reproducible run to run the way the one-process search is;
each trial's twin run is (its seed is recorded).
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import re
import signal
import socket
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from castrig.envvars import whole_number
from castrig.errors import BadInput
from castrig.explore.gridmap import finite_point
from castrig.jsontext import loads
from castrig.explore.journal import SearchSettings
from castrig.explore.objective import Outcome, score_run
from castrig.explore.optimiser import N_STARTUP, _optuna
from castrig.explore.search import RunOutput, TrialRunner, template_point, twin_runner
from castrig.explore.space import apply_point, profile_for
from castrig.recipe.model import NAME_MAX as RECIPE_NAME_MAX
from castrig.redact import redact_url, scrub
from castrig.rig.profile import Profile

SETTINGS_ATTR = "castrig_settings"
KIND_ATTR = "castrig_kind"  # "search" or "map"
#: RDB heartbeat: a worker beats every HEARTBEAT_S; one silent for GRACE_S is failed and retried.
#: ``CASTRIG_EXPLORE_HEARTBEAT_S`` sets the beat (the grace is four beats), e.g. for tests.
HEARTBEAT_S = whole_number("CASTRIG_EXPLORE_HEARTBEAT_S")  # (checked as the castrig command starts)
GRACE_S = 4 * HEARTBEAT_S
#: A trial RUNNING without a worker mark for this long is stale (killed between ask and mark).
UNMARKED_GRACE_S = 60.0
MAX_RETRY = 3
#: A worker gives up after this many trials that raised (a broken installation, not a busy store).
MAX_ERRORS = 20


# -- storage ------------------------------------------------------------------------------------
#: libpq's keyword/value connection string ("host=db dbname=fleet password=…"), not a path
_CONNINFO_KEYS = re.compile(r"(?:^|\s)(?:host|hostaddr|dbname|user|password|port|sslmode)\s*=", re.IGNORECASE)


def is_rdb_url(url: str) -> bool:
    return "://" in url and not url.startswith("file://")


def storage_url(url: str | None, folder: Path | None) -> str:
    """The storage a study lives in: the URL given, else the journal file in ``folder``.

    A journal file given (``journal:FILE`` or a path) must be in a folder that exists: its folder
    was made, so a typo in a shared mount's path (``/mnt/shraed/…``) became a study on this
    machine's disk that no worker elsewhere sees, exit 0; a SQLite URL there is refused already."""
    if url:
        path = journal_path(url)
        if path is not None and path.name and not _CONNINFO_KEYS.search(url) and not path.parent.is_dir():
            raise BadInput(f"--storage {redact_url(url)}: the journal's folder {path.parent} does not exist (workers on other "
                           "machines join a journal in a folder they all mount: make it, or correct the path; allowed: "
                           "journal:FILE in an existing folder, postgresql://USER@HOST/DB or another SQLAlchemy URL)",
                           field="--storage")
        return url
    if folder is None:
        raise BadInput("--storage URL or --folder DIR is needed (where the study lives)", field="--storage")
    return f"journal:{Path(folder).absolute() / 'study.journal'}"


def open_storage(url: str, *, existing_study: str | None = None):  # type: ignore[no-untyped-def]
    """An Optuna storage for ``url`` (``journal:PATH``, a file path, or an SQLAlchemy URL), or
    :class:`BadInput` naming ``--storage`` when it cannot be opened (an unknown scheme, a database
    in a folder that does not exist, a server that refuses): exit 2, not SQLAlchemy's traceback.
    ``existing_study``: only to read that study (a worker joining it): a journal file that is not
    there is "no study", refused before its folder or the file is made."""
    optuna = _optuna()
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    allowed = "allowed: postgresql://USER@HOST/DB, another SQLAlchemy URL whose database can be opened, journal:FILE or a file path"
    if is_rdb_url(url):
        given = redact_url(url)
        if url.startswith("postgresql://") or url.startswith("postgres://"):
            url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, the fleet store's driver
        from optuna.exceptions import StorageInternalError
        from sqlalchemy.exc import SQLAlchemyError

        # a server that accepts and never answers (frozen, a firewall dropping replies) was waited
        # on without end; the fleet store's own connections have the same bounds
        pg = url.startswith("postgresql+psycopg://")
        engine = {"pool_pre_ping": True, **({"connect_args": {"connect_timeout": 10}} if pg else {})}
        try:
            with warnings.catch_warnings(), _schema_lock(url, engine):
                warnings.simplefilter("ignore")  # heartbeat/retry are "experimental" in Optuna's words
                return optuna.storages.RDBStorage(
                    url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
                    engine_kwargs=engine)
        except (SQLAlchemyError, StorageInternalError, ImportError, ValueError) as exc:  # (Optuna wraps some: no privileges)
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0] or type(exc).__name__
            raise BadInput(f"--storage {given}: cannot open it: {scrub(reason, url)[:200]} ({allowed})", field="--storage") from None
    if _CONNINFO_KEYS.search(url) and not url.startswith(("journal:", "file://")):
        # libpq's keyword/value form: taken for a journal file's name, it made a file named after
        # the whole string (its password too) in the working folder, a study no other machine sees
        raise BadInput(f"--storage {redact_url(url)}: a key=value connection string is no storage URL; write it as "
                       f"postgresql://USER:PASSWORD@HOST:PORT/DB ({allowed})", field="--storage")
    path = Path(url.removeprefix("journal:").removeprefix("file://"))
    if not path.name or path.is_dir():  # `journal:` alone, or a folder: a ValueError traceback
        raise BadInput(f"--storage {redact_url(url)}: names no journal file ({allowed})", field="--storage")
    if (path.exists() or path.is_symlink()) and not path.is_file():
        # a named pipe waited for ever on its open, a device (/dev/zero) was read without end
        raise BadInput(f"--storage {redact_url(url)}: {path} is not a regular file (a named pipe, a device or a dangling "
                       f"link?): a journal is a file ({allowed})", field="--storage")
    if existing_study is not None and not path.is_file():
        raise BadInput(f"no study {existing_study!r} in {redact_url(url)}: {path} does not exist (start the study with castrig explore "
                       "... --storage, or castrig explore map; --storage names its journal file)", field="--storage")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        from castrig.explore.journal_lock import journal_lock
        from castrig.store import unwritable

        # every process of a study appends to the journal and locks it beside it (PATH.flock,
        # study.workers/): a colleague's journal or a read-only mount was an OSError traceback
        # from the first append (a map, a worker joining), after the storage was taken as opened
        why = unwritable(path.parent) or ("permission denied" if path.is_file() and not os.access(path, os.W_OK) else None)
        if why is not None:
            raise BadInput(f"--storage {redact_url(url)}: cannot write the journal or its lock in {path.parent} ({why}); every "
                           f"process of a study appends to it ({allowed})", field="--storage")
        return read_journal(path, lock_obj=journal_lock(path))
    except OSError as exc:
        raise BadInput(f"--storage {redact_url(url)}: cannot open it: {exc.strerror or exc} ({allowed})", field="--storage") from None


class DamagedJournal(BadInput):
    """A study journal Optuna cannot replay: a line inside it that is not one of its entries
    (NUL bytes after a power cut, a hand edit). Exit 2 naming the file and the line."""


def read_journal(path: Path, lock_obj: Any = None):  # type: ignore[no-untyped-def]
    """Optuna's JournalStorage over the journal file ``path`` (replayed as it opens), or
    :class:`DamagedJournal`: Optuna's own answer to a damaged line is a JSONDecodeError (or a
    KeyError, TypeError, AssertionError) from deep in its replay.

    Without ``lock_obj`` (a reader: ``castrig serve``) the file is only read: a last entry without
    its newline may be a worker's append under way (Optuna's replay stops before it), and cutting
    it then — any GET of a map page did, without the journal's lock — broke that entry for good."""
    optuna = _optuna()
    from optuna.storages.journal import JournalFileBackend

    if lock_obj is not None:  # (the study's own process: it holds the lock while it cuts)
        _drop_a_cut_last_entry(path, lock_obj)
    try:
        return optuna.storages.JournalStorage(JournalFileBackend(str(path), lock_obj=lock_obj))
    except REPLAY_ERRORS as exc:
        raise damaged_journal(path, exc, advice="; move it aside to start the study again, or put back a copy") from None


def _drop_a_cut_last_entry(path: Path, lock_obj: Any = None) -> None:
    """Cut a journal back to its last whole entry: one whose write was interrupted (a power cut,
    a full disk) ends the file without its newline. Optuna's replay raised on it (a traceback),
    and the next append went on the same line, a damage no later start could get past. Done under
    the journal's lock (no append is under way), and said on stderr."""
    try:
        with open(path, "rb") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
    except OSError:
        return  # (none yet, or unreadable: opening it says so)
    if lock_obj is not None:
        lock_obj.acquire(exclusive=True)  # (a JournalLock: no waiter passes it by meanwhile)
    try:
        with open(path, "r+b") as fh:
            data_end = fh.seek(0, os.SEEK_END)
            keep, step = data_end, 1 << 16
            while keep > 0:  # back to the last newline (the file read from its end, a block at a time)
                start = max(0, keep - step)
                fh.seek(start)
                block = fh.read(keep - start)
                i = block.rfind(b"\n")
                if i >= 0:
                    keep = start + i + 1
                    break
                keep = start
            if keep == data_end:
                return
            fh.truncate(keep)
            fh.flush()
            os.fsync(fh.fileno())
        print(f"note: {path}: its last entry was cut off (a write interrupted: power cut, full disk); "
              f"{data_end - keep} bytes of it dropped, the study goes on from the entries before", file=sys.stderr, flush=True)
    finally:
        if lock_obj is not None:
            lock_obj.release()


#: What Optuna raises from deep in its replay of a damaged journal line.
REPLAY_ERRORS = (ValueError, KeyError, TypeError, AssertionError)


def damaged_journal(path: Path, exc: BaseException, advice: str = "") -> DamagedJournal:
    """The :class:`DamagedJournal` for ``path``, whose replay raised ``exc`` (one message for the
    CLI and ``castrig serve``)."""
    return DamagedJournal(f"{path}: damaged study journal ({_first_bad_line(path)}; Optuna: {type(exc).__name__}: "
                          f"{str(exc)[:120]}){advice}", file=str(path))


def _first_bad_line(path: Path) -> str:
    """Where a journal stops being one JSON object per line (the words for the message)."""
    try:
        with open(path, "rb") as fh:
            for n, line in enumerate(fh, 1):
                try:
                    ok = isinstance(loads(line), dict)
                except ValueError:
                    ok = False
                if not ok:
                    return f"line {n} is not a journal entry"
    except OSError as exc:
        return f"cannot be read: {exc.strerror or exc}"
    return "its entries do not replay"


def journal_path(url: str) -> Path | None:
    return None if is_rdb_url(url) else Path(url.removeprefix("journal:").removeprefix("file://"))


def create_study(url: str, name: str, kind: str, settings: dict[str, Any], storage: Any = None):  # type: ignore[no-untyped-def]
    """Create the study, or load it and check that it is the same one (resume); ``storage``: the
    one :func:`open_storage` gave for ``url``, if it is open already."""
    optuna = _optuna()
    storage = storage if storage is not None else open_storage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True)
    old = study.user_attrs.get(SETTINGS_ATTR)
    if old is None:
        study.set_user_attr(SETTINGS_ATTR, settings)
        study.set_user_attr(KIND_ATTR, kind)
    elif study.user_attrs.get(KIND_ATTR) is None and _identity(old) == _identity(settings):
        study.set_user_attr(KIND_ATTR, kind)  # its creation was cut off between the two (a journal cut short)
    elif study.user_attrs.get(KIND_ATTR) != kind or _identity(old) != _identity(settings):
        # (what makes it another study: not the budget, the grid or the profile's path, which may differ)
        o, n = _identity(old), _identity(settings)
        diff = sorted(f"{k}.{j}" if isinstance(o.get(k), dict) and isinstance(n.get(k), dict) else k
                      for k in set(o) | set(n) if o.get(k) != n.get(k)
                      for j in (sorted(x for x in set(o[k]) | set(n[k]) if o[k].get(x) != n[k].get(x))
                                if isinstance(o.get(k), dict) and isinstance(n.get(k), dict) else [None]))
        raise BadInput(f"study {name!r} in {redact_url(url)} holds another {study.user_attrs.get(KIND_ATTR)} "
                       f"(different: {', '.join(diff) or 'kind'}); use another --study, or the same settings to resume it",
                       field="--study")
    elif old.get("budget") != settings.get("budget"):
        study.set_user_attr(SETTINGS_ATTR, settings)
    return study


def _identity(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if k not in ("budget", "profile_path", "grid")}


def load_study(url: str, name: str):  # type: ignore[no-untyped-def]
    optuna = _optuna()
    try:
        study = optuna.load_study(study_name=name, storage=open_storage(url, existing_study=name))
    except KeyError:
        raise BadInput(f"no study {name!r} in {redact_url(url)} (start it with castrig explore ... --storage, or castrig explore map)",
                       field="--study") from None
    if SETTINGS_ATTR not in study.user_attrs:
        raise BadInput(f"study {name!r} in {redact_url(url)} is not a castrig exploration (no settings)", field="--study")
    return study


# -- trials ---------------------------------------------------------------------------------------
def _states():  # type: ignore[no-untyped-def]
    return _optuna().trial.TrialState


def trial_kind(t: Any) -> str:
    return str(t.user_attrs.get("kind", ""))


def trial_outcome(t: Any) -> Outcome | None:
    o = t.user_attrs.get("outcome")
    return None if o is None else Outcome.from_dict(o)


def trial_seed(t: Any) -> int:
    return int(t.user_attrs.get("outcome", {}).get("seed", t.user_attrs.get("seed", 0)))


def counted(trials: list[Any]) -> list[Any]:
    """Finished trials, each counted once: ``COMPLETE`` only (a failed one lives on in its retry)."""
    ts = _states()
    return [t for t in trials if t.state == ts.COMPLETE and "outcome" in t.user_attrs]


# -- dead workers --------------------------------------------------------------------------------
class WorkerLease:
    """This worker's OS lock (journal storage): held while it lives, free the moment it dies; and
    its heartbeat, the lock file's time touched every :data:`HEARTBEAT_S` by a thread of its own.
    A worker that is alive but stopped (SIGSTOP, Ctrl-Z in its terminal, a paused VM) keeps its
    lock and beats no more: past :data:`GRACE_S` its trial is stale (:func:`reap_stale`). Before,
    such a worker held its trial for as long as it was stopped, and a map waited on it silently."""

    def __init__(self, journal: Path):
        import threading

        from castrig import oslock

        self.dir = journal.parent / (journal.stem + ".workers")
        self.id = f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.path = self.dir / f"{self.id}.lock"
        oslock.acquire(self.path, purpose="explore worker", what=f"explore worker {self.id}")
        self._stop = threading.Event()
        self._beat = threading.Thread(target=self._beating, name="castrig-lease-heartbeat", daemon=True)
        self._beat.start()

    def _beating(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(OSError):
                os.utime(self.path)

    def close(self) -> None:
        from castrig import oslock

        self._stop.set()
        self._beat.join(timeout=5)
        oslock.release(self.path)
        with contextlib.suppress(OSError):
            self.path.unlink()


def _retry(study: Any, frozen: Any) -> None:
    """Queue a failed trial again: Optuna's own retry callback (params, user attributes, history)."""
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY)(study, frozen)


def _beat_age_s(lease: Path) -> float:
    """Seconds since a journal worker's lease was last touched (:class:`WorkerLease`); 0 if it
    cannot be read (a lock held and unreadable is left to the lock)."""
    try:
        return max(0.0, time.time() - lease.stat().st_mtime)
    except OSError:
        return 0.0


def reap_stale(study: Any, journal: Path | None) -> list[int]:
    """Fail the trials of dead workers and queue their retries; the trial numbers failed."""
    optuna = _optuna()
    failed = []
    if journal is None:  # RDB: Optuna's heartbeat (fails stale trials, runs the retry callback)
        before = {t.number for t in study.get_trials(deepcopy=False, states=(_states().RUNNING,))}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optuna.storages.fail_stale_trials(study)
        now = {t.number: t for t in study.get_trials(deepcopy=False)}
        failed = sorted(n for n in before if now[n].state == _states().FAIL)
    from castrig import oslock

    lease_dir = None if journal is None else journal.parent / (journal.stem + ".workers")
    for t in study.get_trials(deepcopy=False, states=(_states().RUNNING,)):
        mark = t.user_attrs.get("worker")
        if mark is not None and lease_dir is None:
            continue  # marked on a database: the heartbeat (started before the mark) says
        if mark is not None and mark.get("lock") and lease_dir is not None:
            lease = lease_dir / Path(mark["lock"]).name
            stale = not oslock.is_locked(lease) or _beat_age_s(lease) > GRACE_S
        else:  # asked but not marked yet (or killed in between): stale after a grace period
            started = t.datetime_start
            ref = datetime.now(started.tzinfo) if started is not None and started.tzinfo else datetime.now()
            stale = started is not None and (ref - started).total_seconds() > UNMARKED_GRACE_S
        if not stale:
            continue
        try:
            study._storage.set_trial_state_values(t._trial_id, _states().FAIL)
        except Exception:  # noqa: BLE001 - another worker failed it first: it retries it
            continue
        _retry(study, study._storage.get_trial(t._trial_id))
        failed.append(t.number)
    return failed


@contextlib.contextmanager
def _signals_held(*, again_acts: bool = False) -> Iterator[list[int]]:
    """SIGINT and SIGTERM that arrive inside the block are recorded, not acted on; the caller
    raises them again once what the block makes is in a state that can be undone (the main
    thread only: elsewhere signals cannot arrive). ``again_acts``: a second one acts at once,
    wherever it lands (Ctrl-C again: a look at a storage that never answers is not waited out)."""
    import threading

    taken: list[int] = []
    if threading.current_thread() is not threading.main_thread():
        yield taken
        return

    def held(signum: int, frame: Any) -> None:
        taken.append(signum)
        if again_acts and len(taken) > 1 and callable(before[signum]):
            before[signum](signum, frame)

    before = {s: signal.signal(s, held) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield taken
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _raise_held(taken: list[int]) -> None:
    """Act on the first signal :func:`_signals_held` recorded, its handler back in place (Ctrl-C:
    KeyboardInterrupt from here). Raised by the handler inside a look at the storage, the
    KeyboardInterrupt met SQLAlchemy's and psycopg's own handling: in the ping of a pooled
    connection (``pool_pre_ping``) psycopg's clean-up replaced it with "can't change 'autocommit'
    now" (a StorageInternalError), in a finalizer (a connection's ``__del__``) it was dropped; the
    Ctrl-C was lost and the map went on."""
    for signum in taken[:1]:
        signal.raise_signal(signum)


# -- running one trial ----------------------------------------------------------------------------
@dataclass
class Task:
    """What a worker runs for one Optuna trial."""

    kind: str  # search | confirm | map
    params: dict[str, float]
    seed: int
    extra: dict[str, Any]


def folder_name(study: str) -> str:
    """A study's name as one folder name: a name holding '/' or '..' made the worker's folder
    outside the data root (``--study ../../../x``)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", study).lstrip(".") or "_"


def trial_recipe_name(study: str, label: str) -> str:
    """``explore-STUDY-LABEL``: a trial's recipe name, which names its run folder and its row in
    ``castrig runs`` and serve. Named by grade and trial alone, the runs of two studies sharing one
    ``--data`` were all ``explore-claim1-t00000``... and a lab could not tell whose a run was.
    Folder-safe (:func:`folder_name`) and within a recipe name's 80 characters: a study name that
    is longer, or that the folder-safe form changes (``膜`` and ``鸟`` are both ``_``), keeps its
    start and a hash of the whole, so that two studies' runs stay apart."""
    room = RECIPE_NAME_MAX - len(f"explore--{label}")
    word = folder_name(study)
    if word != study or len(word) > room:
        digest = hashlib.sha256(study.encode("utf-8", "surrogatepass")).hexdigest()[:8]
        word = f"{word[:room - 9]}-{digest}"
    return f"explore-{word}-{label}"


def write_trial_files(settings: SearchSettings, profile: Profile, trials: Path, label: str, task: Task,
                      study: str) -> tuple[Path, Path]:
    """A trial's recipe and profile in ``trials/LABEL``, the recipe named after ``study`` (:func:`trial_recipe_name`)."""
    d = trials / label
    d.mkdir(parents=True, exist_ok=True)
    s, p = settings, task.params
    recipe = apply_point(s.template, p, name=trial_recipe_name(study, label), grade=s.grade,
                         description=f"castrig explore {label} ({task.kind}): {s.grade} at D {s.target_d_um:g} µm, twin seed "
                                     f"{task.seed}; total flow {p['total_flow_slpm']:.4g} slpm (profile.yaml)")
    (d / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    (d / "profile.yaml").write_text(yaml.safe_dump(profile_for(profile, p["total_flow_slpm"]), sort_keys=False))
    return d / "recipe.yaml", d / "profile.yaml"


class Worker:
    """One process taking trials from a study until there is nothing left to do.

    ``workdir`` holds this worker's trial recipes and runs (a data root: ``castrig runs`` lists
    them); the study holds every result.
    """

    def __init__(self, url: str, study_name: str, workdir: Path, *, runner: TrialRunner = twin_runner,
                 on_trial: Callable[[Any], None] | None = None, poll_s: float = 0.5):
        self.url = url
        self.study = load_study(url, study_name)
        self.kind = self.study.user_attrs[KIND_ATTR]
        raw = dict(self.study.user_attrs[SETTINGS_ATTR])
        self.grid = raw.pop("grid", None)
        self.settings = SearchSettings.model_validate(raw)
        self.profile = Profile.model_validate(self.settings.profile)
        self.workdir = Path(workdir)
        self.runner = runner
        self.on_trial = on_trial or (lambda t: None)
        self.poll_s = poll_s
        self.journal = journal_path(url)
        self.lease: WorkerLease | None = None
        self.done = 0
        self.errors = 0
        optuna = _optuna()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if self.kind == "map":  # every trial is queued with its point: nothing to sample
                self.study.sampler = optuna.samplers.RandomSampler(seed=0)
            else:
                self.study.sampler = optuna.samplers.TPESampler(
                    seed=(self.settings.seed * 1_000_003 + os.getpid()) % (2**32), multivariate=True,
                    n_startup_trials=N_STARTUP, constant_liar=True)

    # -- what to do next --
    def _search_state(self, trials: list[Any]) -> tuple[bool, int, list[Any]]:
        """(found, search trials issued, unconfirmed hits)."""
        tol = self.settings.tolerance
        done = counted(trials)
        hits = {t.number: t for t in done if trial_kind(t) == "search" and trial_outcome(t).hit(tol)}  # type: ignore[union-attr]
        confirms = [t for t in trials if trial_kind(t) == "confirm"]
        found = any(trial_outcome(t).hit(tol) for t in counted(confirms))  # type: ignore[union-attr]
        ts = _states()
        issued = sum(1 for t in trials if trial_kind(t) == "search" and t.state in (ts.COMPLETE, ts.RUNNING, ts.WAITING))
        return found, issued, list(hits.values())

    def _has_work(self) -> tuple[bool, bool]:
        """(ask now, keep waiting): there is a queued trial or a new one to propose / others still run."""
        ts = _states()
        trials = self.study.get_trials(deepcopy=False)
        waiting = any(t.state == ts.WAITING for t in trials)
        running = any(t.state == ts.RUNNING for t in trials)
        if self.kind == "map":
            return waiting, running
        found, issued, _ = self._search_state(trials)
        if found:
            return False, False
        if waiting:
            return True, True
        return issued < self.settings.budget, running

    def _task(self, trial: Any) -> Task | None:
        kind = trial_kind(trial)
        attrs = trial.user_attrs
        if self.kind == "map":
            if kind != "map" or not finite_point(attrs["point"]):  # NaN from an older castrig: dropped, not retried
                return None
            return Task("map", {k: float(v) for k, v in attrs["point"].items()}, int(attrs["seed"]), {"grid": attrs["grid"]})
        s = self.settings
        if kind == "confirm":
            return Task("confirm", {k: float(v) for k, v in attrs["point"].items()}, s.profile_seed, {"of": attrs["of"]})
        searched = s.space.searched()
        params = {name: trial.suggest_float(name, r.low, r.high, log=r.log) for name, r in searched.items()}
        params.update(s.space.fixed())
        if kind != "search":
            trial.set_user_attr("kind", "search")
        seed = int(attrs.get("seed", s.seed * 10_000 + 101 + trial.number))
        if "seed" not in attrs:
            trial.set_user_attr("seed", seed)  # kept by a retry: the same twin seed again
        trial.set_user_attr("point", params)
        return Task("search", params, seed, {})

    def _enqueue_confirmations(self, finished: Any) -> None:
        """The worker that finished a hit queues its confirmation (so it is queued once)."""
        if self.kind != "search" or trial_kind(finished) != "search":
            return
        o = trial_outcome(finished)
        if o is None or not o.hit(self.settings.tolerance):
            return
        self.study.enqueue_trial({}, user_attrs={"kind": "confirm", "of": finished.number, "point": finished.user_attrs["point"],
                                                 "seed": self.settings.profile_seed})

    # -- the loop --
    def run(self, max_trials: int | None = None) -> int:
        """Take trials until the study is done (found, budget spent, map complete); trials run."""
        if self.journal is not None:
            self.lease = WorkerLease(self.journal)
        try:
            while max_trials is None or self.done < max_trials:
                if coordinator_gone():
                    break
                # a Ctrl-C inside a look at the storage was lost there (see _raise_held): taken after it
                with _signals_held(again_acts=True) as taken:
                    reap_stale(self.study, self.journal)
                    ask, wait = self._has_work()
                _raise_held(taken)
                if not ask:
                    if not wait:
                        break
                    time.sleep(self.poll_s)
                    continue
                self._one()
        finally:
            if self.lease is not None:
                self.lease.close()
        return self.done

    def _one(self) -> None:
        from optuna.storages._heartbeat import get_heartbeat_thread  # Optuna's own (RDB); a no-op otherwise

        from optuna.storages._heartbeat import is_heartbeat_enabled

        # A Ctrl-C or SIGTERM between Optuna making the trial and the worker's mark left it RUNNING
        # and unmarked: reaped only after UNMARKED_GRACE_S. They are taken once it is marked.
        with _signals_held() as taken:
            with warnings.catch_warnings():
                # (Optuna warns that its heartbeat is meant for Study.optimize; this loop is our own
                # ask/tell and starts the heartbeat thread itself, below)
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                trial = self.study.ask()
            if is_heartbeat_enabled(self.study._storage):
                self.study._storage.record_heartbeat(trial._trial_id)  # a trial marked with our pid has a heartbeat
            # One journal record per attribute (each appended and synced): the mark is one of them.
            trial.set_user_attr("worker", {"host": socket.gethostname(), "pid": os.getpid(),
                                           "lock": None if self.lease is None else self.lease.path.name})
        beat = get_heartbeat_thread(trial._trial_id, self.study._storage)
        beat.start()
        try:
            for signum in taken:
                signal.raise_signal(signum)  # its own handler, now: Ctrl-C gives the trial back below
            self._run_trial(trial)
        except Exception as exc:  # noqa: BLE001 - the run could not be made (e.g. the store busy): try again later
            beat.join()
            self._give_back(trial)  # failed and queued again (at most MAX_RETRY times per point)
            self.errors += 1
            print(f"castrig explore worker: trial {trial.number} failed, queued again: {type(exc).__name__}: {exc}",
                  file=sys.stderr, flush=True)
            if self.errors > MAX_ERRORS:
                raise
            time.sleep(self.poll_s)
            return
        except BaseException:  # Ctrl-C, SIGTERM: the trial goes back to the queue, the worker stops
            beat.join()
            self._give_back(trial)
            raise
        beat.join()

    def _run_trial(self, trial: Any) -> None:
        ts = _states()
        task = self._task(trial)
        if task is None:  # raced for the last queued trial: this one was made empty, drop it
            trial.set_user_attr("kind", "none")
            self.study.tell(trial, state=ts.FAIL)
            return
        label = f"t{trial.number:05d}"
        # (in the study's own folder: workers of two studies given one --data both have a trial 0,
        # and the second's trials/t00000 replaced the first's; older folders stay where they are)
        recipe, profile = write_trial_files(self.settings, self.profile, self.workdir / "trials" / folder_name(self.study.study_name),
                                            label, task, self.study.study_name)
        out: RunOutput = self.runner(recipe, profile, self.workdir / "runs", task.seed)
        if out.outcome in ("interrupted", "aborted"):  # Ctrl-C or SIGTERM: the twin itself never aborts
            raise KeyboardInterrupt
        with _signals_held(again_acts=True) as taken:  # (the result told whole; a Ctrl-C meanwhile is taken after it)
            self._record(trial, task, out)
        _raise_held(taken)

    def _record(self, trial: Any, task: Task, out: RunOutput) -> None:
        """Tell the study a trial's result (scored), and queue its confirmation if it is a hit."""
        o = score_run(out.outcome, out.metrics, out.verdict, grade=self.settings.grade, target_d_um=self.settings.target_d_um)
        try:
            trial.set_user_attr("outcome", {**o.to_dict(), "run_dir": out.run_dir, "seed": task.seed})
            self.study.tell(trial, o.score if math.isfinite(o.score) else 10.0)
        except Exception:
            if not self._finished_meanwhile(trial):
                raise
            # this worker was silent (stopped, suspended) past the heartbeat's grace: another
            # failed the trial as stale and queued its retry, which counts; not an error here
            print(f"castrig explore worker: trial {trial.number}: result dropped: this worker was silent for longer "
                  f"than the heartbeat's grace ({GRACE_S} s), and another worker failed the trial as stale and "
                  "queued it again", file=sys.stderr, flush=True)
            return
        self.done += 1
        frozen = self.study._storage.get_trial(trial._trial_id)
        self._enqueue_confirmations(frozen)
        self.on_trial(frozen)

    def _finished_meanwhile(self, trial: Any) -> bool:
        """Whether the storage holds ``trial`` finished already (failed as stale by another worker)."""
        try:
            return bool(self.study._storage.get_trial(trial._trial_id).state.is_finished())
        except Exception:  # noqa: BLE001 - storage unreachable: not known to be finished
            return False

    def _give_back(self, trial: Any) -> None:
        """Interrupted (Ctrl-C, SIGTERM): fail the trial and queue it again, so nothing is lost.

        Shielded from a second signal (a repeated Ctrl-C): a trial failed without its retry
        would be lost (a trial left RUNNING is not: the next worker reaps it)."""
        import threading

        main = threading.current_thread() is threading.main_thread()
        old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
        try:
            frozen = self.study._storage.get_trial(trial._trial_id)
            if frozen.state.is_finished():
                return
            self.study.tell(trial, state=_states().FAIL)
            _retry(self.study, self.study._storage.get_trial(trial._trial_id))
        except Exception:  # noqa: BLE001 - storage unreachable: the trial stays RUNNING and is reaped later
            pass
        finally:
            if main:
                signal.signal(signal.SIGINT, old)


# -- starting a distributed search -----------------------------------------------------------------
def search_study_name(settings: SearchSettings) -> str:
    return f"{settings.grade}-d{settings.target_d_um:g}um-s{settings.seed}"


def start_search(url: str, name: str, settings: SearchSettings, storage: Any = None):  # type: ignore[no-untyped-def]
    """Create (or resume) a search study; its first trial is the template's own point (``storage``:
    :func:`open_storage`'s for ``url``, if it is open already)."""
    data = settings.model_dump(mode="json")
    study = create_study(url, name, "search", data, storage=storage)
    if not study.get_trials(deepcopy=False):
        first = template_point(settings.template, Profile.model_validate(settings.profile))
        searched = settings.space.searched()
        point = {k: min(max(first[k], searched[k].low), searched[k].high) for k in searched}
        study.enqueue_trial(point, user_attrs={"kind": "search"})
    return study


@dataclass
class Progress:
    done: int
    running: int
    waiting: int
    failed: int


def progress(study: Any) -> Progress:
    ts = _states()
    trials = study.get_trials(deepcopy=False)
    return Progress(len(counted(trials)), sum(t.state == ts.RUNNING for t in trials), sum(t.state == ts.WAITING for t in trials),
                    sum(t.state == ts.FAIL for t in trials))


def _default_sigint() -> None:
    """In a worker child: Ctrl-C and SIGINT act even when the parent was started in the background."""
    signal.signal(signal.SIGINT, signal.default_int_handler)


#: Where ``castrig explore worker`` takes its ``--storage`` from when the option is not given.
STORAGE_ENV = "CASTRIG_EXPLORE_STORAGE"
#: The pid of the coordinator that started a worker (:func:`worker_processes`); unset for a worker
#: started by hand, which runs until its study is done.
COORDINATOR_ENV = "CASTRIG_EXPLORE_COORDINATOR"


def coordinator_gone() -> bool:
    """This worker was started by a coordinator that has died (kill -9, the OOM killer): it has
    another parent now. Its workers went on alone through the whole map or search, unseen and
    beyond any Ctrl-C (the coordinator's stop_workers never ran), and a coordinator started again
    to resume it ran its own workers beside them. Such a worker takes no trial more; the one it
    was running is told (or given back) as usual."""
    pid = os.environ.get(COORDINATOR_ENV, "")
    return pid.isdigit() and os.getppid() != int(pid)


@contextlib.contextmanager
def worker_processes(url: str, name: str, workdir: Path, n: int) -> Iterator[list[Any]]:
    """``n`` ``castrig explore worker`` processes on this machine (ended on the way out)."""
    import subprocess
    import sys

    procs = []
    # the storage URL (its password) by the environment, which only this user can read: on the
    # command line every user of the machine saw it in `ps`
    env = {**os.environ, STORAGE_ENV: url, COORDINATOR_ENV: str(os.getpid())}
    if n >= (os.cpu_count() or 1):  # the workers fill the cores: no analysis threads on top
        env.setdefault("CASTRIG_ANALYSIS_THREADS", "0")
    try:
        for i in range(n):
            procs.append(subprocess.Popen([sys.executable, "-m", "castrig", "explore", "worker", "--study", name,
                                           "--data", str(workdir), "--quiet"],
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                          preexec_fn=_default_sigint, env=env))
        yield procs
    finally:
        stop_workers(procs)


#: Stopping workers: each signal, and how long they are given to exit after it.
STOP_SEQUENCE = (("SIGINT", 2.0), ("SIGINT", 4.0), ("SIGKILL", 5.0))


def stop_workers(procs: list[Any]) -> None:
    """Stop worker processes within seconds, however long the step their run is in.

    A twin run acts on one Ctrl-C only at its next safe point, which a capture step (rendering
    a micrograph) may not reach for minutes: the 20 s SIGINT + 10 s SIGTERM this waited were
    spent whole, and a coordinator whose Ctrl-C did not end its own wait left the workers to
    finish their runs. So: SIGINT (a run between steps stops at once), SIGINT again (the
    runner's "Ctrl-C again aborts now": the run stops mid-step and its trial is failed and
    queued again), then SIGKILL (the trial stays RUNNING with its worker's OS lock free, and
    the next worker fails and retries it). Nothing is lost or counted twice either way.
    """
    import subprocess

    for name, wait_s in STOP_SEQUENCE:
        live = [p for p in procs if p.poll() is None]
        if not live:
            return
        for p in live:
            with contextlib.suppress(ProcessLookupError):
                p.send_signal(getattr(signal, name))
        deadline = time.monotonic() + wait_s
        for p in live:
            with contextlib.suppress(subprocess.TimeoutExpired):
                p.wait(timeout=max(0.05, deadline - time.monotonic()))


# -- the grid map ---------------------------------------------------------------------------------
def start_map(url: str, name: str, settings: SearchSettings, grid: Any, storage: Any = None) -> tuple[Any, int]:
    """Create or grow a map study: queue the grid's (point, seed) pairs it does not hold yet.

    A pair counts as held when a trial for it is done, running or queued (a failed trial's retry
    is queued by the retry callback), so a map resumed after Ctrl-C, or asked for a finer grid,
    runs only the missing points. Returns the study and how many points were queued. ``storage``:
    :func:`open_storage`'s for ``url``, if it is open already.
    """
    data = settings.model_dump(mode="json")
    storage = open_storage(url) if storage is None else storage
    with _study_lock(storage, name):
        return _start_map(url, name, data, grid, storage)


@contextlib.contextmanager
def _schema_lock(url: str, engine_kwargs: dict[str, Any]) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock for Optuna's schema while a storage is opened: the first
    opening of a new database (or ``search_path`` schema) creates Optuna's tables, and two
    processes starting together (two `castrig explore map`, workers on two machines) both created
    them: one ended "cannot open it: duplicate key value violates unique constraint
    pg_type_typname_nsp_index". Other databases: opened as they are."""
    if not url.startswith("postgresql+psycopg://"):
        yield
        return
    from sqlalchemy import create_engine, text

    engine = create_engine(url, **{k: v for k, v in engine_kwargs.items() if k != "pool_pre_ping"})
    try:
        with engine.connect() as conn:
            # (bounded: an opener stopped while holding it, Ctrl-Z, must not hold the next ones
            # up without end; past it, "cannot open it: ... lock timeout", exit 2)
            conn.execute(text("SET lock_timeout = '300s'"))  # (each holder a second or so: a queue of openers fits)
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _lock_key("castrig optuna schema")})
            try:
                yield
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _lock_key("castrig optuna schema")})
    finally:
        engine.dispose()


def _lock_key(what: str) -> int:
    """A PostgreSQL advisory lock's 64-bit key for ``what``."""
    return int.from_bytes(hashlib.sha256(what.encode()).digest()[:8], "big", signed=True)


@contextlib.contextmanager
def _study_lock(storage: Any, name: str) -> Iterator[None]:
    """Hold study ``name`` against another process growing it at the same time (a PostgreSQL
    advisory lock, gone with its connection however the process dies). Two `castrig explore map`
    of one PostgreSQL study started together each found the same points missing and queued them
    (a 4-point grid ran 5 trials, a 9-point one 14, the map counting points twice); a journal's
    appends are serialised by its own file lock."""
    engine = getattr(storage, "engine", None)
    if engine is None or engine.dialect.name != "postgresql":
        yield
        return
    from sqlalchemy import text

    key = _lock_key(f"castrig study {name}")
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": key})
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})


def _start_map(url: str, name: str, data: dict[str, Any], grid: Any, storage: Any) -> tuple[Any, int]:
    from castrig.explore.gridmap import point_key

    study = create_study(url, name, "map", data, storage=storage)
    old_grid = study.user_attrs[SETTINGS_ATTR].get("grid")
    old_flow = (old_grid or {}).get("flow_slpm")
    if isinstance(old_flow, (int, float)) and math.isfinite(old_flow) and old_flow != grid.flow_slpm:
        # its cells are keyed by RH, concentration and volume: points at another flow were drawn
        # as more seeds of the same cell, and the map said it was made at the last flow asked
        raise BadInput(f"map {name!r} in {redact_url(url)} was made at --flow {old_flow:g} slpm; --flow {grid.flow_slpm:g} "
                       "would mix two flows in one map (allowed: the same flow, or another --study / --folder)", field="--flow")
    merged = grid.to_dict() if old_grid is None else {
        k: sorted(set(old_grid[k]) | set(grid.to_dict()[k])) if isinstance(old_grid[k], list) else old_grid[k] for k in old_grid}
    for k in ("rh", "concentration", "volume"):  # NaN or inf an older castrig let in: not part of the map
        merged[k] = [v for v in merged.get(k, []) if isinstance(v, (int, float)) and math.isfinite(v)]
    if not (isinstance(merged.get("flow_slpm"), (int, float)) and math.isfinite(merged["flow_slpm"])):
        merged["flow_slpm"] = grid.flow_slpm
    study.set_user_attr(SETTINGS_ATTR, {**data, "grid": merged})
    ts = _states()
    held = {point_key(t.user_attrs["point"], t.user_attrs["seed"]) for t in study.get_trials(deepcopy=False)
            if t.state in (ts.COMPLETE, ts.RUNNING, ts.WAITING) and "point" in t.user_attrs}
    queued = 0
    for point, seed, ijk in grid.points():
        if point_key(point, seed) in held:
            continue
        study.enqueue_trial({}, user_attrs={"kind": "map", "point": point, "seed": seed, "grid": ijk})
        queued += 1
    return study, queued


def map_results(study: Any) -> list[dict[str, Any]]:
    """One row per counted map trial: point, seed, outcome, run folder, trial number."""
    return [{"trial": t.number, "point": t.user_attrs["point"], "seed": trial_seed(t), "outcome": t.user_attrs["outcome"],
             "run_dir": t.user_attrs["outcome"].get("run_dir")} for t in counted(study.get_trials(deepcopy=False))
            if trial_kind(t) == "map" and finite_point(t.user_attrs["point"])]


def trial_record(t: Any) -> Any:
    """One counted Optuna trial as a :class:`~castrig.explore.journal.Trial` (for maps and listings)."""
    from castrig.explore.journal import Trial

    kind = trial_kind(t)
    return Trial(t.number, "grid" if kind == "map" else kind, dict(t.user_attrs["point"]), trial_seed(t),
                 "", "", trial_outcome(t), t.user_attrs["outcome"].get("run_dir"), {"of": t.user_attrs["of"]} if kind == "confirm" else {})


def as_trials(study: Any) -> list[Any]:
    """The study's counted trials as :class:`~castrig.explore.journal.Trial` records."""
    return [trial_record(t) for t in counted(study.get_trials(deepcopy=False))]
