"""Is the run folder still where the run writes it? Checked at every sample by the runner.

A run folder moved (``mv RUN elsewhere``) or deleted while its run goes on: the database, opened
once, follows it (or records into a deleted file), but the run's micrographs, results and
run.json are written by path. The run went on blind for hours, then faulted at its next capture
with "FileNotFoundError: ... RUN/images" (its membrane made and never imaged) or at its end with
"outcome not recorded"; a deleted folder took every record of those hours with it. Now the runner
stops at the next sample, saying where the folder went, and the rig goes to the safe state.
A moved folder gets the run's outcome where it went (run.json: faulted, with the reason): it
still ended "outcome not recorded", run.json 'running', shown crashed by every reader.
"""

from __future__ import annotations

import os
import weakref
from pathlib import Path


class FolderWatch:
    """The run folder as it was when the run started (device and inode), and a handle on it that
    follows it wherever it is moved (to say where)."""

    def __init__(self, run_dir: Path | str | None):
        self.path = Path(run_dir) if run_dir is not None else None
        self._id: tuple[int, int] | None = None
        self._fd: int | None = None
        if self.path is None:
            return
        try:
            fd = os.open(self.path, os.O_PATH | os.O_DIRECTORY)
        except (OSError, AttributeError):  # (no O_PATH: not Linux) nothing to watch with
            return
        st = os.fstat(fd)
        self._id, self._fd = (st.st_dev, st.st_ino), fd
        weakref.finalize(self, os.close, fd)

    def moved_to(self) -> Path | None:
        """Where the folder is now, if it was moved (not deleted) and is still there: the run's
        outcome is recorded there, as it would have been at its own path."""
        gone = self.gone()
        if gone is None or not gone.startswith("moved to "):
            return None
        now = Path(gone[len("moved to "):])
        try:
            st = os.stat(now)
        except OSError:
            return None
        return now if (st.st_dev, st.st_ino) == self._id else None

    def gone(self) -> str | None:
        """None while the folder is at its path; else what became of it ("moved to X", "deleted")."""
        if self._id is None or self.path is None:
            return None
        try:
            st = os.stat(self.path)
            if (st.st_dev, st.st_ino) == self._id:
                return None
        except OSError:
            pass
        try:
            now = os.readlink(f"/proc/self/fd/{self._fd}")
        except OSError:
            now = ""
        if not now or now.endswith(" (deleted)"):
            return "deleted"
        return f"moved to {now}"
