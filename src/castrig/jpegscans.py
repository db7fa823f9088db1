"""Whether a JPEG's scans send every coefficient of every component at full precision.

A progressive JPEG cut after its first scans, with an end marker (EOI) added, is a valid file to
libjpeg: it decodes the coarse image its scans hold (the DC terms, the lowest AC ones, their top
bits) and says nothing. Measured, a twin's top view gave opening 0.243 for 0.27, exit 0, no flag.
Read from the markers only (the scans' headers), before anything is decoded.
"""

from __future__ import annotations

import mmap
import os
from pathlib import Path

from castrig.errors import BadInput
from castrig.image_bounds import _JPEG_MARKER, MAX_JPEG_SCANS

__all__ = ["check_jpeg_complete", "jpeg_scan_gaps"]

#: frame markers (SOF) of progressive and of lossless JPEG (the rest are sequential)
_PROGRESSIVE = (0xC2, 0xC6, 0xCA, 0xCE)
_LOSSLESS = (0xC3, 0xC7, 0xCB, 0xCF)
_SOF = (0xC0, 0xC1, *_PROGRESSIVE, *_LOSSLESS, 0xC5, 0xC9, 0xCD)


def jpeg_scan_gaps(data, start: int = 0, end: int | None = None) -> str | None:
    """What the first image of the JPEG bytes ``data[start:end]`` never sends at full precision
    (``"component 1: coefficients 6-63"``), or None when its scans cover every coefficient of
    every component down to their last bit (or it is lossless, or it holds no frame header)."""
    end = len(data) if end is None else end
    comps: list[int] | None = None
    progressive = False
    lowest: dict[int, list[int | None]] = {}  # component -> each coefficient's lowest bit sent (Al)
    i, scans = start + 2, 0
    while i < end - 1 and scans <= MAX_JPEG_SCANS:
        m = _JPEG_MARKER.search(data, i, end)
        if m is None:
            break
        j, code = m.start(), data[m.start() + 1]
        if code in (0x01, 0xD8):
            i = j + 2
            continue
        if code == 0xD9:  # the first image's end (an MPO's next image is not this one's)
            break
        length = int.from_bytes(data[j + 2: j + 4], "big") if j + 4 <= end else 0
        seg = data[j + 4: min(j + 2 + length, end)]
        if code in _SOF and comps is None and len(seg) >= 6:
            if code in _LOSSLESS:
                return None
            progressive = code in _PROGRESSIVE
            comps = [seg[6 + 3 * k] for k in range(seg[5]) if 6 + 3 * k < len(seg)]
            lowest = {c: [None] * 64 for c in comps}
        elif code == 0xDA and comps is not None and seg:
            scans += 1
            ns = seg[0]
            if len(seg) >= 4 + 2 * ns:
                ss, se, al = seg[1 + 2 * ns], seg[2 + 2 * ns], seg[3 + 2 * ns] & 15
                if not progressive:
                    ss, se, al = 0, 63, 0
                for c in (seg[1 + 2 * k] for k in range(ns)):
                    row = lowest.get(c)
                    for k in range(ss, min(se, 63) + 1) if row is not None else ():
                        row[k] = al if row[k] is None else min(row[k], al)
        i = j + 2 + length
    if comps is None:
        return None
    gaps = []
    for n, c in enumerate(comps, 1):
        short = [k for k, al in enumerate(lowest[c]) if al is None or al > 0]
        if short:
            what = f"coefficient {short[0]}" if len(short) == 1 else f"coefficients {short[0]}-{short[-1]}"
            gaps.append(f"component {n}: {what}" if len(short) == short[-1] - short[0] + 1 else
                        f"component {n}: {len(short)} of its 64 coefficients")
    return "; ".join(gaps) or None


def check_jpeg_complete(path: str | Path) -> None:
    """BadInput when the JPEG file ``path`` ends (with its end marker) before its scans have sent
    every coefficient of every component at full precision: a file cut short and re-ended."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
            gaps = jpeg_scan_gaps(mm)
    if gaps:
        raise BadInput(f"{path}: its JPEG scans end before every part of the image is sent at full precision ({gaps} "
                       "never sent, or not to their last bit) (allowed: a complete JPEG); the file was cut short (an "
                       "incomplete download or copy?) and is not measured", file=str(path), field="JPEG scans")
