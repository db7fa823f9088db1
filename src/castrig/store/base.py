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
from typing import Any

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
    outcome: str = "running"  # running | completed | aborted | faulted | interrupted | crashed
    outcome_reason: str | None = None
    virtual_time: bool = False
    recipe: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "RunInfo":
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)


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


class RunRecorder(ABC):
    """Writes one run. Every method returns only once its record is durable."""

    run_dir: Path
    info: RunInfo

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

    @abstractmethod
    def close(self) -> None: ...

    def __enter__(self) -> "RunRecorder":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
