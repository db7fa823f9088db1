"""What `castrig queue --resume` takes besides its state file: nothing that would change the queue.

A queue goes on with the profile, data root, operator and seeds its state file holds. ``queue
--resume Q --profile rig2.yaml --operator morning --seed 9 --repeat 3 --data elsewhere`` ran the
rest on the file's profile and data root, as the night's operator, with the file's seeds and no
more runs, and exited 0: every option said nothing and did nothing. Each one that would change the
queue is refused (exit 2, before the rig is touched), naming the option, the file and what it holds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from castrig.errors import BadInput


def _same_path(a: Path, b: Path) -> bool:
    try:
        return a.expanduser().resolve() == b.expanduser().resolve()
    except (OSError, RuntimeError):  # (a symlink loop: resolve gives up)
        return a.expanduser().absolute() == b.expanduser().absolute()


def refuse_queue_changes_on_resume(state: dict[str, Any], state_path: Path, *, repeat: int, profile: Path | None,
                                   data: Path | None, seed: int | None, operator: str) -> None:
    """BadInput naming the first option given with --resume that differs from the queue's own."""
    kept = state.get("data")  # (not a path: refused for what it is by the resume's own checks)
    data_root = Path(kept) if isinstance(kept, str) and kept else Path(state_path).absolute().parent
    held = str(state.get("operator") or "")
    differs = [
        ("--profile", str(profile), f"the profile {state['profile']}",
         profile is not None and not _same_path(Path(profile), Path(state["profile"]))),
        ("--data", str(data), f"the data root {data_root}", data is not None and isinstance(kept, (str, type(None))) and not _same_path(Path(data), data_root)),
        ("--operator", operator, f"the operator {held!r}" if held else "no operator", bool(operator) and operator != held),
        ("--seed", str(seed), "a seed for each of its runs", seed is not None),
        ("--repeat", str(repeat), "the runs the queue was started with", repeat != 1),
    ]
    for option, given, holds, refused in differs:
        if refused:
            raise BadInput(
                f"castrig queue --resume {state_path}: {option} {given} would change the queue, and --resume goes on "
                f"with what its state file holds: {holds} (allowed: {option} left out"
                f"{'' if option in ('--seed', '--repeat') else ', or the same as the file'}); nothing run, the rig not "
                "touched. For another rig, root, operator or more runs start a new `castrig queue` with the recipes "
                "left", file=str(state_path), field=option)
