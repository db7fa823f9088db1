"""The store's interface: what the runner writes and what readers read, whatever the backend.

A run has a folder (``run.json``, images, results, logs) and records (samples, events, journal).
The SQLite backend keeps records in ``RUN/run.sqlite``; a fleet backend (PostgreSQL) keeps them
in a server. Callers only see :class:`RunStore` and :class:`RunRecorder`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # numpy only names an argument's type here: `castrig runs`, `lots`, `status` need not load it
    import numpy as np


@dataclass
class RunInfo:
    """What ``run.json`` says about a run."""

    run_id: str
    recipe_name: str
    recipe_path: str
    profile_name: str
    profile_path: str
    software_version: str
    seed: int | None
    operator: str
    started_utc: str
    ended_utc: str | None = None
    outcome: str = "running"  # running | completed | aborted | faulted | interrupted | not_resumable
    #: The process that owns the run now (or last did), and the lock file it holds in the folder;
    #: a reader shows a ``running`` run whose lock nobody holds as ``crashed``.
    pid: int | None = None
    host: str | None = None
    lock: str | None = None
    outcome_reason: str | None = None
    virtual_time: bool = False
    #: The run clock's origin as a date (virtual on the twin: 2026-01-01 by default); ``started_utc``
    #: and ``ended_utc`` are always the computer's wall clock.
    run_clock_origin_utc: str | None = None
    #: One entry per part of the run (the first run, then every resume): wall-clock start/end,
    #: run-clock start/end (``t0_s``, ``t1_s``), host, pid, castrig version, outcome.
    parts: list[dict[str, Any]] = field(default_factory=list)
    recipe: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def field_error(cls, data: Mapping[str, Any]) -> str | None:
        """Why ``data`` (a ``run.json`` object) cannot be a :class:`RunInfo` — its first field of
        the wrong JSON type, as ``field X: expected …, found …`` — or None. Missing fields are
        :meth:`from_dict`'s to refuse; unknown keys are ignored."""
        for name, (types, nullable, words) in _RUN_INFO_TYPES.items():
            if name not in data:
                continue
            v = data[name]
            if v is None and nullable:
                continue
            if v is None or not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
                return f"field {name}: expected {words}{' or null' if nullable else ''}, found {_json_kind(v)}"
            if name == "parts" and not all(isinstance(p, Mapping) for p in v):
                return f"field parts: expected a list of objects, found {_json_kind(v)}"
        # values every reader trusts (a hand edit: `status` said "step 11/4" of recipe.steps = "nope",
        # `runs` listed a run without an outcome completed and `status` the same run crashed)
        if "outcome" not in data:
            return f"field outcome: missing (expected one of {', '.join(RECORDED_OUTCOMES)})"
        if data["outcome"] not in RECORDED_OUTCOMES:
            return f"field outcome: expected one of {', '.join(RECORDED_OUTCOMES)}, found {_json_kind(data['outcome'])}"
        if "started_utc" in data:
            from castrig.utc import parse_utc

            if parse_utc(data["started_utc"]) is None:
                return f"field started_utc: expected a UTC time (ISO 8601, e.g. 2026-01-01T22:00:00Z), found {_json_kind(data['started_utc'])}"
        steps = data.get("recipe", {}).get("steps") if isinstance(data.get("recipe"), Mapping) else None
        if steps is not None and not (isinstance(steps, list) and all(isinstance(st, Mapping) for st in steps)):
            return f"field recipe.steps: expected a list of objects, found {_json_kind(steps)}"
        return None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunInfo":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


#: The outcomes a run.json records (``crashed`` is a reader's word for a ``running`` one nobody holds).
RECORDED_OUTCOMES = ("running", "completed", "aborted", "faulted", "interrupted", "not_resumable")

_TEXT, _INT = ((str,), "a string"), ((int,), "an integer")
#: ``run.json``'s fields: (Python types of the JSON value, null allowed, what the message says is expected).
_RUN_INFO_TYPES: dict[str, tuple[tuple[type, ...], bool, str]] = {
    **{k: (*_TEXT[:1], False, _TEXT[1]) for k in ("run_id", "recipe_name", "recipe_path", "profile_name", "profile_path",
                                                  "software_version", "operator", "started_utc", "outcome")},
    **{k: (*_TEXT[:1], True, _TEXT[1]) for k in ("ended_utc", "host", "lock", "outcome_reason", "run_clock_origin_utc")},
    "seed": (*_INT[:1], True, _INT[1]),
    "pid": (*_INT[:1], True, _INT[1]),
    "virtual_time": ((bool,), False, "true or false"),
    "parts": ((list,), False, "a list of objects"),
    **{k: ((dict,), False, "an object") for k in ("recipe", "profile", "extra")},
}


def _json_kind(v: Any) -> str:
    """A JSON value as a message names it: its type and (short) text."""
    import json

    kind = ("null" if v is None else "true/false" if isinstance(v, bool) else "a number" if isinstance(v, (int, float))
            else "a string" if isinstance(v, str) else "a list" if isinstance(v, list) else "an object")
    text = json.dumps(v, default=str)
    return f"{kind} ({text[:40]}{'…' if len(text) > 40 else ''})"


