"""Micrograph TIFF I/O: pixel size in the resolution tags, metadata as JSON, clear errors."""

from __future__ import annotations

import numpy as np
import pytest
import tifffile

from castrig.errors import BadInput
from castrig.tiffio import read_micrograph, write_micrograph


def test_roundtrip_pixel_size_and_metadata(tmp_path):
    a = (np.arange(30 * 40) % 65535).astype(np.uint16).reshape(30, 40)
    p = write_micrograph(tmp_path / "m.tif", a, 0.125, {"illumination": "reflected", "exposure_s": 0.01})
    b, px, meta = read_micrograph(p)
    assert np.array_equal(a, b) and b.dtype == np.uint16
    assert px == pytest.approx(0.125, rel=1e-9)
    assert meta["illumination"] == "reflected" and meta["exposure_s"] == 0.01
    with tifffile.TiffFile(p) as t:
        tags = t.pages[0].tags
        assert int(tags["ResolutionUnit"].value) == 3  # CENTIMETER
        num, den = tags["XResolution"].value
        assert num / den == pytest.approx(1e4 / 0.125)
    assert sorted(x.name for x in tmp_path.iterdir()) == ["m.tif"]  # no temp file left


def test_overwrite_is_atomic_replace(tmp_path):
    p = tmp_path / "m.tif"
    write_micrograph(p, np.zeros((4, 4), np.uint8), 1.0)
    write_micrograph(p, np.ones((5, 5), np.uint8), 2.0)
    a, px, _ = read_micrograph(p)
    assert a.shape == (5, 5) and px == pytest.approx(2.0)
    assert len(list(tmp_path.iterdir())) == 1


def test_imagej_micron_inch_and_none(tmp_path):
    a = np.zeros((8, 8), np.uint8)
    tifffile.imwrite(tmp_path / "ij.tif", a, imagej=True, resolution=(1 / 0.3, 1 / 0.3), metadata={"unit": "micron"})
    assert read_micrograph(tmp_path / "ij.tif")[1] == pytest.approx(0.3)
    tifffile.imwrite(tmp_path / "ij_um.tif", a, imagej=True, resolution=(20, 20), metadata={"unit": "um"})
    assert read_micrograph(tmp_path / "ij_um.tif")[1] == pytest.approx(0.05)
    tifffile.imwrite(tmp_path / "inch.tif", a, resolution=(2540, 2540), resolutionunit="INCH")
    assert read_micrograph(tmp_path / "inch.tif")[1] == pytest.approx(10.0)
    tifffile.imwrite(tmp_path / "none.tif", a)
    assert read_micrograph(tmp_path / "none.tif")[1] is None


def test_png_rgb_becomes_grey_without_pixel_size(tmp_path):
    import imageio.v3 as iio

    g = np.tile(np.arange(0, 250, 10, dtype=np.uint8), (6, 1))
    iio.imwrite(tmp_path / "c.png", np.stack([g, g, g], -1))
    a, px, meta = read_micrograph(tmp_path / "c.png")
    assert a.ndim == 2 and px is None and meta == {}
    assert np.abs(a.astype(int) - g).max() <= 1


@pytest.mark.parametrize("shape", [(2, 8, 8), (8, 8, 5)])
def test_wrong_shape_is_bad_input(tmp_path, shape):
    p = tmp_path / "bad.tif"
    tifffile.imwrite(p, np.zeros(shape, np.uint8))
    with pytest.raises(BadInput) as e:
        read_micrograph(p)
    assert "bad.tif" in str(e.value) and e.value.file == str(p)


def test_unreadable_and_missing_are_bad_input(tmp_path):
    p = tmp_path / "junk.tif"
    p.write_bytes(b"not a tiff at all")
    with pytest.raises(BadInput, match="junk.tif"):
        read_micrograph(p)
    with pytest.raises(BadInput, match="nothere.png"):
        read_micrograph(tmp_path / "nothere.png")
    with pytest.raises(BadInput):
        write_micrograph(tmp_path / "x.tif", np.zeros((3, 3, 3)), 1.0)
