"""The runs list's rows of ended runs, kept while their files stay as they were (``castrig serve``).

A row (:func:`castrig.store.live.summary`) opens the run's database and reads its journal and
membranes: about 1 ms of CPU a run. The runs page reloads itself every 10 s, so with 3 000 runs
under the data root one open page took 3.2 s of the server's CPU each time (7 s to answer), and
10 000 runs kept a core busy for good. A run that has ended changes only when one of its files
does (a resume rewrites run.json, an analysis writes run.sqlite) or its lock is taken (a resume
claims the folder, writing its record into ``run.lock``, seconds before it rewrites run.json: the
row says running from then), so its row is kept under the files' identity — inode, size, mtime
and ctime of each — and made again when any of them differs; a folder replaced by another of the
same name differs too. Live and crashed runs, whose rows
depend on a process (its lock, its status file), are read afresh each time.
"""

from __future__ import annotations

import copy
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path
from typing import Any

#: The outcomes whose rows depend on the run's files alone.
ENDED = ("completed", "aborted", "faulted", "interrupted", "not_resumable")
#: The files a row is read from (SQLite's sidecars: a write there is a write to the records).
_FILES = ("run.json", "run.sqlite", "run.sqlite-wal", "run.sqlite-journal", "run.lock")
#: Rows kept at most (a few kB each), the least recently asked for dropped first.
MAX_ROWS = 20_000

Signature = tuple[tuple[int, int, int, int] | None, ...]


def signature(run_dir: Path) -> Signature:
    """What identifies the files a row is read from, as they are now (None for one missing)."""
    out: list[tuple[int, int, int, int] | None] = []
    for name in _FILES:
        try:
            st = os.stat(Path(run_dir) / name)
        except OSError:
            out.append(None)
            continue
        out.append((st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
    return tuple(out)


class SummaryCache:
    """``get(run_dir)``: ``make(run_dir)``'s row, kept for an ended run while its files are unchanged."""

    def __init__(self, make: Callable[[Path], dict[str, Any]], max_rows: int = MAX_ROWS):
        self._make = make
        self._max = max_rows
        self._rows: OrderedDict[str, tuple[Signature, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()  # (the server reads on several worker threads)

    def get(self, run_dir: Path) -> dict[str, Any]:
        key = str(run_dir)
        before = signature(run_dir)
        with self._lock:
            kept = self._rows.get(key)
            if kept is not None and kept[0] == before:
                self._rows.move_to_end(key)
                return copy.deepcopy(kept[1])
        row = self._make(run_dir)
        # kept only if nothing changed while it was read (a write in between: read again next time)
        if row.get("status") in ENDED and signature(run_dir) == before:
            with self._lock:
                self._rows[key] = (before, copy.deepcopy(row))
                self._rows.move_to_end(key)
                while len(self._rows) > self._max:
                    self._rows.popitem(last=False)
        else:
            with self._lock:
                self._rows.pop(key, None)
        return row
