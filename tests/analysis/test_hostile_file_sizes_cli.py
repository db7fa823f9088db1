"""Files whose bytes say one size and whose image another, met through the real ``castrig
analyse`` in a subprocess: each is refused (exit 2, the file and the limit named) in well under
5 s and without the memory its bytes would take."""

from __future__ import annotations

import time

import numpy as np
import pytest
from PIL import Image

from conftest import castrig


def _pores() -> np.ndarray:
    """A 256 × 256 top view: dark round pores 16 px apart on a bright film."""
    y, x = np.mgrid[0:256, 0:256]
    img = np.full((256, 256), 200, np.uint8)
    img[((y % 16) - 8) ** 2 + ((x % 16) - 8) ** 2 < 25] = 40
    return img


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_an_image_followed_by_gigabytes_is_refused_before_they_are_read(tmp_path, fmt):
    """A 256 × 256 PNG or WebP followed by 3 GB (sparse here: no disk): the PNG check read the
    whole file (17 s, 3 GB of memory), Pillow's WebP reader too (41 s), and both were measured."""
    path = tmp_path / f"top.{fmt}"
    Image.fromarray(_pores()).save(path)
    with open(path, "r+b") as f:
        f.truncate(3 * 2**30)
    t0 = time.monotonic()
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path, address_space=2 * 2**30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"top.{fmt}: file too large: 3,221,225,472 bytes" in done.stderr and "allowed: at most" in done.stderr
    assert time.monotonic() - t0 < 5


def test_a_png_with_more_appended_than_its_metadata_could_be_is_refused(tmp_path):
    """Under the general bound but far beyond what a 256 × 256 PNG can hold: 65 MiB after its IEND."""
    path = tmp_path / "top.png"
    Image.fromarray(_pores()).save(path)
    with open(path, "ab") as f:
        f.write(bytes(65 << 20))
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.png: file too large" in done.stderr and "a 256 × 256 PNG" in done.stderr
