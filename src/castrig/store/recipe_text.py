"""The recipe file of a run as the operator wrote it — one reading for the report and serve."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

LIMIT = 200_000


def _head(path: Path, *, follow: bool) -> str | None:
    """The first :data:`LIMIT` characters' worth of a regular file (bounded: a recipe.yaml linked to
    a 1 GB file took 1.6 GB of a server's memory), or None; ``follow=False``: not through a symlink."""
    import os
    import stat

    fd = os.open(path, os.O_RDONLY | (0 if follow else os.O_NOFOLLOW) | getattr(os, "O_NONBLOCK", 0))
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        with os.fdopen(fd, "rb") as fh:
            fd = -1
            return fh.read(4 * LIMIT).decode("utf-8", errors="replace")[:LIMIT]
    finally:
        if fd >= 0:
            os.close(fd)


def recipe_file_text(run_dir: Path, recipe_path: str | None, recipe_name: str | None) -> tuple[str, str] | None:
    """(text, where it came from), or None.

    The copy the run took at its start (``RUN/recipe.yaml``; never through a symlink: the run
    folder's copy is a file castrig wrote, and a link there served ``/etc/passwd`` as the recipe),
    else the file at ``recipe_path`` if it is still a regular file describing this recipe
    (``name``). Never a ``/dev/fd/N`` of a piped recipe (``castrig run <(cat r.yaml)``): in this
    process that is nothing, or another open file. Both read bounded.
    """
    try:
        text = _head(Path(run_dir) / "recipe.yaml", follow=False)
        if text is not None:
            return text, "the copy taken when the run started (recipe.yaml in the run folder)"
    except OSError:
        pass
    try:
        p = Path(recipe_path) if recipe_path else None
        text = _head(p, follow=True) if p is not None and not str(p).startswith("/dev/") else None
        if text is not None:
            doc = yaml.safe_load(text)
            if isinstance(doc, Mapping) and doc.get("name") == recipe_name:
                return text, f"{recipe_path} (read now: the run folder has no copy)"
    except (OSError, yaml.YAMLError, ValueError):
        pass
    return None
