"""Files whose bytes say one size and whose image another, met through the real ``castrig
analyse`` in a subprocess: each is refused (exit 2, the file and the limit named) in well under
5 s and without the memory its bytes would take."""

from __future__ import annotations


import numpy as np
import pytest
from PIL import Image

from conftest import campaign, castrig, castrig_main, pore_grid, tiff_of_millions_of_strips


@pytest.mark.parametrize("fmt", ["png", "webp"])
def test_an_image_followed_by_gigabytes_is_refused_before_they_are_read(tmp_path, fmt):
    """A 256 × 256 PNG or WebP followed by 3 GB (sparse here: no disk): the PNG check read the
    whole file (17 s, 3 GB of memory), Pillow's WebP reader too (41 s), and both were measured."""
    path = tmp_path / f"top.{fmt}"
    Image.fromarray(pore_grid()).save(path)
    with open(path, "r+b") as f:
        f.truncate(3 * 2**30)
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path, address_space=2 * 2**30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert f"top.{fmt}: file too large: 3,221,225,472 bytes" in done.stderr and "allowed: at most" in done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_png_with_more_appended_than_its_metadata_could_be_is_refused(tmp_path):
    """Under the general bound but far beyond what a 256 × 256 PNG can hold: 65 MiB after its IEND."""
    path = tmp_path / "top.png"
    Image.fromarray(pore_grid()).save(path)
    with open(path, "ab") as f:
        f.write(bytes(65 << 20))
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.png: file too large" in done.stderr and "a 256 × 256 PNG" in done.stderr


