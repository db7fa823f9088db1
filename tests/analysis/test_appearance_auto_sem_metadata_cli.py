"""``castrig analyse surface --appearance auto`` takes ``sem`` for a file that carries an SEM
vendor's own metadata, and says how it chose (the real CLI in a subprocess).

An outside tester's find: a genuine Zeiss SEM TIFF (benchmarks/micrographs, SmartSEM tag 34118)
was measured as optical by ``auto`` (opening 0.230) against 0.297 with ``--appearance sem``:
``auto`` only looked for bright pore rims in the image. Now the instrument's metadata decides
(Zeiss 34118, FEI/Thermo 34682, the TESCAN/Hitachi/JEOL sidecars); a file without it is still
decided from the image, as before, and the result says which way (quality.appearance_from).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import tifffile

from conftest import ROOT, analysed, castrig

ZEISS = ROOT / "benchmarks" / "micrographs" / "nanoporous_gold_zeiss_500kx_aquami.tif"


def _surface(tmp_path: Path, name: str, *args: str) -> dict:
    return analysed("surface", name, *args, cwd=tmp_path)


@pytest.fixture(scope="module")
def zeiss_pixels() -> tuple:
    with tifffile.TiffFile(ZEISS) as tif:
        return tif.pages[0].asarray(), tif.pages[0].tags


@pytest.mark.slow  # (CI budget, 2026-12-07: `-m slow` runs it; its siblings in CI cover the path)
def test_a_zeiss_sem_tiff_is_measured_as_sem_by_auto_and_says_why(tmp_path: Path):
    shutil.copy(ZEISS, tmp_path / "zeiss.tif")
    auto = _surface(tmp_path, "zeiss.tif", "--appearance", "auto")
    sem = _surface(tmp_path, "zeiss.tif", "--appearance", "sem")
    assert auto["quality"]["appearance"] == "sem" and auto["opening_ratio"] == pytest.approx(sem["opening_ratio"])
    assert "Zeiss SmartSEM tag 34118" in auto["quality"]["appearance_from"], auto["quality"]
    assert auto["quality"]["appearance_from"].startswith("auto: sem")
    assert sem["quality"]["appearance_from"] == "--appearance sem"
    table = castrig("analyse", "surface", "zeiss.tif", "--appearance", "auto", cwd=tmp_path, COLUMNS="200")
    assert table.returncode == 0 and "appearance (top view): sem (auto: sem, the file carries an SEM's own metadata" \
        in " ".join(table.stdout.split()), table.stdout[-1500:]


#: a corner of the Zeiss view (384² of 768 × 1024): where the file's metadata decides, the image's
#: size is not the point, and the measurement after the decision costs a fifth
CORNER = (slice(0, 384), slice(0, 384))


def test_an_fei_tag_decides_too(tmp_path: Path, zeiss_pixels):
    pixels, _ = zeiss_pixels
    tifffile.imwrite(tmp_path / "fei.tif", pixels[CORNER], extratags=[(34682, "s", 0, "[Scan]\r\nPixelWidth=1.5e-09\r\n", True)])
    out = _surface(tmp_path, "fei.tif", "--appearance", "auto")
    assert out["quality"]["appearance"] == "sem" and "FEI/Thermo tag 34682" in out["quality"]["appearance_from"]


def test_without_sem_metadata_auto_still_decides_from_the_image(tmp_path: Path, zeiss_pixels):
    """The same pixels without the Zeiss tag (a plain TIFF, the pixel size given): the image's own
    test decides, as it did before, and the result says so. Its faint ridge round the pores (under
    the rim test, over edges_rims.RIM_AMBIGUOUS) is flagged appearance_ambiguous: read as optical the
    opening is 0.230 against 0.297 as sem, and the verdict no longer trusts it."""
    pixels, _ = zeiss_pixels
    tifffile.imwrite(tmp_path / "plain.tif", pixels)
    out = _surface(tmp_path, "plain.tif", "--appearance", "auto", "--pixel-size", "0.0015")
    optical = _surface(tmp_path, "plain.tif", "--appearance", "optical", "--pixel-size", "0.0015")
    assert out["quality"]["appearance"] == "optical" and out["opening_ratio"] == pytest.approx(optical["opening_ratio"])
    assert out["quality"]["appearance_from"].startswith("auto: optical, but a bright ridge round the pores"), out["quality"]
    assert "give --appearance sem or optical" in out["quality"]["appearance_from"]
    assert "appearance_ambiguous" in out["quality"]["flagged"]["opening_ratio"], out["quality"]
    assert "instrument_metadata" not in out["images"]["surface"]


def test_an_sem_sidecar_decides_for_a_png(tmp_path: Path, zeiss_pixels):
    """Hitachi saves a PNG/BMP/JPEG with a .txt sidecar: that is the SEM's own metadata too."""
    import imageio.v3 as iio

    pixels, _ = zeiss_pixels
    iio.imwrite(tmp_path / "hitachi.png", pixels[CORNER])
    (tmp_path / "hitachi.txt").write_text("[SemImageFile]\nPixelSize=1.5\n")
    out = _surface(tmp_path, "hitachi.png", "--appearance", "auto")
    assert out["quality"]["appearance"] == "sem" and "Hitachi sidecar hitachi.txt" in out["quality"]["appearance_from"]
