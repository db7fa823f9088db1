"""A micrograph's pixel size from the microscope's own metadata, where the TIFF has no resolution tags.

Zeiss SmartSEM writes its settings as text in TIFF tag 34118 ("Image Pixel Size = 2.5 nm"),
FEI/Thermo Fisher in tag 34682 (``[Scan] PixelWidth`` in metres); TESCAN, Hitachi and JEOL write a
text file beside the image (``NAME.hdr``, ``NAME.txt``). Every source found is given with where it
came from, so the reader can say which one it used and warn where two disagree
(:func:`castrig.tiffio.read_micrograph`). Text tags and sidecars are read bounded, sidecars only
as regular files: a micrograph's folder is anyone's to fill.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from pathlib import Path

from castrig.errors import BadInput

__all__ = ["vendor_pixel_size", "vendor_pixel_sizes", "sidecar_pixel_size", "ome_pixel_size", "MAX_SIDECAR_BYTES", "MAX_VENDOR_TAG_BYTES"]


_LEN_UM = {"m": 1e6, "mm": 1e3, "um": 1.0, "µm": 1.0, "\u00b5m": 1.0, "micron": 1.0, "nm": 1e-3, "pm": 1e-6}


def _length_um(text: str, default_unit: str) -> float | None:
    """'2.5 nm' / '1.2e-08' (in ``default_unit``) → µm; None when it holds no number at all. A
    number that is no pixel size (0, negative, nan, inf) is returned as it is: the field is there
    and wrong, and :func:`check_pixel_size` says so naming it (taken for "no pixel size in the
    file", it sent people looking for metadata that was there). So is NaN for a field that starts
    as a number but is no length castrig reads: ``2,5 nm`` (a decimal comma) had been read as
    2 nm, ``2500 Å`` (a unit not known) as 2500 nm — 10× off, without a word."""
    import re

    m = re.fullmatch(r"\s*([-+]?(?:nan|inf(?:inity)?|\d*\.?\d+(?:[eE][-+]?\d+)?))\s*([a-zA-Z\u00b5µ]*)\s*", str(text), re.I)
    if not m:
        return float("nan") if re.match(r"\s*[-+]?\.?\d", str(text)) else None
    unit = (m.group(2) or default_unit).strip()
    scale = _LEN_UM.get(unit) or _LEN_UM.get(unit.lower())
    if scale is None:
        return float("nan")
    return float(m.group(1)) * scale


def _unreadable(text: str) -> str:
    """Why a field :func:`_length_um` made NaN of is no length (for the pixel size's source)."""
    from castrig.inputs import short

    why = "a decimal comma" if "," in str(text) else "not a number and a length unit castrig reads"
    return f"{short(str(text).strip())}: {why}"


def _tag_text(page, code: int) -> object:
    tag = page.tags.get(code)
    if tag is None:
        return None
    v = tag.value
    if isinstance(v, bytes):
        v = v.decode("latin-1", "replace")
    return v


#: the most of a vendor's text tag castrig reads (a Zeiss SmartSEM tag is some 30 kB)
MAX_VENDOR_TAG_BYTES = 16 << 20


def _zeiss_text(page) -> str | None:
    """The text of Zeiss SmartSEM's tag 34118 (its first :data:`MAX_VENDOR_TAG_BYTES`), read
    from the file as it is: tifffile's own reading of it (``read_cz_sem``) grows a tuple by one
    for each line it cannot name, time quadratic in their number: a 10 MB tag of blank lines
    kept ``castrig analyse`` busy for over a minute (40 000 lines: 1 s)."""
    tag = page.tags.get(34118)
    if tag is None:
        return None
    if int(tag.dtype) not in (1, 2, 6, 7) or not tag.valueoffset:  # (not bytes: tifffile's value, whatever it is)
        v = tag.value
        return v.decode("latin-1", "replace") if isinstance(v, bytes) else None if isinstance(v, dict) else str(v)
    fh = page.parent.filehandle
    with fh.lock:
        fh.seek(int(tag.valueoffset))
        raw = fh.read(min(int(tag.count), MAX_VENDOR_TAG_BYTES))
    raw = raw.replace(b"\x00", b" ")  # (NUL padding, as a C string leaves it: "2.5 nm\0" is 2.5 nm)
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")  # (SmartSEM writes µ as the one byte 0xB5)


def _zeiss_pixel_size_texts(text: str) -> Iterator[str]:
    """The values ("543.0 pm") of the pixel size fields in a Zeiss SmartSEM tag's text, in order:
    lines ``AP_PIXEL_SIZE`` (a key, upper case) then ``Pixel Size = 543.0 pm`` (its label and
    value, after ``=`` or ``:``), read as tifffile reads them but in one pass; then any ``Image
    Pixel Size = …`` line."""
    key = None
    for line in text.splitlines():
        if line.isupper():
            key = line.lower()
        elif key:
            _, sep, value = line.partition("=")
            if not sep:
                _, sep, value = line.partition(":")
                if not sep:
                    continue
            if "pixel size" in key.replace("_", " "):
                yield value.strip()
            key = None
    m = re.search(r"Image Pixel Size\s*=\s*([^\r\n]+)", text)
    if m:
        yield m.group(1)


def vendor_pixel_size(page, path: str | Path | None = None) -> tuple[float | None, str | None]:
    """(pixel size µm, source) from an SEM's own metadata (before plain resolution tags: see
    :func:`read_micrograph`): the first of :func:`vendor_pixel_sizes`, else (None, None).

    Zeiss SmartSEM: tag 34118, "Image Pixel Size = 2.5 nm"; FEI/Thermo Fisher: tag 34682, an
    INI text whose ``[Scan] PixelWidth`` is in metres; TESCAN: the ``.hdr`` sidecar's
    ``PixelSizeX`` (metres); Hitachi: the ``.txt`` sidecar's ``PixelSize`` (nm); JEOL: the
    ``.txt`` sidecar's scale bar (:func:`sidecar_pixel_size`).
    """
    return next(vendor_pixel_sizes(page, path), (None, None))


def vendor_pixel_sizes(page, path: str | Path | None = None) -> Iterator[tuple[float, str]]:
    """Every pixel size an SEM's own metadata gives, (µm, source), in the order castrig trusts
    them: Zeiss tag 34118, FEI/Thermo tag 34682, then a sidecar. A file can carry more than one
    (an image passed through two vendors' software, a sidecar of another session beside it): the
    ones after the first are compared with it (read_micrograph's warnings), never dropped unsaid."""
    import re

    z = _zeiss_text(page)
    for val in _zeiss_pixel_size_texts(z) if z is not None else ():
        px = _length_um(val, "nm")
        if px is not None:  # (the first that is a number: "Pix Size state = calibrated" is not)
            yield px, _named("Zeiss SmartSEM tag 34118 (Image Pixel Size)", val, px)
            break
    f = _tag_text(page, 34682)
    if f is not None:
        if isinstance(f, dict):
            scan = f.get("Scan") or f.get("scan") or {}
            scan = scan if isinstance(scan, dict) else {}
            width, height = scan.get("PixelWidth"), scan.get("PixelHeight")
        else:
            m = re.search(r"\[Scan\][^\[]*?PixelWidth\s*=\s*([^\r\n]+)", str(f), re.S)
            n = re.search(r"\[Scan\][^\[]*?PixelHeight\s*=\s*([^\r\n]+)", str(f), re.S)
            width, height = (m.group(1) if m else None), (n.group(1) if n else None)
        if width is not None and (px := _length_um(str(width), "m")) is not None:
            py = _length_um(str(height), "m") if height is not None else None
            if py and px > 0 and py > 0 and abs(py / px - 1.0) > 0.01:
                raise BadInput(f"{path}: pixels are not square: FEI/Thermo tag 34682 [Scan] PixelWidth {px:.6g} µm, "
                               f"PixelHeight {py:.6g} µm; castrig measures square pixels: resample the image to equal X "
                               "and Y pixel sizes first (Fiji: Image > Scale)", file=str(path), field="PixelHeight")
            yield px, _named("FEI/Thermo tag 34682 ([Scan] PixelWidth)", width, px)
    if path is not None:
        px, src = sidecar_pixel_size(path, width_px=getattr(page, "imagewidth", None))
        if src is not None:
            yield px, src


def _named(source: str, text: object, px: float | None) -> str:
    """``source``, with the field's text when :func:`_length_um` could not read it as a length."""
    if px is not None and math.isnan(px) and not re.match(r"\s*[-+]?nan\b", str(text), re.I):
        return f"{source} = {_unreadable(str(text))}"
    return source


def _sidecar_fields(text: str) -> dict[str, str]:
    """``KEY=VALUE`` and ``KEY VALUE`` lines of a text sidecar: {KEY: VALUE}, the first of each key.
    A line at a time (linear: a ``^\\s*KEY`` regex under re.M rescanned every blank line after
    each line start, and 80 000 newlines in a .txt next to an image took 45 s, 1 MB an hour)."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, eq, value = line.partition("=")
        if not eq:  # JEOL: "$$SM_MICRON_BAR 120"
            key, value = (line.split(None, 1) + ["", ""])[:2]
        key = key.strip()
        if key and key not in fields:
            fields[key] = value.strip()
    return fields


#: the largest text sidecar read (an SEM's .txt or .hdr is a few kB); a bigger file is no sidecar
MAX_SIDECAR_BYTES = 1 << 20


def _sidecar_text(image: str | Path, side: Path) -> str | None:
    """The text of the sidecar ``side`` of ``image``, or None where there is none to read: no
    such file, a name the file system cannot hold (an image named to the 255-byte limit has no
    ``NAME.tif.hdr``: looking for one raised "File name too long", a traceback for a PNG and
    "cannot read TIFF" for a TIFF), not a regular file (a FIFO, a device, a folder), or more than
    :data:`MAX_SIDECAR_BYTES`. A sidecar that is there but cannot be read (permission denied, an
    I/O error) is BadInput naming it: read past, the image had been said to have "no pixel size"."""
    from castrig.regular import FileTooBig, NotRegularFile, read_regular

    try:
        raw = read_regular(side, max_bytes=MAX_SIDECAR_BYTES)
    except (FileNotFoundError, NotADirectoryError, NotRegularFile, FileTooBig):
        return None
    except OSError as exc:
        import errno

        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP):
            return None
        raise BadInput(f"{image}: its sidecar {side} cannot be read ({exc.strerror or exc}) (allowed: a readable text "
                       "file, or none: move it away or give --pixel-size UM)", file=str(side), field=side.name) from None
    return raw.decode("latin-1")


def sidecar_pixel_size(path: str | Path, width_px: int | None = None) -> tuple[float | None, str | None]:
    """Pixel size from a text sidecar next to the image: TESCAN ``<name>.hdr`` (``PixelSizeX``,
    metres; ``PixelSizeY`` must agree), Hitachi ``<name>.txt`` (``PixelSize``, nm) or JEOL
    ``<name>.txt``: the scale bar's length ``$$SM_MICRON_MARKER`` (e.g. ``5um``) over its pixels
    ``$$SM_MICRON_BAR`` (older models ``$CM_…``), times ``$CM_FULL_SIZE``'s width / ``width_px``
    when the image was saved at another size than the scan's."""
    p = Path(path)
    sides = lambda ext: (p.with_suffix(ext), p.with_name(p.stem + "-tif" + ext), Path(str(p) + ext))  # noqa: E731
    read: dict[Path, dict[str, str]] = {}

    def fields(side: Path) -> dict[str, str] | None:
        if side not in read:
            text = _sidecar_text(path, side)
            if text is None:
                return None
            read[side] = _sidecar_fields(text)
        return read[side]

    for ext, key, unit, who in ((".hdr", "PixelSizeX", "m", "TESCAN"), (".txt", "PixelSize", "nm", "Hitachi")):
        for side in sides(ext):
            f = fields(side)
            if f is None or key not in f or (px := _length_um(f[key], unit)) is None:
                continue
            if key == "PixelSizeX" and "PixelSizeY" in f:
                py = _length_um(f["PixelSizeY"], unit)
                if py is not None and math.isfinite(py) and px > 0 and py > 0 and abs(py / px - 1.0) > 0.01:
                    raise BadInput(f"{path}: pixels are not square: TESCAN sidecar {side.name} PixelSizeX {px:.6g} µm, "
                                   f"PixelSizeY {py:.6g} µm; castrig measures square pixels: resample the image to equal "
                                   "X and Y pixel sizes first (Fiji: Image > Scale)", file=str(path), field="PixelSizeY")
            return px, _named(f"{who} sidecar {side.name} ({key})", f[key], px)
    for side in sides(".txt"):
        f = fields(side)
        if f is None:
            continue
        for pre in ("$$SM_", "$SM_", "$CM_"):
            bar, mark = f.get(f"{pre}MICRON_BAR"), f.get(f"{pre}MICRON_MARKER")
            if bar is None or mark is None:
                continue
            try:
                n_px = float(bar.split()[0])
            except (ValueError, IndexError):
                continue
            length = _length_um(mark, "um")
            if length is None:
                continue
            px = length / n_px if n_px else float("inf")  # a bar of 0 px: no pixel size, said so
            full = (f.get("$$CM_FULL_SIZE") or f.get("$CM_FULL_SIZE") or "").split()
            # (ASCII digits: str.isdigit() takes "²", which int() does not: a traceback)
            if len(full) >= 2 and re.fullmatch(r"[0-9]+", full[0]) and width_px and int(full[0]) > 0 and int(full[0]) != int(width_px):
                px *= int(full[0]) / int(width_px)
            return px, _named(f"JEOL sidecar {side.name} ({pre}MICRON_MARKER / {pre}MICRON_BAR)", mark, length)
    return None, None


#: OME's UnitsLength (the ones a micrograph's pixel is given in), µm per unit; NFKC-normalised
#: keys (the micro sign is the Greek mu)
_OME_UM = {"m": 1e6, "dm": 1e5, "cm": 1e4, "mm": 1e3, "\u03bcm": 1.0, "um": 1.0, "nm": 1e-3, "pm": 1e-6, "\u00c5": 1e-4,
           "in": 25400.0}


def ome_pixel_size(xml: str, image: int, path: str | Path | None = None) -> tuple[float, str] | None:
    """(µm, source) of the ``image``-th image's ``Pixels PhysicalSizeX`` in an OME-TIFF's OME-XML
    (Bio-Formats, Zeiss ZEN, Olympus and others write their calibration there, and Fiji shows
    it), None when it gives none or in a unit castrig does not read. BadInput when its
    PhysicalSizeY differs by more than 1 %: castrig measures square pixels. An OME-TIFF whose
    resolution tags said 1 µm and its OME-XML 0.5 µm was measured at 1 µm without a word, one
    with no resolution tags was "no pixel size in the file"."""
    import itertools
    import unicodedata

    found = list(itertools.islice(re.finditer(r"<(?:\w+:)?Pixels\b([^>]*)>", xml), image + 1))
    if len(found) <= image:
        return None
    attrs = dict(re.findall(r'([\w:]+)\s*=\s*"([^"]*)"', found[image].group(1)))

    def size(axis: str) -> tuple[float | None, str]:
        text, unit = attrs.get(f"PhysicalSize{axis}"), attrs.get(f"PhysicalSize{axis}Unit", "\u00b5m")
        scale = _OME_UM.get(unicodedata.normalize("NFKC", unit).strip())
        try:
            return (float(text) * scale if text is not None and scale is not None else None), f"{text} {unit}"
        except ValueError:
            return None, f"{text} {unit}"

    (px, said), (py, said_y) = size("X"), size("Y")
    if px is None:
        return None
    if py and px > 0 and py > 0 and abs(py / px - 1.0) > 0.01:
        raise BadInput(f"{path}: pixels are not square: OME-XML PhysicalSizeX {said}, PhysicalSizeY {said_y}; castrig "
                       "measures square pixels: resample the image to equal X and Y pixel sizes first (Fiji: Image > "
                       "Scale)", file=None if path is None else str(path), field="PhysicalSizeY")
    return px, f"OME-XML PhysicalSizeX ({said})"
