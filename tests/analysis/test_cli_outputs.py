"""`castrig analyse ... --rois ZIP` is an output: it never destroys an input or a foreign file.

The real CLI in a subprocess, as the audit met it (repro_9: `analyse surface top.tif --rois
top.tif` exited 0 with the micrograph replaced by a zip), where a bound on the process or a wait
is checked; the other refusals and replacements through the CLI's entry point in the test process
(conftest ``castrig_main``: the same command, without a process's start-up).
"""

from __future__ import annotations

import hashlib
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from castrig.tiffio import write_micrograph
from conftest import castrig_in, castrig_main, pore_grid


def digest(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


@pytest.fixture
def micrographs(tmp_path: Path) -> Path:
    write_micrograph(tmp_path / "top.tif", pore_grid(), 0.25)
    sec = np.full((120, 300), 30, np.uint8)
    sec[40:80] = 180  # a film band on a dark background
    write_micrograph(tmp_path / "cut.tif", sec, 0.1)
    return tmp_path


@pytest.mark.parametrize("spelling", ["top.tif", pytest.param("./top.tif", marks=pytest.mark.slow),  # CI: the name, a link and a detour
                                      "../{d}/top.tif", pytest.param("{abs}", marks=pytest.mark.slow), "link.zip",
                                      pytest.param("hard.zip", marks=pytest.mark.slow)])
def test_rois_on_the_input_is_refused_and_the_input_survives(micrographs: Path, spelling: str, capsys, monkeypatch):
    d = micrographs
    (d / "link.zip").symlink_to(d / "top.tif")
    os.link(d / "top.tif", d / "hard.zip")
    before = digest(d / "top.tif")
    target = spelling.format(d=d.name, abs=d / "top.tif")
    if spelling == "top.tif":  # the audit's own command (repro_9), as a castrig process
        res = castrig_in("analyse", "surface", "top.tif", "--rois", target, cwd=d)
    else:
        monkeypatch.chdir(d)
        res = castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", target)
    assert res.returncode == 2, res.stdout + res.stderr
    assert "input image" in res.stderr and "Traceback" not in res.stderr
    assert digest(d / "top.tif") == before


def test_membrane_rois_on_an_input_is_refused(micrographs: Path, capsys, monkeypatch):
    d = micrographs
    monkeypatch.chdir(d)
    before = {n: digest(d / n) for n in ("top.tif", "cut.tif")}
    for target in ("cut.tif", "top.tif"):
        res = castrig_main(capsys, "analyse", "membrane", "--surface", "top.tif", "--section", "cut.tif", "--rois", target)
        assert res.returncode == 2 and "input image" in res.stderr, res.stderr
    # the section's set goes to X-section.zip: that name may be an input too
    os.link(d / "cut.tif", d / "x-section.zip")
    res = castrig_main(capsys, "analyse", "membrane", "--surface", "top.tif", "--section", "x-section.zip", "--pixel-size",
                       "0.1", "--rois", "x.zip")
    assert res.returncode == 2 and "input image" in res.stderr, res.stderr
    assert not (d / "x.zip").exists()
    assert {n: digest(d / n) for n in ("top.tif", "cut.tif")} == before


def test_overlay_on_the_input_is_refused(micrographs: Path, capsys, monkeypatch):
    d = micrographs
    before = digest(d / "top.tif")
    monkeypatch.chdir(d)
    res = castrig_main(capsys, "analyse", "surface", "top.tif", "--overlay", "./top.tif")
    assert res.returncode == 2 and "input image" in res.stderr
    assert digest(d / "top.tif") == before


def _foreign_png(p: Path) -> None:
    import imageio.v3 as iio

    iio.imwrite(p, pore_grid(64))  # a PNG, but not an overlay castrig wrote


#: ``--overlay`` targets refused before anything is measured (audit 3: tracebacks, exit 1, after
#: the whole measurement, for the first three; the others were overwritten without a word).
OVERLAY_REFUSALS = {
    "missing_folder": ("nowhere/x.png", None, "does not exist"),
    "no_suffix": ("noext", None, ".png only"),
    "other_suffix": ("pores.jpg", None, ".png only"),
    "a_folder": ("sub", lambda p: p.mkdir(), "is a folder"),
    "a_folder_named_png": ("sub.png", lambda p: p.mkdir(), "is a folder"),
    "notes": ("notes.txt", lambda p: p.write_text("operator notes, do not lose\n"), ".png only"),
    "notes_named_png": ("notes.png", lambda p: p.write_text("operator notes, do not lose\n"), "not an overlay castrig wrote"),
    "another_micrograph": ("other.png", _foreign_png, "not an overlay castrig wrote"),
    "dangling_link": ("link.png", lambda p: p.symlink_to(p.parent / "gone.png"), "not an overlay castrig wrote"),
}


@pytest.mark.parametrize("case", OVERLAY_REFUSALS)
def test_overlay_that_cannot_or_must_not_be_written_is_refused_first(micrographs: Path, case: str, capsys, monkeypatch):
    d = micrographs
    name, make, says = OVERLAY_REFUSALS[case]
    target = d / name
    if make:
        make(target)
    before = {p.name: (digest(p) if p.is_file() else None) for p in d.iterdir()}
    monkeypatch.chdir(d)
    measured = []
    import castrig.analysis

    monkeypatch.setattr(castrig.analysis, "analyse_surface", lambda *a, **k: measured.append(1))
    res = castrig_main(capsys, "analyse", "surface", "top.tif", "--overlay", name)
    assert res.returncode == 2, res.stdout + res.stderr
    assert f"error: --overlay {name}: " in res.stderr and says in res.stderr, res.stderr
    assert not measured  # refused before the measurement, not after it
    assert {p.name: (digest(p) if p.is_file() else None) for p in d.iterdir()} == before  # nothing written


def test_an_earlier_overlay_is_replaced_atomically(micrographs: Path, capsys, monkeypatch):
    """The only existing file --overlay replaces is an overlay castrig wrote (a PNG with its mark)."""
    from PIL import Image

    from castrig.analysis.overlay import OVERLAY_MARK, is_overlay_png

    d = micrographs
    monkeypatch.chdir(d)
    for _ in range(2):
        res = castrig_main(capsys, "analyse", "surface", "top.tif", "--overlay", "pores.png")
        assert res.returncode == 0, res.stderr
        assert is_overlay_png(d / "pores.png")
        with Image.open(d / "pores.png") as im:
            assert im.format == "PNG" and im.mode == "RGB" and im.size == (256, 256)
            assert im.text[OVERLAY_MARK[0]] == OVERLAY_MARK[1]
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_an_existing_file_that_is_no_roi_set_is_refused(micrographs: Path, capsys, monkeypatch):
    d = micrographs
    (d / "notes.zip").write_text("three weeks of notes\n")
    monkeypatch.chdir(d)
    res = castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", "notes.zip")
    assert res.returncode == 2 and "not an ImageJ ROI set" in res.stderr, res.stderr
    assert (d / "notes.zip").read_text() == "three weeks of notes\n"
    with zipfile.ZipFile(d / "other.zip", "w") as zf:  # a zip, but not of ROIs
        zf.writestr("data.csv", "a,b\n")
    assert castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", "other.zip").returncode == 2
    (d / "dir.zip").mkdir()
    assert castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", "dir.zip").returncode == 2


def test_an_earlier_roi_set_is_replaced(micrographs: Path, capsys, monkeypatch):
    d = micrographs
    monkeypatch.chdir(d)
    assert castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", "pores.zip").returncode == 0
    first = zipfile.ZipFile(d / "pores.zip").namelist()
    assert first and all(n.endswith(".roi") for n in first)
    res = castrig_main(capsys, "analyse", "surface", "top.tif", "--rois", "pores.zip")
    assert res.returncode == 0, res.stderr
    assert zipfile.ZipFile(d / "pores.zip").namelist() == first  # replaced, not appended to
    assert not [p for p in d.iterdir() if p.name.endswith(".tmp")]


def test_write_rois_is_atomic(tmp_path: Path):
    """A failure half-way through leaves the earlier set whole and no temporary file."""
    from roifile import ImagejRoi

    from castrig.analysis.rois import is_roi_set
    from castrig.cli.analyse import _write_rois  # what --rois does
    from castrig.errors import BadInput

    path = tmp_path / "pores.zip"
    good = [ImagejRoi.frompoints(np.array([[0, 0], [4, 0], [4, 4]], float), name=f"pore-{k}") for k in range(3)]
    _write_rois(path, good)
    before = digest(path)

    class Broken(ImagejRoi):
        def tobytes(self):
            raise OSError(28, "No space left on device")

    bad = good[:2] + [Broken.frompoints(np.array([[0, 0], [1, 1], [2, 0]], float), name="pore-9")]
    with pytest.raises(BadInput, match="cannot write the ROI set"):
        _write_rois(path, bad)
    assert digest(path) == before and is_roi_set(path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pores.zip"]


@pytest.mark.parametrize("flag, target", [("--rois", "/dev/zero"), ("--rois", "link.zip"), ("--rois", "pipe.zip"),
                                          ("--overlay", "pipe.png")])
def test_an_output_that_is_a_device_or_a_pipe_is_refused_at_once(micrographs: Path, flag: str, target: str):
    """An outside tester: --rois /dev/zero (or a link x.zip to it) was read to see whether it was an
    earlier ROI set: 2.7 GB of memory before the memory check stopped it; --rois or --overlay on
    a named pipe waited for a writer, without end."""
    d = micrographs
    (d / "link.zip").symlink_to("/dev/zero")
    os.mkfifo(d / "pipe.zip")
    os.mkfifo(d / "pipe.png")
    res = castrig_in("analyse", "surface", "top.tif", flag, target, cwd=d, timeout_s=30)
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "is not a regular file" in said and "Traceback" not in said, said


def test_an_existing_zip_declaring_a_huge_directory_is_refused_unread(micrographs: Path):
    """An existing pores.zip whose end record declares a directory of 3 GB (a sparse file): the
    check for an earlier ROI set read it whole (zipfile: 3.2 GB of memory, 10 s of CPU) before
    refusing it. Now the declared size is refused before a byte of the directory is read, and
    the message says what it declares and what is allowed; the file is left as it was."""
    import struct

    d = micrographs
    n = 3 * 2**30
    with open(d / "pores.zip", "wb") as f:
        f.truncate(n - 22)
        f.seek(n - 22)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 1000, 1000, n - 22, 0, 0))
    res = castrig_in("analyse", "surface", "top.tif", "--rois", "pores.zip", cwd=d, address_space=3 * 2**29)
    said = " ".join(res.stderr.split())
    assert res.returncode == 2 and "Traceback" not in said, said
    assert ("--rois pores.zip: exists and is not an ImageJ ROI set (.zip of .roi files) (its zip directory declares 1,000 "
            "members in 3,221,225,450 bytes; allowed: at most 1,048,576 members and 134,217,728 bytes)") in said, said
    assert res.cpu_s < 3, res.cpu_s
    assert (d / "pores.zip").stat().st_size == n
