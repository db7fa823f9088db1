"""The images earlier runs of a data root took from a folder camera, so a new run takes the next.

Met from outside: two `castrig run`s, one after the other, on a profile whose camera is a folder
(the microscope's software drops its micrographs there): each started at the folder's first
file, and the second run's membrane was measured and judged on the first run's micrograph,
exit 0, no word. A queue's runs and a resumed run already went on after the frames taken before
them (:meth:`castrig.devices.camera.FolderCamera.resume_after`), but only after the runs they
knew of. Now every run takes only the images after the last one the other runs of its data
root took from that folder, in file-name order (:meth:`~castrig.devices.camera.FolderCamera.skip_earlier`),
never theirs again, and its events say so; with none left, its capture says so and the run
stops safe as with an empty folder. Another data root, or another folder, starts at the first.
A camera replaying a video file (OpenCV, a path) had the same fault, each run opening the file at
its first frame: its frames are followed alike (their ``frame_index``).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from castrig.errors import CastrigError

Frame = tuple[str, dict[str, Any]]


def earlier_folder_frames(data_root: Path, this_run: Path) -> tuple[list[Frame], list[str]]:
    """(illumination, metadata) of every image a folder camera or a video file gave the runs of ``data_root``
    other than ``this_run``, and those runs' names. A run folder that cannot be read is passed
    over (its images are not known: the camera may hand their files again)."""
    from castrig.store.sqlite_connect import connect_readonly

    frames: list[Frame] = []
    runs: list[str] = []
    try:
        folders = sorted(p for p in Path(data_root).iterdir() if p.is_dir() and p != Path(this_run))
    except OSError:
        return frames, runs
    for run_dir in folders:
        if not (run_dir / "run.sqlite").is_file():
            continue
        try:
            db = connect_readonly(run_dir / "run.sqlite")
            try:
                rows = db.execute("SELECT illumination, metadata_json FROM images ORDER BY id").fetchall()
            finally:
                db.close()
        except (sqlite3.Error, OSError, CastrigError):
            continue
        took = False
        for illumination, text in rows:
            try:
                meta = json.loads(text)
            except (TypeError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("backend") in ("folder", "opencv"):  # (a folder, a video file)
                frames.append((str(illumination), meta))
                took = True
        if took:
            runs.append(run_dir.name)
    return frames, runs


def continue_after_earlier_runs(camera: Any, data_root: Path, this_run: Path) -> str | None:
    """Make ``camera`` (a folder camera, a video file's; any other is left alone) take only the images after
    those the other runs of ``data_root`` took from its folder; what the run's events say of it
    (None: no earlier run took any of them)."""
    if camera is None or not hasattr(camera, "skip_earlier"):
        return None
    frames, runs = earlier_folder_frames(data_root, this_run)
    last = camera.skip_earlier(frames) if frames else {}
    if not last:
        return None
    named = ", ".join(runs[-3:]) + (f" and {len(runs) - 3} more" if len(runs) > 3 else "")
    took = ", ".join(f"{ill}: {name}" for ill, name in sorted(last.items()))
    if hasattr(camera, "folder"):
        return (f"camera {camera.name}: earlier runs of this data root ({named}) took images from {camera.folder} "
                f"up to {took}; this run takes only the images after those, in file-name order, never theirs")
    return (f"camera {camera.name}: earlier runs of this data root ({named}) took frames from {camera.source} "
            f"up to {took}; this run takes only the frames after those, in the file's order, never theirs")


def camera_source(camera: Any) -> str:
    """Where a replaying camera's images come from: a folder camera's folder, a video file."""
    return str(getattr(camera, "folder", None) or getattr(camera, "source", ""))
