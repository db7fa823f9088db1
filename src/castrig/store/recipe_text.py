"""The recipe file of a run as the operator wrote it — one reading for the report and serve."""

from __future__ import annotations

from pathlib import Path

LIMIT = 200_000


def _head(path: Path, *, follow: bool) -> str | None:
    """The first :data:`LIMIT` characters' worth of a regular file (bounded: a recipe.yaml linked to
    a 1 GB file took 1.6 GB of a server's memory), or None; ``follow=False``: not through a symlink."""
    from castrig.regular import open_regular

    fh = open_regular(path, follow=follow)
    if fh is None:
        return None
    with fh:
        return fh.read(4 * LIMIT).decode("utf-8", errors="replace")[:LIMIT]


def recipe_file_text(run_dir: Path) -> tuple[str, str] | None:
    """(text, where it came from), or None: the copy the run took at its start (``RUN/recipe.yaml``),
    read bounded and never through a symlink (the run folder's copy is a file castrig wrote, and a
    link there served ``/etc/passwd`` as the recipe).

    Never the file ``run.json``'s ``recipe_path`` names: whoever may write the data root writes
    that too, and pointing it at a rig profile elsewhere (its ``name`` copied into
    ``recipe_name``) made ``castrig serve`` hand the profile, its database password in it, to any
    reader, and the report mail it (an outside tester). Without the copy, the report rebuilds the
    recipe from run.json and the live page shows none.
    """
    try:
        text = _head(Path(run_dir) / "recipe.yaml", follow=False)
    except OSError:
        return None
    return None if text is None else (text, "the copy taken when the run started (recipe.yaml in the run folder)")