def _one_strip_tiff(path, compression: str, data: bytes) -> None:
    """A 256 × 256 TIFF (1 µm per pixel) in one strip of ``compression``, its strip's bytes then
    replaced by ``data``: the tags still say 256 × 256, the strip's own header says what it says."""
    import struct

    import tifffile

    tifffile.imwrite(path, pore_grid(), compression=compression, rowsperstrip=256, resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tags = tif.pages[0].tags
        where = [(tags["StripOffsets"], len(raw)), (tags["StripByteCounts"], len(data))]
        for tag, value in where:
            struct.pack_into({3: "<H", 4: "<I"}[int(tag.dtype)], raw, tag.valueoffset, value)
    path.write_bytes(bytes(raw) + data)


def _jpeg_declaring(h: int, w: int) -> bytes:
    import struct

    import imagecodecs

    j = bytearray(imagecodecs.jpeg8_encode(pore_grid(), level=90))
    sof = j.find(b"\xff\xc0")
    struct.pack_into(">HH", j, sof + 5, h, w)
    return bytes(j)


def _j2k_declaring(h: int, w: int) -> bytes:
    import struct

    import imagecodecs

    j = bytearray(imagecodecs.jpeg2k_encode(pore_grid(), level=80, codecformat="J2K"))
    siz = j.find(b"\xff\x51")
    struct.pack_into(">II", j, siz + 6, w, h)
    return bytes(j)


@pytest.mark.parametrize("compression, data, codec", [
    ("jpeg", lambda: _jpeg_declaring(60000, 60000), "JPEG"),
    ("jpeg2000", lambda: _j2k_declaring(60000, 60000), "JPEG 2000"),
], ids=["jpeg", "jpeg2000"])
def test_a_tiff_strip_declaring_a_huge_image_of_its_own_is_refused_before_decoding(tmp_path, compression, data, codec):
    """A 256 × 256 JPEG TIFF of 100 kB whose one strip's JPEG header says 60000 × 60000: the
    decoder allocated what the strip said (3.5 GB, 10 s) and the image was measured, exit 0, on
    whatever came out. Under ulimit -v 1.5 GiB, as a small machine has: no MemoryError either."""
    path = tmp_path / "top.tif"
    _one_strip_tiff(path, compression, data())
    done = castrig("analyse", "surface", path.name, "--json", cwd=tmp_path, address_space=3 * 2**29)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert (f"top.tif: its {codec} data declares 60000 × 60000 px in strip 1 (allowed: at most the strip's 256 × 256 px)"
            in done.stderr), done.stderr
    assert done.cpu_s < 5, done.cpu_s


@pytest.mark.parametrize("compression", campaign(["jpeg", "jpeg2000", "png", "webp"], ci={0}))  # CI: the commonest
def test_image_codec_tiffs_of_strips_and_tiles_are_still_measured(tmp_path, compression, capsys, monkeypatch):
    """The check reads each strip's or tile's own header: it passes what the codecs write.
    (Through the CLI's entry point in the test process: no bound on the process is checked here.)"""
    import json

    import tifffile

    img = pore_grid() if compression != "webp" else np.repeat(pore_grid()[..., None], 3, -1)
    for layout in (dict(rowsperstrip=48), dict(tile=(64, 64))):
        tifffile.imwrite(tmp_path / "top.tif", img, compression=compression, resolution=(10000, 10000), resolutionunit=3,
                         **layout)
        monkeypatch.chdir(tmp_path)
        done = castrig_main(capsys, "analyse", "surface", "top.tif", "--json")
        assert done.returncode == 0, done.stderr[-2000:]
        assert json.loads(done.stdout)["pore_count"] == 256


def test_a_tiff_whose_tiles_declare_a_huge_size_is_refused_before_decoding(tmp_path):
    """A 256 × 256 JPEG TIFF in one 256 × 256 tile, its TileWidth and TileLength then set to
    65536: each tile was decoded to its declared size before being cut to the image (12 s,
    gigabytes) and a grey image measured, exit 0."""
    import struct

    import tifffile

    path = tmp_path / "top.tif"
    tifffile.imwrite(path, pore_grid(), tile=(256, 256), compression="jpeg", resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        for name in ("TileWidth", "TileLength"):
            tag = tif.pages[0].tags[name]
            fmt = {3: "<H", 4: "<I"}[int(tag.dtype)]
            struct.pack_into(fmt, raw, tag.valueoffset, 65520 if fmt == "<H" else 65536)
    path.write_bytes(bytes(raw))
    done = castrig("analyse", "surface", path.name, "--json", cwd=tmp_path, address_space=3 * 2**29)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.tif: tile too large: its TileLength × TileWidth declare" in done.stderr and "allowed: at most 100 Mpx" in done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_strip_whose_byte_count_says_gigabytes_is_refused_before_it_is_read(tmp_path):
    """A 256 × 256 Deflate TIFF whose StripByteCounts says 3 GB, in a file made 3 GB long
    (sparse: no disk): the strip was read whole before being inflated (9 s, 3 GB of memory)."""
    import struct

    import tifffile

    path = tmp_path / "top.tif"
    tifffile.imwrite(path, pore_grid(), compression="zlib", rowsperstrip=256, resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["StripByteCounts"]
        struct.pack_into({3: "<H", 4: "<I"}[int(tag.dtype)], raw, tag.valueoffset, 3 * 2**30)
    path.write_bytes(bytes(raw))
    with open(path, "r+b") as f:
        f.truncate(3 * 2**30 + 4096)
    done = castrig("analyse", "surface", path.name, "--json", cwd=tmp_path, address_space=2 * 2**30)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.tif: its strip 1 holds 3,221,225,472 compressed bytes for 256 × 256 px" in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_an_image_cut_into_millions_of_strips_is_refused_before_they_are_read(tmp_path):
    """A TIFF declaring 1 × 20 000 000 px in one-row strips (20 M offsets and byte counts, a
    sparse file of 160 MB): 41 s of CPU and 4 GB before "image too small"."""
    path = tmp_path / "tall.tif"
    tiff_of_millions_of_strips(path)
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path, address_space=2 * 2**30, timeout_s=90)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert ("tall.tif: its image is cut into 20,000,000 pieces (TIFF tag StripOffsets) (allowed: at most 524,288 strips "
            "or tiles)") in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_tag_declaring_a_value_of_gigabytes_is_refused_before_it_is_read(tmp_path):
    """A 256 × 256 TIFF whose ImageDescription declares 1.5 GB, the file made that long (sparse):
    tifffile reads the description whole as it opens the file (1.5 GB of memory, 7 s), and the
    image was measured, exit 0."""
    import struct

    import tifffile

    path = tmp_path / "top.tif"
    tifffile.imwrite(path, pore_grid(), description="x" * 100, resolution=(10000, 10000), resolutionunit=3, metadata=None)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        tag = tif.pages[0].tags["ImageDescription"]
        struct.pack_into("<II", raw, tag.offset + 4, 1_500_000_000, len(raw))  # its count, and its value at the end
    path.write_bytes(bytes(raw))
    with open(path, "r+b") as f:
        f.truncate(len(raw) + 1_500_000_000)
    done = castrig("analyse", "surface", path.name, "--json", cwd=tmp_path, address_space=3 * 2**29)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert ("top.tif: its TIFF tag 270 (ImageDescription) declares a value of 1,500,000,000 bytes (allowed: at most "
            "67,108,864)") in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_jpeg_of_hundreds_of_scans_is_refused_before_it_is_decoded(tmp_path):
    """A progressive JPEG whose last scan is repeated: each scan is one more pass of the decoder
    over the whole image, however few bytes it holds (20 000 copies of one scan of a 2000 × 2000
    px JPEG: 12 s, measured, exit 0; scans of a few bytes over a 100 Mpx image: hours). Here 300
    scans of a 256 × 256 image, which castrig measured."""
    import io

    buf = io.BytesIO()
    Image.fromarray(pore_grid()).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    last_scan = data.rindex(b"\xff\xda")
    assert data.endswith(b"\xff\xd9")
    (tmp_path / "top.jpg").write_bytes(data[:-2] + data[last_scan:-2] * 300 + b"\xff\xd9")
    done = castrig("analyse", "surface", "top.jpg", "--pixel-size", "1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.jpg: holds more than 256 JPEG scans (allowed: at most 256" in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_gif_of_millions_of_frames_is_refused_without_walking_them_all(tmp_path):
    """A GIF says no frame count: Pillow's n_frames walks every frame. 2 500 000 frames of 1 px
    (57 MB) took some 7 s only to be refused ("holds 2500001 frames"); a GIF as large as the
    file limit allows, a minute. The frames are counted to 1000."""
    import io

    buf = io.BytesIO()
    Image.fromarray(pore_grid()).save(buf, "GIF")
    gif = buf.getvalue()
    assert gif.endswith(b";")
    frame = b"\x21\xf9\x04\x00\x00\x00\x00\x00" + b"\x2c\x00\x00\x00\x00\x01\x00\x01\x00\x00" + b"\x02\x02\x44\x01\x00"
    (tmp_path / "top.gif").write_bytes(gif[:-1] + frame * 2_500_000 + b";")
    done = castrig("analyse", "surface", "top.gif", "--pixel-size", "1", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.gif: holds more than 1000 frames (GIF)" in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_jpeg_tiff_strip_of_hundreds_of_scans_is_refused_before_it_is_decoded(tmp_path):
    """The same as a JPEG file's, inside a TIFF: one strip, a progressive JPEG whose smallest scan
    is repeated 300 times; tifffile hands it to the JPEG decoder, one pass per scan."""
    import io

    buf = io.BytesIO()
    Image.fromarray(pore_grid()).save(buf, "JPEG", progressive=True, quality=90)
    data = buf.getvalue()
    starts = [i for i in range(len(data) - 1) if data[i:i + 2] == b"\xff\xda"] + [len(data) - 2]
    scans = [data[a:b] for a, b in zip(starts, starts[1:])]
    smallest = min(scans, key=len)
    _one_strip_tiff(tmp_path / "top.tif", "jpeg", data[:-2] + smallest * 300 + b"\xff\xd9")
    done = castrig("analyse", "surface", "top.tif", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.tif: holds more than 256 JPEG scans in strip 1 (allowed: at most 256" in done.stderr, done.stderr


def test_a_jpeg_of_megabytes_of_stuffed_bytes_is_checked_in_bounded_time(tmp_path):
    """The scan count is found by a regular expression, not a Python loop over each FF byte of
    the entropy-coded data (30 000 000 stuffed FF 00 pairs: some 7 s before the first marker)."""
    import io

    buf = io.BytesIO()
    Image.fromarray(pore_grid()).save(buf, "JPEG")
    data = buf.getvalue()
    sos = data.rindex(b"\xff\xda")
    header = data[: sos + 2 + int.from_bytes(data[sos + 2 : sos + 4], "big")]
    (tmp_path / "top.jpg").write_bytes(header + b"\xff\x00" * 30_000_000 + b"\xff\xd9")
    done = castrig("analyse", "surface", "top.jpg", "--pixel-size", "1", cwd=tmp_path, timeout_s=60)
    assert "Traceback" not in done.stderr, done.stderr[-2000:]
    assert done.cpu_s < 5, done.cpu_s


def test_jpeg_tiles_that_overlap_in_the_file_are_refused_before_they_are_read_again_and_again(tmp_path):
    """20 000 JPEG tiles, each one byte further into one shared 60 kB blob: every tile's bytes were
    searched again (over 2 minutes). Tiles that share the very same bytes are read once; tiles
    that partly overlap are no file a writer makes."""
    import struct

    import tifffile

    path = tmp_path / "top.tif"
    tifffile.imwrite(path, np.zeros((16 * 100, 16 * 200), np.uint8), tile=(16, 16), compression="jpeg",
                     resolution=(10000, 10000), resolutionunit=3)
    raw = bytearray(path.read_bytes())
    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        offsets, counts = page.tags["TileOffsets"], page.tags["TileByteCounts"]
        first, n = page.dataoffsets[0], len(page.dataoffsets)
        blob = bytes(raw[first : first + page.databytecounts[0] - 2]) + b"\xff\x00" * 30_000 + b"\xff\xd9"
        at = len(raw)
        for i in range(n):
            struct.pack_into("<I", raw, offsets.valueoffset + 4 * i, at + i % 1000)
            struct.pack_into("<I", raw, counts.valueoffset + 4 * i, len(blob) - 1000)
    path.write_bytes(bytes(raw) + blob)
    done = castrig("analyse", "surface", path.name, cwd=tmp_path, timeout_s=60)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "top.tif: its tiles" in done.stderr and "overlap in the file" in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def test_a_tiff_of_many_pages_each_just_within_the_strip_bound_is_refused_before_it_is_read(tmp_path):
    """12 image directories, each 1 × 400 000 px in one-row strips (each within the bound of
    524 288 strips; a sparse file of 40 MB): tifffile read and decoded them all, page after page,
    before the stack was refused as too small. The bound holds for the file, not each page."""
    import struct

    n, ntags, pages = 400_000, 10, 12
    ifd_size = 2 + 12 * ntags + 4
    path = tmp_path / "stack.tif"
    with open(path, "wb") as f:
        f.write(b"II*\x00" + struct.pack("<I", 8))
        at = 8
        for page in range(pages):
            offsets_at = at + ifd_size
            counts_at = offsets_at + 4 * n
            following = counts_at + 4 * n if page < pages - 1 else 0
            entries = [(256, 4, 1, 1), (257, 4, 1, n), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1), (273, 4, n, offsets_at),
                       (277, 3, 1, 1), (278, 4, 1, 1), (279, 4, n, counts_at), (284, 3, 1, 1)]
            f.seek(at)
            f.write(struct.pack("<H", ntags) + b"".join(
                struct.pack("<HHIHH", tag, typ, count, value, 0) if typ == 3 else struct.pack("<HHII", tag, typ, count, value)
                for tag, typ, count, value in entries) + struct.pack("<I", following))
            at = counts_at + 4 * n
        f.truncate(at)
    done = castrig("analyse", "surface", path.name, "--pixel-size", "1", cwd=tmp_path, timeout_s=90)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "stack.tif: its images are cut into more than 524,288 strips or tiles in all" in done.stderr, done.stderr
    assert done.cpu_s < 5, done.cpu_s


def _zeros_zlib(n: int, piece: int = 1 << 23) -> bytes:
    """``n`` zero bytes as one zlib stream in some 60 ms: one compressed piece repeated (each ends
    in a full flush, so each repeat is the same bytes), its checksum worked out (adler32 of n zeros)."""
    import struct
    import zlib

    c = zlib.compressobj(9)
    first = c.compress(bytes(piece)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(bytes(piece)) + c.flush(zlib.Z_FULL_FLUSH)
    k, rest = divmod(n, piece)
    tail = c.compress(bytes(rest)) + c.flush()
    return first + again * (k - 1) + tail[:-4] + struct.pack(">I", ((n % 65521) << 16) | 1)


def test_a_16_bit_rgba_png_is_counted_at_16_bits_a_sample(tmp_path, capsys, monkeypatch):
    """A 10000 × 10000 16-bit RGBA PNG (800 MB of pixels, 0.8 MB of file): Pillow calls it "RGBA",
    so it was counted at 8 bits a sample (400 MB, just within the bound), decoded by Pillow and
    again whole by libpng: 7 s of CPU and 1.6 GB at the peak, measured, exit 0. A 16-bit RGBA PNG
    within the bound is measured, at its 16 bits."""
    import json
    import struct
    import zlib

    import imagecodecs

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    w = h = 10_000
    (tmp_path / "deep.png").write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 6, 0, 0, 0))
                                        + chunk(b"IDAT", _zeros_zlib(h * (1 + w * 8))) + chunk(b"IEND", b""))
    done = castrig("analyse", "surface", "deep.png", "--pixel-size", "1", cwd=tmp_path, address_space=3 * 2**29)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "deep.png: image too large: it declares 10000×10000×4 uint16" in done.stderr, done.stderr
    assert "allowed: at most 100 Mpx and 381.5 MiB" in done.stderr, done.stderr
    assert done.cpu_s < 3, done.cpu_s
    rgba = np.repeat(pore_grid()[..., None].astype(np.uint16) * 257, 4, -1)
    rgba[..., 3] = 65535
    (tmp_path / "top.png").write_bytes(imagecodecs.png_encode(rgba))
    monkeypatch.chdir(tmp_path)  # (the file within the bound measured through the CLI's entry point in this process)
    done = castrig_main(capsys, "analyse", "surface", "top.png", "--pixel-size", "1", "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout)["pore_count"] == 256


def _pyramid(path) -> tuple[bytearray, int]:
    """A 256 × 256 TIFF (1 µm per pixel) with one sub-image, its 128 × 128 level in a SubIFD, as
    slide scanners and tifffile's pyramids write them; (its bytes, the offset of the SubIFDs tag's entry)."""
    import struct

    import tifffile

    with tifffile.TiffWriter(path) as tw:
        tw.write(pore_grid(), subifds=1, resolution=(10000, 10000), resolutionunit=3, metadata=None)
        tw.write(pore_grid()[::2, ::2], subfiletype=1, resolution=(5000, 5000), resolutionunit=3, metadata=None)
    raw = bytearray(path.read_bytes())
    first = struct.unpack_from("<I", raw, 4)[0]
    entries = [first + 2 + 12 * i for i in range(struct.unpack_from("<H", raw, first)[0])]
    return raw, next(at for at in entries if struct.unpack_from("<H", raw, at)[0] == 330)


def test_a_tiffs_sub_images_are_held_to_the_bounds_of_its_images(tmp_path, capsys, monkeypatch):
    """tifffile reads the directory of every sub-image (TIFF tag SubIFDs: a pyramid's levels) as it
    sorts the pages into images, but the bounds read before it opened the file walked the main
    images only. A sub-image declaring 100 000 000 strips (a sparse file of 400 MB): 2 GB and 4 s,
    and the main image measured, exit 0; a SubIFDs tag listing one sub-image 100 000 times: each
    read again. A pyramid as scanners write it is still measured, on its full-resolution image."""
    import json
    import struct

    import tifffile

    path = tmp_path / "pyramid.tif"
    raw, _ = _pyramid(path)
    monkeypatch.chdir(tmp_path)  # (the whole pyramid measured through the CLI's entry point in this process)
    done = castrig_main(capsys, "analyse", "surface", path.name, "--json")
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout)
    assert out["pore_count"] == 256 and out["pixel_size_um"] == 1.0
    with tifffile.TiffFile(path) as tif:
        sub = tif.pages[0].subifds[0]
    end = len(raw)
    for i in range(struct.unpack_from("<H", raw, sub)[0]):
        at = sub + 2 + 12 * i
        if struct.unpack_from("<H", raw, at)[0] in (273, 279):  # StripOffsets, StripByteCounts: 10^8 of them
            struct.pack_into("<HII", raw, at + 2, 4, 100_000_000, end)
    (tmp_path / "strips.tif").write_bytes(raw)
    with open(tmp_path / "strips.tif", "r+b") as f:
        f.truncate(end + 400_000_000)
    done = castrig("analyse", "surface", "strips.tif", "--json", cwd=tmp_path, address_space=3 * 2**29)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert ("strips.tif: its sub-image 1 (TIFF tag SubIFDs of image directory 1) is cut into 100,000,000 pieces (TIFF "
            "tag StripOffsets) (allowed: at most 524,288 strips or tiles)") in done.stderr, done.stderr
    assert done.cpu_s < 3, done.cpu_s
    raw, tag_at = _pyramid(path)
    struct.pack_into("<HII", raw, tag_at + 2, 4, 100_000, len(raw))  # the SubIFDs tag: 100 000 times the one sub-image
    (tmp_path / "many.tif").write_bytes(bytes(raw) + struct.pack("<I", sub) * 100_000)
    done = castrig("analyse", "surface", "many.tif", "--json", cwd=tmp_path)
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert "many.tif: lists more than 256 sub-images (TIFF tag SubIFDs) (allowed: at most 256)" in done.stderr, done.stderr
    assert done.cpu_s < 3, done.cpu_s
