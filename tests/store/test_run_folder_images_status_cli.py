"""Images planted in a run folder (anyone who can write it), met through the real ``castrig
status``: the image list's sizes are read from each TIFF's header and first directory only, a
file that gives none is said so, and the console line reads no image at all."""

from __future__ import annotations

import json
import shutil
import sqlite3
import struct

import numpy as np

from conftest import castrig, tiff_of_millions_of_strips


def _tiff_with_a_huge_description(path) -> None:
    """A 64 × 48 TIFF whose ImageDescription declares 1.5 GB, the file made that long (sparse)."""
    import tifffile

    tifffile.imwrite(path, np.zeros((48, 64), np.uint8), description="x" * 100, metadata=None)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["ImageDescription"]
        struct.pack_into("<II", raw, tag.offset + 4, 1_500_000_000, len(raw))
    path.write_bytes(bytes(raw))
    with open(path, "r+b") as f:
        f.truncate(len(raw) + 1_500_000_000)


def test_planted_images_cost_castrig_status_no_memory_and_the_console_line_reads_none(tmp_path, finished_demo_run):
    """tifffile opened each image for its size and read every tag value whole: a planted TIFF
    whose description declared 1.5 GB (sparse) and one of 20 M strips took `castrig status --json`
    seconds of CPU and GBs (MemoryError in 1.5 GB of address space); the console line, which
    shows no image, read them all the same."""
    data, run_id = finished_demo_run
    run = tmp_path / run_id
    shutil.copytree(data / run_id, run)
    with sqlite3.connect(run / "run.sqlite") as db:
        paths = [p for (p,) in db.execute("SELECT path FROM images ORDER BY id")]
    _tiff_with_a_huge_description(run / paths[0])
    tiff_of_millions_of_strips(run / paths[1])
    (run / paths[2]).write_bytes(b"GIF89a" + b"\0" * 100)  # no TIFF at all
    done = castrig("status", str(run), "--json", address_space=3 * 2**29)
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    images = json.loads(done.stdout.splitlines()[0])["images"]
    assert (images[0]["width_px"], images[0]["height_px"]) == (64, 48), images[0]
    assert (images[1]["width_px"], images[1]["height_px"]) == (1, 20_000_000), images[1]
    assert images[2].get("image_unreadable") == "not a TIFF (its first bytes)", images[2]
    assert images[3]["width_px"] > 0 and "image_unreadable" not in images[3], images[3]
    assert done.cpu_s < 3, done.cpu_s
    line = castrig("status", str(run), address_space=3 * 2**29)  # the console line: shows no image, reads none
    assert line.returncode == 0 and "Traceback" not in line.stderr and "completed" in line.stdout, line.stdout + line.stderr
    assert line.cpu_s < 3, line.cpu_s
