"""Run records that lose nothing: run folders, samples, events, journal, images, results."""

from __future__ import annotations

import os
from pathlib import Path

from castrig.store.base import Event, ImageRecord, JournalEntry, MembraneRecord, RunInfo, RunRecorder, RunStore, RunSummary
from castrig.store.sqlite_connect import SYNCHRONOUS, StoreError
from castrig.store.sqlite_store import CannotMakeRunFolder, SqliteRunRecorder, SqliteRunStore, made_utc_now, utc_now_iso


def data_root(explicit: str | Path | None = None) -> Path:
    """``--data``, else ``$CASTRIG_DATA``, else ``./runs``."""
    if explicit:
        return Path(explicit)
    env = os.environ.get("CASTRIG_DATA")
    return Path(env) if env else Path("runs")


def unwritable(folder: str | Path) -> str | None:
    """Why this process cannot make files in the existing ``folder`` (``read-only file system``,
    ``permission denied``), or None if it can: asked before anything is made in it, so a data root
    or run folder that cannot take a run is refused up front (exit 2), not half-written."""
    if os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        if os.statvfs(folder).f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"


def open_store(root: str | Path | None = None, *, synchronous: str = SYNCHRONOUS) -> RunStore:
    """The store for a data root: SQLite, or the PostgreSQL fleet store when
    ``$CASTRIG_STORE`` (or the profile's ``store``) is a ``postgresql://`` URL."""
    from castrig.store.postgres_store import open_configured_store

    return open_configured_store(root, synchronous=synchronous)


__all__ = [
    "SYNCHRONOUS",
    "CannotMakeRunFolder",
    "Event",
    "ImageRecord",
    "JournalEntry",
    "MembraneRecord",
    "RunInfo",
    "RunRecorder",
    "RunStore",
    "RunSummary",
    "SqliteRunRecorder",
    "SqliteRunStore",
    "StoreError",
    "data_root",
    "open_store",
    "unwritable",
    "made_utc_now",
    "utc_now_iso",
]
