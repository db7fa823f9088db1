"""The recipe file of a run as the operator wrote it — one reading for the report and serve."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import yaml

LIMIT = 200_000


def recipe_file_text(run_dir: Path, recipe_path: str | None, recipe_name: str | None) -> tuple[str, str] | None:
    """(text, where it came from), or None.

    The copy the run took at its start (``RUN/recipe.yaml``), else the file at ``recipe_path`` if it
    is still a regular file describing this recipe (``name``). Never a ``/dev/fd/N`` of a piped
    recipe (``castrig run <(cat r.yaml)``): in this process that is nothing, or another open file.
    """
    copy = Path(run_dir) / "recipe.yaml"
    try:
        if copy.is_file():
            return copy.read_text(errors="replace")[:LIMIT], "the copy taken when the run started (recipe.yaml in the run folder)"
    except OSError:
        pass
    try:
        p = Path(recipe_path) if recipe_path else None
        if p is not None and p.is_file():
            text = p.read_text(errors="replace")[:LIMIT]
            doc = yaml.safe_load(text)
            if isinstance(doc, Mapping) and doc.get("name") == recipe_name:
                return text, f"{recipe_path} (read now: the run folder has no copy)"
    except (OSError, yaml.YAMLError, ValueError):
        pass
    return None