@dataclass(frozen=True)
class Event:
    t_s: float
    kind: str
    source: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JournalEntry:
    """One step of the runner's state machine, for resuming after a crash."""

    seq: int
    t_s: float
    step_index: int
    state: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ImageRecord:
    t_s: float
    name: str
    path: str
    illumination: str
    pixel_size_um: float
    sha256: str
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class MembraneRecord:
    """One membrane (a specimen): made by one ``cast`` step, on one support position.

    ``status``: ``forming`` (cast to the end of its evaporation), ``made`` (evaporated under
    control), ``judged`` (analysed: metrics and verdict), ``lost`` (``lost_reason`` says why).
    ``process``: the record from pre-wet to the end of evaporation (RH mean/min/max, time out of
    band, volumes and rates dispensed), and ``analysis_failed`` (why) when its analysis raised and
    it was left made, not judged. ``lot_id`` is set when it met a grade.
    """

    membrane_id: str
    k: int
    cast_step: int
    status: str = "forming"
    support_position: int | None = None
    simulated: bool = False
    t_start_s: float | None = None
    t_end_s: float | None = None
    process: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] | None = None
    verdict: dict[str, Any] | None = None
    grades_met: list[str] = field(default_factory=list)
    target_grade: str | None = None
    target_met: bool | None = None
    lot_id: str | None = None
    lost_reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class RunRecorder(ABC):
    """Writes one run. Every method returns only once its record is durable."""

    run_dir: Path
    info: RunInfo

    def moved_to(self, run_dir: Path) -> None:
        """The run folder was moved (``mv``) while this process recorded into it: what is written
        by path from now on (run.json, results) goes where it is now. The database and the log,
        opened once, follow it by themselves."""
        self.run_dir = Path(run_dir)

    @abstractmethod
    def add_samples(self, t_s: float, values: Mapping[str, float]) -> None:
        """Several channels read at one time, written in one durable transaction."""

    def add_sample(self, t_s: float, channel: str, value: float) -> None:
        self.add_samples(t_s, {channel: value})

    @abstractmethod
    def add_event(self, t_s: float, kind: str, source: str, message: str, data: Mapping[str, Any] | None = None) -> None: ...

    @abstractmethod
    def add_journal(self, t_s: float, step_index: int, state: str, data: Mapping[str, Any] | None = None) -> int:
        """Append a journal entry; returns its sequence number."""

    @abstractmethod
    def save_image(
        self,
        t_s: float,
        name: str,
        image: np.ndarray,
        *,
        pixel_size_um: float,
        illumination: str,
        metadata: Mapping[str, Any] | None = None,
    ) -> Path: ...

    @abstractmethod
    def save_result(self, t_s: float, name: str, result: Mapping[str, Any]) -> Path: ...

    @abstractmethod
    def finish(self, outcome: str, reason: str | None = None) -> None:
        """Record the outcome and end time in ``run.json``."""

    @abstractmethod
    def update_info(self, **changes: Any) -> None: ...

    # -- reading back (the same interface serves reports, exports and resume) -----------
    @abstractmethod
    def samples(self, channel: str | None = None) -> list[tuple[float, str, float]]: ...

    @abstractmethod
    def events(self, kind: str | None = None) -> list[Event]: ...

    @abstractmethod
    def journal(self) -> list[JournalEntry]: ...

    @abstractmethod
    def images(self) -> list[ImageRecord]: ...

    @abstractmethod
    def results(self) -> dict[str, dict[str, Any]]: ...

    def save_membrane(self, membrane: MembraneRecord) -> None:
        """Insert or replace a membrane's row (durable when it returns)."""
        raise NotImplementedError

    def membranes(self) -> list[MembraneRecord]:
        """The run's membranes, in cast order (empty for runs recorded before membranes)."""
        return []

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def grades_of(recorder: RunRecorder) -> list[str]:
    """Grades met by any membrane of the run (a run from before membranes: its one verdict)."""
    membranes = recorder.membranes()
    if membranes:
        return sorted({g for m in membranes if m.status == "judged" for g in m.grades_met})
    verdict = recorder.results().get("verdict")
    return list(verdict.get("grades_met") or []) if isinstance(verdict, Mapping) else []


def latest_results(recorder: RunRecorder) -> dict[str, Any]:
    """The results (``metrics``, ``verdict``, ``truth``…, by short name) of the run's last judged
    membrane — for single-cast readers (explore); a run from before membranes: its results."""
    results = recorder.results()
    judged = [m for m in recorder.membranes() if m.status == "judged"]
    if not judged:
        return results
    prefix = judged[-1].membrane_id + "/"
    return {k[len(prefix):]: v for k, v in results.items() if k.startswith(prefix)}


@dataclass(frozen=True)
class RunSummary:
    """One catalog row."""

    run_id: str
    run_dir: str
    recipe_name: str
    profile_name: str
    operator: str
    started_utc: str
    ended_utc: str | None
    outcome: str
    grades: tuple[str, ...] = ()
    #: Why a run folder is listed as ``damaged`` (its run.json or run.sqlite cannot be read).
    reason: str = ""


class RunStore(ABC):
    """Creates, reopens and lists runs under one data root."""

    root: Path

    @abstractmethod
    def create_run(self, info: RunInfo) -> RunRecorder: ...

    @abstractmethod
    def open_run(self, run_dir: Path) -> RunRecorder:
        """Reopen an existing run for reading and appending (resume, report, export)."""

    @abstractmethod
    def list_runs(self) -> list[RunSummary]: ...

    @abstractmethod
    def index_run(self, recorder: RunRecorder, grades: Iterable[str] = ()) -> None:
        """Bring the catalog row of a run up to date."""
