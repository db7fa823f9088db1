"""A reader's study journal (``castrig serve``): the file opened once per read and read through
that open file, never its name again.

Optuna's :class:`~optuna.storages.journal.JournalFileBackend` opens the journal by name at every
sync. The server looked at the name first (a regular file, not too large) and Optuna opened it
after: a journal swapped in that moment for a named pipe (whoever may write the data root can)
held the page's worker for ever, waiting for a writer, and one swapped for a larger file was read
whole. Here each read opens the name once without waiting (``O_NONBLOCK``), checks what it opened
— a regular file, no larger than the limit, the same file as before — and hands Optuna that very
file (``/proc/self/fd/N``). Nothing is created or written: a reader never appends.
"""

from __future__ import annotations

import os
import stat
from functools import lru_cache
from collections.abc import Generator
from pathlib import Path
from typing import Any

from castrig.explore.distributed import DamagedJournal
from castrig.explore.optimiser import _optuna


def reader_storage(path: Path, max_bytes: int) -> Any:
    """Optuna's JournalStorage over ``path`` read as :class:`_CheckedFile` reads it (replayed now)."""
    optuna = _optuna()
    return optuna.storages.JournalStorage(_checked_file(optuna)(path, max_bytes))


@lru_cache(maxsize=1)
def _checked_file(optuna: Any) -> type:
    from optuna.storages.journal import JournalFileBackend

    class _CheckedFile(JournalFileBackend):  # type: ignore[misc]
        def __init__(self, path: Path, max_bytes: int) -> None:  # (no super(): it creates a missing file)
            self._name = str(path)
            self._max = max_bytes
            self._ident: tuple[int, int] | None = None
            self._file_path = self._name
            self._lock = None
            self._log_number_offset: dict[int, int] = {0: 0}

        def read_logs(self, log_number_from: int) -> Generator[dict[str, Any], None, None]:
            fd = os.open(self._name, os.O_RDONLY | os.O_NONBLOCK)
            try:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode):
                    raise DamagedJournal(f"{self._name}: not a regular file (a named pipe or a device?): not read",
                                         file=self._name)
                if self._ident is not None and (st.st_dev, st.st_ino) != self._ident:
                    raise DamagedJournal(f"{self._name}: replaced by another file while it was read; read it again",
                                         file=self._name)
                if st.st_size > self._max:
                    raise DamagedJournal(f"{self._name}: {st.st_size / 2**20:.0f} MiB, more than castrig serve reads of "
                                         f"a study journal ({self._max >> 20} MiB): not shown", file=self._name)
                self._ident = (st.st_dev, st.st_ino)
                self._file_path = f"/proc/self/fd/{fd}"  # the file just checked, whatever the name holds now
                yield from super().read_logs(log_number_from)
            finally:
                self._file_path = self._name
                os.close(fd)

        def append_logs(self, logs: list[dict[str, Any]]) -> None:
            raise PermissionError(f"{self._name}: castrig serve only reads study journals")

    return _CheckedFile
