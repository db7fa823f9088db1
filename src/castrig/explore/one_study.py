"""One search or map per folder, checked before anything runs.

A folder's trial files (``trials/t00000``...; a worker's now ``trials/STUDY/t00000``), runs,
``map.html`` and ``found.yaml`` were named by trial number only. A second study started in a folder that held one (``--folder`` given again
with another target, ``--study``, or ``castrig explore map``) overwrote the first's trial recipes
and drew its map and found recipe over the first's; a search run in one process and one on
workers in the same folder each ran their own trials, blind to the other's.

A study whose storage is not the folder's own journal (``--storage postgresql://…``) left no mark
in the folder, so the check above saw none: a map on PostgreSQL in the default folder of a journal
map of the same name (``map-claim1``) overwrote its ``trials/map-claim1/t00000``… recipes and its
map, exit 0. The folder now says which study it holds and where (``FOLDER/study.json``,
:func:`held_study`); another is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from castrig.errors import BadInput

ALLOWED = "allowed: the same command to resume what the folder holds, or another --folder"
#: the folder's note of the study it holds and where: ``{"study": NAME, "storage": WHERE}``
MARK = "study.json"
#: WHERE for the folder's own ``study.journal`` (its path is not kept: a folder moved still resumes)
OWN_JOURNAL = "study.journal"


def storage_of(folder: Path, url: str) -> str:
    """Where ``url`` keeps a study, as the folder's note says it: :data:`OWN_JOURNAL` for the
    folder's own journal (however spelled), else the journal's real path or the database's URL in
    one spelling (:func:`_one_spelling`): a resume that spells the same storage otherwise is not
    refused as another."""
    from castrig.explore.distributed import journal_path

    path = journal_path(url)
    if path is not None:
        try:
            if path.resolve() == (Path(folder) / OWN_JOURNAL).resolve():
                return OWN_JOURNAL
            return f"journal:{path.resolve()}"  # (through a symlink or by its real path: one file)
        except (OSError, RuntimeError):
            return f"journal:{path.absolute()}"
    return _one_spelling(url)


#: the database URL schemes open_storage takes for one database
_SCHEMES = {"postgres": "postgresql", "postgresql+psycopg": "postgresql", "postgresql+psycopg2": "postgresql"}


def _one_spelling(url: str) -> str:
    """A database URL in one spelling (castrig.rig.ownership.url_in_one_spelling, its user kept),
    its scheme as open_storage takes it. Noted with the password masked, a resume with the password
    moved to .pgpass, or as ``postgresql+psycopg://``, was refused as a study in another storage."""
    from castrig.redact import redact_url
    from castrig.rig.ownership import url_in_one_spelling

    scheme, sep, rest = url.partition(":")
    url = _SCHEMES.get(scheme.lower(), scheme) + sep + rest
    try:
        return url_in_one_spelling(url, resolve=False, user=True)
    except ValueError:  # (not a URL urlsplit can take apart: as written, its password out)
        return redact_url(url)


def held_study(folder: Path) -> tuple[str, str] | None:
    """``(study, where)`` the folder's note names, else None (no note, or one not of this shape)."""
    from castrig.jsontext import loads
    from castrig.regular import read_regular

    try:
        data = loads(read_regular(Path(folder) / MARK, max_bytes=1 << 16))
    except (OSError, ValueError):
        return None
    if isinstance(data, dict) and isinstance(data.get("study"), str) and isinstance(data.get("storage"), str):
        return data["study"], data["storage"]
    return None


def _where(storage: str) -> str:
    return "the folder's own study.journal" if storage == OWN_JOURNAL else storage


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


def check_study_folder(folder: Path, name: str, kind: str, url: str) -> None:
    """Refuse (exit 2) to put study ``name`` (a ``kind``: search on workers, map) kept in ``url``
    in a folder that holds another study, the same name in another storage, or a search run in one
    process. Once the storage opened, :func:`note_study` notes it in the folder."""
    where = storage_of(folder, url)
    own = studies_in(folder)
    held = held_study(folder)
    if held is not None and held[1] != OWN_JOURNAL and not held[1].startswith("journal:"):
        held = (held[0], _one_spelling(held[1]))  # (a note's URL read in today's one spelling)
    if held is None and name in own:  # (a folder from before the note: its own journal says)
        held = (name, OWN_JOURNAL)
    if held is not None and held != (name, where):
        raise BadInput(f"--folder {folder}: holds study {held[0]!r} in {_where(held[1])} ({MARK}); {kind} {name!r} in "
                       f"{_where(where)} would overwrite its trial files, map and found recipe (allowed: --study {held[0]} in "
                       f"{_where(held[1])} to resume it, or another --folder)", file=str(folder), field="--folder")
    others = {n: k for n, k in own.items() if n != name}
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


def note_study(folder: Path, name: str, url: str) -> None:
    """Note in the folder (:data:`MARK`) that it holds study ``name`` kept in ``url`` (once its
    storage opened: a URL that could not be used is no study the folder holds)."""
    from castrig.atomic import atomic_write_json

    mark = (name, storage_of(folder, url))
    if held_study(folder) != mark:
        atomic_write_json(Path(folder) / MARK, {"study": mark[0], "storage": mark[1]})


def check_one_process_folder(folder: Path) -> None:
    """Refuse (exit 2) a one-process search in a folder that holds a study on workers or a map:
    it ran a search of its own beside that study, blind to its trials."""
    held = studies_in(folder)
    noted = held_study(folder)
    if not held and noted is not None:  # a study kept elsewhere (--storage): the folder's note says
        held = {noted[0]: "map" if (folder / "map.json").is_file() else "study"}
    if held:
        name, kind = sorted(held.items())[0]
        how = "castrig explore map" if kind == "map" else "--workers N (or --storage URL)"
        what = "a map" if kind == "map" else "a search run on workers"
        raise BadInput(f"--folder {folder}: holds {what}, study {name!r} (study.journal); resume it with {how} "
                       f"({ALLOWED})", file=str(folder), field="--folder")
