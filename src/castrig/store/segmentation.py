"""The run's own segmentation of each micrograph, kept for the report (``segmentation/*.json``).

The report (``castrig report``, the page ``castrig serve`` shows, the report ``castrig queue``
writes after each run) draws each micrograph's pore outlines or section lines over it and sums it
up in a caption. It used to measure every image again for that: ~0.45 s of CPU an image, 5 s for
a four-cast night, at every refresh of the live page, and the outlines drawn were a second
analysis's, not the one the verdict came from. The analyse step now keeps what the report draws
(:mod:`castrig.analysis.segmentation`), one file per image: the outlines as an indexed PNG at the
size the page shows the picture, the pore diameters and the caption's values.

A file here is used only for the image it was made from (its SHA-256) and only if it reads as
what this module writes (bounded, every field checked); otherwise (a run from before, an image
replaced, a file damaged or written by hand) the report measures the image itself, as before.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import json
import math
from collections.abc import Collection
from pathlib import Path
from typing import Any

from castrig.pngio import png_size
from castrig.regular import open_regular
from castrig.atomic import atomic_write_bytes

#: The folder of the run that holds the files, one per micrograph (``<image file name>.json``).
FOLDER = "segmentation"
VERSION = 1
#: Largest file read (a 1024² view of 5 000 pores is ~0.2 MB).
MAX_BYTES = 32 << 20


#: The largest image file hashed: a micrograph file of 64 GB (sparse: no disk taken; whoever may
#: write the data root can make one, its image still readable at its start) kept `castrig report`
#: and the report served without a token on loopback hashing for a minute per request, the one
#: decoding slot held meanwhile. No segmentation is kept or found for a larger file (the report
#: measures its image again, bounded by the image limits).
DIGEST_MAX_BYTES = 1 << 30


def image_digest(path: Path) -> str | None:
    """The SHA-256 of an image file (read in pieces); None for one over :data:`DIGEST_MAX_BYTES`."""
    with open(path, "rb") as fh:
        if os.fstat(fh.fileno()).st_size > DIGEST_MAX_BYTES:
            return None
        return hashlib.file_digest(fh, "sha256").hexdigest()


def path_for(run_dir: Path, image_rel: str) -> Path:
    """Where the segmentation of the run's image ``image_rel`` (its path in the record) is kept."""
    return Path(run_dir) / FOLDER / f"{Path(image_rel).name}.json"


def write(run_dir: Path, image_rel: str, view: dict[str, Any]) -> Path:
    """Keep ``view`` (``kind``, ``step``, ``overlay_png`` bytes or None, ``diameters_um``,
    ``values``) for the image ``image_rel`` as it is on disk now: written whole or not at all."""
    doc = {"version": VERSION, "image_sha256": image_digest(Path(run_dir) / image_rel),
           **view, "overlay_png": None if view["overlay_png"] is None else base64.b64encode(view["overlay_png"]).decode("ascii")}
    out = path_for(run_dir, image_rel)
    out.parent.mkdir(exist_ok=True)
    atomic_write_bytes(out, json.dumps(doc, allow_nan=False).encode())
    return out


def read(run_dir: Path, image_rel: str, image_sha256: str | None, kind: str, shape: tuple[int, ...], step: int,
         value_names: Collection[str]) -> dict[str, Any] | None:
    """The view kept for the image whose file's digest is ``image_sha256``, seen as ``kind`` (its
    illumination), of ``shape`` and shown at ``step``, its caption's values named
    ``value_names``; None unless the file belongs to that image and holds nothing but what
    :func:`write` puts there (none for an image without a digest: over :data:`DIGEST_MAX_BYTES`)."""
    if not image_sha256:
        return None
    try:
        # a regular file, not through a link (a named pipe there hung the report: open waited for
        # a writer), read bounded (a file of any size reads MAX_BYTES)
        fh = open_regular(path_for(run_dir, image_rel), follow=False)
        if fh is None:
            return None
        with fh:
            raw = fh.read(MAX_BYTES + 1)
        if len(raw) > MAX_BYTES:
            return None
        doc = json.loads(raw)
        if (not isinstance(doc, dict) or doc.get("version") != VERSION or doc.get("kind") != kind
                or doc.get("step") != step or doc.get("image_sha256") != image_sha256):
            return None
        png = doc.get("overlay_png")
        if png is not None:
            if not isinstance(png, str):
                return None
            png = base64.b64decode(png, validate=True)
            if png_size(png) != (-(-int(shape[0]) // step), -(-int(shape[1]) // step)):
                return None
        values, diameters = doc.get("values"), doc.get("diameters_um")
        if not isinstance(values, dict) or set(values) != set(value_names) or not isinstance(diameters, list):
            return None
        if not all(v is None or (isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v))
                   for v in [*values.values(), *diameters]) or None in diameters:
            return None
        return {"kind": kind, "step": step, "overlay_png": png, "diameters_um": [float(d) for d in diameters], "values": values}
    except (OSError, ValueError, TypeError, binascii.Error, RecursionError):
        return None
