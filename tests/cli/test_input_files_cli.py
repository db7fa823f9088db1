"""Inputs that are not what the command reads, from the outside (the real ``castrig`` process):
a recipe or profile that is a named pipe, a device or a folder; a pixel size written with a
decimal comma; a TIFF whose resolution tag is there but 0. Each is refused at once, exit 2, one
line naming the file (or the option and its value) and what is allowed."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from conftest import ROOT, castrig, castrig_main, refused

DEMO = str(ROOT / "recipes" / "demo.yaml")
PROFILE = str(ROOT / "hw_profiles" / "sim.yaml")


@pytest.mark.parametrize("args", [["check", "{f}"], ["check", DEMO, "--profile", "{f}"], ["run", "{f}", "--data", "{runs}", "-q"],
                                  ["run", DEMO, "--profile", "{f}", "--data", "{runs}", "-q"]])
def test_a_named_pipe_without_a_writer_is_refused_not_waited_on(tmp_path: Path, args: list[str]):
    """`castrig check FIFO` (or run, or --profile FIFO) waited for ever for a writer."""
    fifo = tmp_path / "recipe.yaml"
    os.mkfifo(fifo)
    argv = [a.format(f=fifo, runs=tmp_path / "runs") for a in args]
    refused(castrig(*argv, timeout_s=30), f"{fifo}: not a regular file but a named pipe (FIFO)", "allowed:")
    assert not (tmp_path / "runs").exists()


@pytest.mark.parametrize("given,kind", [("/dev/null", "a character device"), ("{tmp}", "a folder")])
def test_a_device_or_a_folder_is_named_as_what_it_is(tmp_path: Path, given: str, kind: str):
    path = given.format(tmp=tmp_path)
    refused(castrig("check", path, timeout_s=30), f"{path}: not a regular file but {kind}")


def test_the_shells_pipe_is_still_read(tmp_path: Path):
    """`castrig check <(cat recipe.yaml)`: an anonymous pipe, its writer there, is read as before."""
    r, w = os.pipe()
    try:
        os.write(w, Path(DEMO).read_bytes())
        os.close(w)
        done = castrig("check", f"/dev/fd/{r}", "--profile", PROFILE, pass_fds=(r,), timeout_s=30)
    finally:
        os.close(r)
    assert done.returncode == 0 and "valid recipe" in done.stdout, done.stdout + done.stderr


def _tiny_tiff(path: Path, **resolution) -> Path:
    """A 64² grey TIFF; ``resolution``: tifffile's resolution and resolutionunit."""
    import numpy as np
    import tifffile

    tifffile.imwrite(path, (np.random.default_rng(0).random((64, 64)) * 255).astype(np.uint8), **resolution)
    return path


@pytest.mark.parametrize("value,says", [("1,5", "a decimal comma: write 1.5"), ("abc", "not a number (allowed:")])
def test_a_pixel_size_that_is_no_number_is_said_in_our_words(tmp_path: Path, value: str, says: str, capsys):
    """`--pixel-size 1,5` got typer's "Invalid value for '--pixel-size': Input should be a valid
    number": no unit, no range, nothing about the comma."""
    image = _tiny_tiff(tmp_path / "top.tif")
    for command in ("surface", "section"):
        said = refused(castrig_main(capsys, "analyse", command, str(image), "--pixel-size", value),
                       f"--pixel-size '{value}': not a number", says, "µm per pixel", "a positive number from 0.0005 to 50", "with a decimal point, not a comma")
        assert "Invalid value" not in said and "Usage:" not in said, said


def test_a_tiff_resolution_tag_of_0_is_said_to_be_there_and_invalid(tmp_path: Path, capsys):
    """XResolution = 0 was "no pixel size in the file", as if the tag were missing."""
    import tifffile

    image = _tiny_tiff(tmp_path / "zero.tif", resolution=((0, 1), (0, 1)), resolutionunit=tifffile.RESUNIT.CENTIMETER)
    said = refused(castrig_main(capsys, "analyse", "surface", str(image)),
                   f"{image}: its TIFF resolution tag XResolution is present but 0", "invalid", "give --pixel-size UM")
    assert "no pixel size in the file" not in said, said
    plain = _tiny_tiff(tmp_path / "plain.tif")  # no calibration at all: said as before
    refused(castrig_main(capsys, "analyse", "surface", str(plain)), f"{plain}: no pixel size in the file (surface)")
