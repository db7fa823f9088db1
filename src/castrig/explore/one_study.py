"""One search or map per folder, checked before anything runs.

A folder's trial files (``trials/t00000``...; a worker's now ``trials/STUDY/t00000``), runs,
``map.html`` and ``found.yaml`` were named by trial number only. A second study started in a folder that held one (``--folder`` given again
with another target, ``--study``, or ``castrig explore map``) overwrote the first's trial recipes
and drew its map and found recipe over the first's; a search run in one process and one on
workers in the same folder each ran their own trials, blind to the other's.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from castrig.errors import BadInput

ALLOWED = "allowed: the same command to resume what the folder holds, or another --folder"


def studies_in(folder: Path) -> dict[str, str]:
    """The studies in ``FOLDER/study.journal`` (the folder's own journal): name -> kind (search, map)."""
    from castrig.explore.distributed import KIND_ATTR, open_storage, storage_url

    if not (folder / "study.journal").is_file():
        return {}
    storage: Any = open_storage(storage_url(None, folder))
    return {s.study_name: str(s.user_attrs.get(KIND_ATTR) or "study") for s in storage.get_all_studies()}


def _one_process_trials(folder: Path) -> bool:
    path = folder / "trials.jsonl"
    return path.is_file() and path.stat().st_size > 0


def check_study_folder(folder: Path, name: str, kind: str) -> None:
    """Refuse (exit 2) to put study ``name`` (a ``kind``: search on workers, map) in a folder that
    holds another study, or a search run in one process."""
    others = {n: k for n, k in studies_in(folder).items() if n != name}
    if others:
        other, other_kind = sorted(others.items())[0]
        raise BadInput(f"--folder {folder}: holds another {other_kind}, study {other!r} (study.journal); {kind} {name!r} would "
                       f"overwrite its trial files, map and found recipe ({ALLOWED})", file=str(folder), field="--folder")
    if kind == "map" and (folder / "search.json").is_file():
        raise BadInput(f"--folder {folder}: holds a search (search.json); a map would overwrite its trial files and map "
                       f"({ALLOWED})", file=str(folder), field="--folder")
    if _one_process_trials(folder):
        raise BadInput(f"--folder {folder}: holds a search run in one process (trials.jsonl); resume it without --workers "
                       f"and --storage ({ALLOWED})", file=str(folder), field="--folder")


def check_one_process_folder(folder: Path) -> None:
    """Refuse (exit 2) a one-process search in a folder that holds a study on workers or a map:
    it ran a search of its own beside that study, blind to its trials."""
    held = studies_in(folder)
    if held:
        name, kind = sorted(held.items())[0]
        how = "castrig explore map" if kind == "map" else "--workers N (or --storage URL)"
        what = "a map" if kind == "map" else "a search run on workers"
        raise BadInput(f"--folder {folder}: holds {what}, study {name!r} (study.journal); resume it with {how} "
                       f"({ALLOWED})", file=str(folder), field="--folder")
