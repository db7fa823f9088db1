"""Reading a run folder's ``run.json`` the one way: a regular file, bounded, never waiting.

Whoever may write the data root may put anything there: a named pipe in place of ``run.json`` made
``castrig runs`` (and ``castrig serve``'s run list, ``castrig status``, the queue's look for the
run it started) wait for ever on ``open``; a file of gigabytes would be read whole. Every reader
goes through :func:`read_text` and sees an OSError (:class:`~castrig.regular.NotRegularFile`,
:class:`~castrig.regular.FileTooBig`) it already handles as an unreadable run.json.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from castrig.regular import read_regular

NAME = "run.json"
#: Far above any run.json castrig writes (a 20 000-step recipe's copy is ~2 MB).
MAX_BYTES = 64 << 20


def read_text(run_dir: str | Path) -> str:
    """The text of ``run_dir/run.json`` (UTF-8: a UnicodeDecodeError is a ValueError, as bad JSON)."""
    return read_regular(Path(run_dir) / NAME, max_bytes=MAX_BYTES).decode("utf-8")


def present(run_dir: str | Path) -> bool:
    """Something is there by the name ``run.json`` (a regular file or not: one that is not is a
    damaged run folder, said by :func:`read_text`'s reader, not "not a run folder")."""
    p = Path(run_dir) / NAME
    return p.exists() or p.is_symlink()


def load(run_dir: str | Path) -> Any:
    """``run_dir/run.json`` decoded: :func:`read_text`'s errors, and a ValueError for bad JSON
    (one nested too deep too: :func:`castrig.jsontext.loads`)."""
    from castrig.jsontext import loads

    return loads(read_text(run_dir))
