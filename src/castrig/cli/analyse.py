"""`castrig analyse`: measure micrographs and judge them against the specification."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from castrig.errors import BadInput
from castrig.printable import Console

if TYPE_CHECKING:
    import numpy as np

_HELP = """Measure membrane micrographs (surface, section) and judge the specification.

Images: TIFF, PNG or JPEG. The pixel size is, first found: --pixel-size; an ImageJ/Fiji calibration
(TIFF resolution tags with ImageJ's unit); the instrument's own metadata (Zeiss SmartSEM tag
34118, FEI/Thermo tag 34682 [Scan] PixelWidth, TESCAN .hdr, Hitachi or JEOL .txt sidecars, an
OME-TIFF's PhysicalSizeX), which beats plain TIFF resolution tags (SEM software often leaves them at 72 dpi); the TIFF
resolution tags or a PNG's pHYs chunk (a screen's 72 or 96 dpi is out of range and refused, a print
resolution such as 600 dpi is no calibration). A transmitted view is measured at its reflected view's. The result says the
pixel size used and where it came from (--json: pixel_size_um, pixel_size_source, images), and
warns when another source in the file disagrees by more than 1 %. RGB and RGBA
images are measured in grey (luminance 0.2125 R + 0.7154 G + 0.0721 B; the alpha channel is
dropped). Signed-integer and float images are rescaled before measuring; NaN or infinite pixels
are refused. A pixel size outside 0.0005–50 µm per pixel is refused. Images larger than
$CASTRIG_MAX_IMAGE_PIXELS (default 100 Mpx) are refused before they are decoded. Measuring
takes about 120 bytes of memory per pixel (2.4 GB for 20 Mpx, 12 GB for 100 Mpx): an image the
free memory cannot hold is refused before anything is measured. Bad input exits 2 with the file
named.

\b
Examples:
  castrig analyse surface top.tif --transmitted through.tif --json
  castrig analyse section cut.png --pixel-size 0.05
  castrig analyse membrane --surface top.tif --transmitted through.tif --section cut.tif --grade claim1
"""

app = typer.Typer(help=_HELP, no_args_is_help=True)

_UNITS = {
    "opening_ratio": "",
    "mean_pore_diameter_um": "µm",
    "pore_diameter_std_um": "µm",
    "pore_count": "",
    "through_pore_fraction": "",
    "pore_pitch_um": "µm",
    "mean_thickness_um": "µm",
    "thickness_std_um": "µm",
    "support_pore_diameter_um": "µm",
    "penetration_depth_um": "µm",
    "penetration_fraction": "",
    "pore_communication": "",
    "support_continuity": "",
}


def _no_pixel_size(path: Path, what: str, bad: dict | None, flag: str = "--pixel-size") -> BadInput:
    """Why a file gives no pixel size: an instrument's field there but no pixel size (named with
    its value by check_pixel_size), a resolution tag there but 0 (it was "no pixel size in the
    file", as if the tag were missing), or nothing at all. ``flag``: the option that gives it."""
    from castrig.tiffio import IMAGEJ_UNITS_READ, check_pixel_size

    if bad and "unit" in bad:  # an ImageJ calibration is there, in a unit that is no length castrig reads
        from castrig.inputs import short

        width = 1.0 / float(bad["per_unit"])
        return BadInput(f"{path}: its ImageJ calibration says 1 pixel = {width:.6g} {short(bad['unit'])}, a unit castrig "
                        f"cannot use (allowed: {IMAGEJ_UNITS_READ}) ({what}); give {flag} UM, the pixel width "
                        "in µm, or set the unit in Fiji (Image > Properties) and save again",
                        file=str(path), field="unit")
    if bad and "chunk" in bad:  # a PNG's pHYs there but no calibration (0, or a print resolution)
        return BadInput(f"{path}: its PNG chunk {bad['chunk']} is present but says {bad['value']} (allowed: "
                        f"{bad['allowed']}) ({what}); give {flag} UM", file=str(path), field=bad["chunk"])
    if bad and "tag" in bad:
        allowed = bad.get("allowed", "a positive number of pixels per unit")
        return BadInput(f"{path}: its TIFF resolution tag {bad['tag']} is present but {bad['value']}, which is invalid "
                        f"(allowed: {allowed}) ({what}); give {flag} UM",
                        file=str(path), field=bad["tag"])
    if bad:  # the instrument's field is there but no pixel size: named, with its value
        check_pixel_size(float(bad["value_um"]), bad["source"], file=path)
    return BadInput(f"{path}: no pixel size in the file ({what}); give {flag} UM", file=str(path), field=flag)


def _pixel_size_parser(flag: str):
    """The parser of a pixel-size option named ``flag`` (:func:`_pixel_size_option`)."""
    return lambda text: _pixel_size_option(text, flag)


def _pixel_size_option(text: str, flag: str = "--pixel-size") -> float:
    """``--pixel-size`` as a number, else BadInput saying what one looks like: typer's own words
    ("Input should be a valid number") named neither the unit nor the decimal comma a European
    locale writes (``1,5``). The range is checked with the file's own, by check_pixel_size."""
    from castrig.inputs import short
    from castrig.tiffio import PIXEL_SIZE_RANGE_UM

    import re

    number = re.compile(r"\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*|\s*[+-]?(nan|inf(inity)?)\s*", re.I)
    if number.fullmatch(text):
        return float(text)  # (float() alone took Python's '1_0' for 10: a typo of 0_25 became 25 µm)
    point = text.replace(",", ".")
    comma = f", a decimal comma: write {point}" if "," in text and number.fullmatch(point) else ""
    lo, hi = PIXEL_SIZE_RANGE_UM
    raise BadInput(f"{flag} {short(text)}: not a number{comma} (allowed: µm per pixel, a positive number from "
                   f"{lo:g} to {hi:g}, with a decimal point, not a comma, e.g. 0.25)", field=flag)


def _load(path: Path, pixel_size: float | None, what: str, *, given_by: str = "--pixel-size"):
    """(array, pixel size µm, image record) of one micrograph. The record says which pixel size
    was used and where it came from (``pixel_size_source``), with a warning for every other
    pixel size of the image that disagrees by more than 1 %. ``pixel_size`` (the flag's, or
    the reflected view's for a transmitted one: ``given_by``) wins over the file's."""
    from castrig.analysis.quality import MIN_PX_PER_PORE
    from castrig.tiffio import check_image_side, check_pixel_size, pixel_size_disagreement, read_micrograph

    if pixel_size is not None and given_by.startswith("--"):  # (an option's; not the reflected view's)
        check_pixel_size(pixel_size, given_by)
    arr, px, meta = read_micrograph(path)
    # one pore of MIN_PX_PER_PORE across is the least a micrograph can show
    check_image_side(path, arr, math.ceil(MIN_PX_PER_PORE))  # memory: check_memory once every image is loaded
    warnings = list(meta.get("pixel_size_warnings", ()))
    if pixel_size is not None:
        used, source = float(pixel_size), given_by
        if px is not None:  # the file's own says otherwise: not silently
            warnings = pixel_size_disagreement(used, source, [(px, meta.get("pixel_size_source", "the file"))])
    elif px is None:
        raise _no_pixel_size(path, what, meta.get("pixel_size_invalid"), flag=given_by)
    else:
        source = meta.get("pixel_size_source", "the file's resolution tags")
        try:
            used = check_pixel_size(px, source, file=path)
        except BadInput as exc:  # (an instrument's field that could not be read said why the tags stood in)
            if not warnings:
                raise
            raise BadInput(f"{exc.args[0]} (also: {'; '.join(warnings)})", file=str(path), field="--pixel-size") from None
    record = {"file": str(path), "pixel_size_um": used, "pixel_size_source": source}
    if meta.get("instrument_metadata"):  # an SEM vendor's own metadata (Zeiss, FEI/Thermo, a sidecar)
        record["instrument_metadata"] = meta["instrument_metadata"]
    read_as = [meta[k] for k in ("file_type", "page_used", "photometric", "lut", "orientation") if meta.get(k)]
    if read_as:  # how the file was read where it is not plain (a thumbnail passed over, pixels turned)
        record["read_as"] = read_as
    if warnings:
        record["warnings"] = [f"{path.name}: {w}" for w in warnings]
    return arr, used, record


#: Peak memory of one analysis per pixel of the image, bytes: ~33 (optical) and ~65 (SEM) on a
#: 4 Mpx twin image, ~117 on a 64 Mpx one (audit, peak RSS); the estimate takes the most.
ANALYSIS_BYTES_PER_PX = 120
#: What a transmitted view adds to its surface's analysis per pixel, bytes: ~5 on a 4 Mpx twin
#: pair, ~9 on a 17 Mpx one (peak RSS with and without it); the estimate keeps room above that.
TRANSMITTED_BYTES_PER_PX = 16


def _proc_kib(path: str, key: str) -> float | None:
    """``key: N kB`` from a /proc status file, in bytes (None where it is not there)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024.0
    except (OSError, ValueError, IndexError):
        pass
    return None


def _cgroup_left_bytes() -> float:
    """What the process's memory cgroup (a container's limit) still allows: v2 ``memory.max`` −
    ``memory.current``, v1 ``memory.limit_in_bytes`` − ``memory.usage_in_bytes``; inf unlimited."""
    left = math.inf
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return left
    for line in lines:
        _, ctrl, rel = line.split(":", 2)
        if ctrl == "":
            names, bases = ("memory.max", "memory.current"), ("/sys/fs/cgroup" + rel, "/sys/fs/cgroup")
        elif "memory" in ctrl.split(","):
            names, bases = ("memory.limit_in_bytes", "memory.usage_in_bytes"), ("/sys/fs/cgroup/memory" + rel, "/sys/fs/cgroup/memory")
        else:
            continue
        for base in bases:  # in a container the cgroup's path is often its root
            try:
                limit = Path(base, names[0]).read_text().strip()
                used = float(Path(base, names[1]).read_text().strip())
            except (OSError, ValueError):
                continue
            if limit != "max" and float(limit) < 2**60:
                left = min(left, float(limit) - used)
            break
    return left


def available_memory_bytes() -> float:
    """What this process may still allocate: the system's MemAvailable plus free swap, what a
    container's memory cgroup still allows and, under a ``ulimit -v``, what is left of it (inf
    where none is known)."""
    import resource

    avail = _proc_kib("/proc/meminfo", "MemAvailable")
    left = math.inf if avail is None else avail + (_proc_kib("/proc/meminfo", "SwapFree") or 0.0)
    left = min(left, _cgroup_left_bytes())
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft != resource.RLIM_INFINITY:
        left = min(left, soft - (_proc_kib("/proc/self/status", "VmSize") or 0.0))
    return left


def check_memory(analyses: list[tuple[Path, np.ndarray, np.ndarray | None]],
                 bytes_per_px: float = ANALYSIS_BYTES_PER_PX) -> None:
    """Exit 2 before measuring anything when the memory left cannot hold one of the command's
    analyses: a 64 Mpx image (inside the size limit) needed 7.5 GB and died in numpy with a
    traceback. ``analyses``: (file, image, its transmitted view or None) for each analysis the
    command makes, one after another, every image already loaded: what is free is read once,
    with all of them held, and each analysis's need (:data:`ANALYSIS_BYTES_PER_PX` per pixel,
    :data:`TRANSMITTED_BYTES_PER_PX` per pixel of a transmitted view) must fit in it. (Checked
    image by image as each was loaded, ``analyse membrane`` measured the whole surface — minutes
    at 64 Mpx — before refusing a section the memory could not hold.) ``bytes_per_px``: another
    measurement's need per pixel (``calibrate camera``'s)."""
    left = available_memory_bytes()
    for path, image, transmitted in analyses:
        pixels = image.shape[0] * image.shape[1]
        extra = 0 if transmitted is None else transmitted.shape[0] * transmitted.shape[1]
        need = pixels * bytes_per_px + extra * TRANSMITTED_BYTES_PER_PX
        if need > left:
            held = sum(a.nbytes for _, img, t in analyses for a in (img, t) if a is not None)
            with_t = f" (with its transmitted view, {extra / 1e6:.3g} Mpx)" if extra else ""
            n = sum(a is not None for _, img, t in analyses for a in (img, t))
            raise BadInput(f"{path}: {pixels / 1e6:.3g} Mpx{with_t} needs about {need / 2**30:.1f} GiB to analyse, "
                           f"{max(left, 0) / 2**30:.1f} GiB is free with every image of this command loaded "
                           f"({n} image{'s' if n > 1 else ''}, {held / 2**30:.2g} GiB) "
                           f"(allowed here: up to about {max(left, 0) / bytes_per_px / 1e6:.3g} Mpx; crop or bin "
                           "the image, or free memory); nothing was measured", file=str(path), field="image size")


def _section_rois_path(rois: Path) -> Path:
    """``analyse membrane --rois X.zip``: the section's ROI set goes to ``X-section.zip``."""
    return rois.with_name(rois.stem + "-section.zip")


_APPEARANCES = ("optical", "sem", "auto")


def _check_appearance(appearance: str) -> str:
    if appearance not in _APPEARANCES:
        raise BadInput(f"--appearance {appearance!r}: allowed: one of {', '.join(_APPEARANCES)}", field="--appearance")
    return appearance


def _appearance_for(appearance: str, record: dict) -> str:
    """The appearance handed to the analysis: ``auto`` takes ``sem`` for a top view whose file
    carries an SEM vendor's own metadata (Zeiss tag 34118, FEI/Thermo tag 34682, a TESCAN,
    Hitachi or JEOL sidecar: ``instrument_metadata`` of :func:`_load`); otherwise the analysis
    decides from the image (bright pore rims). A genuine Zeiss SEM view of nanoporous gold was
    measured as optical by the image's test (opening 0.230 against 0.297 as sem)."""
    if appearance == "auto" and record.get("instrument_metadata"):
        return "sem"
    return appearance


def _appearance_said(asked: str, used: str, measured: str, record: dict, ambiguous: bool = False) -> str:
    """How the top view's appearance was chosen, for the result (quality.appearance_from)."""
    if asked != "auto":
        return f"--appearance {asked}"
    if used == "sem":
        return f"auto: sem, the file carries an SEM's own metadata ({record['instrument_metadata']})"
    if ambiguous and measured == "sem":
        return ("auto: sem, a strong bright ridge round the pores, though the pores' cores do not show an SEM's "
                "(no SEM metadata in the file): give --appearance sem or optical")
    if ambiguous:
        return ("auto: optical, but a bright ridge round the pores may be an SEM's rims as well as a defocus halo "
                "(no SEM metadata in the file): give --appearance sem or optical")
    return ("auto: sem, bright pore rims found in the image" if measured == "sem"
            else "auto: optical, no bright pore rims found in the image (no SEM metadata in the file)")


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


#: What each output option writes: (allowed suffixes, or () for any; an example name; what it is).
_OUTPUTS = {"--rois": ((), "pores.zip", "an ImageJ ROI set (.zip of .roi files)", "ROI set"),
            "--overlay": ((".png",), "pores.png", "an overlay castrig wrote (a PNG with castrig's mark)", "overlay")}


def _check_output_path(out: Path, flag: str) -> None:
    """Refuse an output path castrig could not write, or must not: its folder missing or not
    writable, a folder at the path, a suffix the option does not write, or an existing file
    that is not an earlier output of the same option (that one is replaced)."""
    from castrig.analysis.overlay import is_overlay_png
    from castrig.analysis.rois import roi_set_problem

    suffixes, example, what, noun = _OUTPUTS[flag]
    where = dict(file=str(out), field=flag)
    try:  # (Path.is_dir() and exists() raised on a name too long: a traceback before anything was measured)
        os.lstat(out)
    except OSError as exc:
        import errno

        from castrig.tiffio import NAME_TOO_LONG

        if exc.errno == errno.ENAMETOOLONG:
            raise BadInput(f"{flag} {out}: {NAME_TOO_LONG}; give a shorter name (e.g. {example})", **where) from None
    if out.is_dir():
        raise BadInput(f"{flag} {out}: is a folder; give a file name in it (e.g. {out / example})", **where)
    if suffixes and out.suffix.lower() not in suffixes:
        raise BadInput(f"{flag} {out}: castrig writes the {noun} as {' or '.join(suffixes)} only "
                       f"(give a name ending {' or '.join(suffixes)}, e.g. {example})", **where)
    parent = out.parent
    if not parent.is_dir():
        raise BadInput(f"{flag} {out}: the folder {parent} does not exist (create it, or give a path in an existing folder)",
                       **where)
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {out}: the folder {parent} is not writable", **where)
    if out.exists() and not out.is_file():
        # (a device or a pipe: looking for an earlier output in /dev/zero read it without end,
        # 2.7 GB before the memory check stopped it; in a named pipe it waited for a writer)
        raise BadInput(f"{flag} {out}: is not a regular file (a device, a pipe or a socket); give a file name "
                       f"(e.g. {example})", **where)
    if out.exists() or out.is_symlink():
        problem = roi_set_problem(out) if flag == "--rois" else None if is_overlay_png(out) else ""
        if problem is not None:
            why = f" ({problem})" if problem else ""
            raise BadInput(f"{flag} {out}: exists and is not {what}{why}; castrig replaces only an earlier "
                           f"{noun} of its own (give a new file name, e.g. {example})", **where)


def _check_outputs(inputs: list[Optional[Path]], rois: list[Path] = (), overlay: Optional[Path] = None) -> None:
    """Refuse (exit 2, before anything is measured) an output that would destroy a file or could
    not be written: an ROI set or overlay path that is one of the input micrographs (the same
    file, through any spelling, symlink or hard link), two outputs on one path, or a path
    :func:`_check_output_path` refuses (an existing file that is not an earlier output of the
    same option is never replaced)."""
    given = [p for p in inputs if p is not None]
    outs = [(r, "--rois") for r in rois] + ([(overlay, "--overlay")] if overlay is not None else [])
    for k, (out, flag) in enumerate(outs):
        for src in given:
            if _same_file(out, src):
                raise BadInput(f"{flag} {out}: that is the input image {src}; it would be overwritten "
                               f"(give a new file name, e.g. {_OUTPUTS[flag][1]})", file=str(out), field=flag)
        for other, oflag in outs[:k]:
            if out.resolve() == other.resolve():
                raise BadInput(f"{flag} {out}: the same file as {oflag} {other}", file=str(out), field=flag)
        _check_output_path(out, flag)


def _write_rois(path: Path, rois: list) -> None:
    """Atomically (a temporary beside it, fsynced, renamed): a crash leaves the earlier set or
    the new one, never half a zip, and a symlink at ``path`` is replaced, not written through."""
    from castrig.analysis.rois import write_rois
    from castrig.atomic import atomic_write_with

    try:
        atomic_write_with(path, lambda tmp: write_rois(tmp, rois))
    except OSError as exc:
        raise BadInput(f"{path}: cannot write the ROI set ({exc.strerror or exc})", file=str(path), field="--rois") from None


def _write_overlay(path: Path, refl, m) -> None:
    """Atomically, as :func:`_write_rois`: the earlier overlay or the new one, never half a PNG."""
    from castrig.analysis.overlay import surface_overlay, write_overlay_png
    from castrig.atomic import atomic_write_with

    rgb = surface_overlay(refl, m)
    try:
        atomic_write_with(path, lambda tmp: write_overlay_png(tmp, rgb))
    except OSError as exc:
        raise BadInput(f"{path}: cannot write the overlay ({exc.strerror or exc})", file=str(path), field="--overlay") from None


def _refuse_section_mask(image: Path, sec) -> None:
    """A binary mask given as a section whose phases do not show the film: refused naming the file."""
    from castrig.analysis.section_mask import read_section_mask

    mask = read_section_mask(sec)
    if mask is not None and mask.film is None:  # (one whose film is a band is measured as segmented)
        raise BadInput(f"{image}: {mask.refusal()}", file=str(image), field="IMAGE")


def _load_surface(image: Path, transmitted: Optional[Path], pixel_size: Optional[float], flag: str = "--pixel-size"):
    """(reflected view, transmitted view or None, pixel size µm, image records), loaded and checked
    (``flag``: the option that gave ``pixel_size``, or that would)."""
    refl, px, rec = _load(image, pixel_size, "surface", given_by=flag)
    from castrig.analysis.masks import read_mask

    mask = read_mask(refl)
    if mask is not None and mask.pores is None:  # (one whose pores are told is measured as segmented)
        raise BadInput(f"{image}: {mask.refusal()}", file=str(image), field="IMAGE")
    images = {"surface": rec}
    trans = None
    if transmitted is not None:
        # registered with the reflected view: measured at its pixel size
        trans, _, images["transmitted"] = _load(transmitted, px, "transmitted",
                                                given_by=f"the reflected view {image.name} ({rec['pixel_size_source']})")
        if trans.shape != refl.shape:
            raise BadInput(
                f"{transmitted}: shape {trans.shape} differs from the reflected image {refl.shape}; the views must be registered",
                file=str(transmitted),
            )
    return refl, trans, px, images


def _fmt(v) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, int):
        return str(v)
    return f"{v:.4g}"


def _table(metrics: dict, title: str) -> Table:
    t = Table(title=title)
    t.add_column("metric")
    t.add_column("value", justify="right")
    t.add_column("unit")
    for k, v in metrics.items():
        t.add_row(k, _fmt(v), _UNITS.get(k, ""))
    return t


def _emit(data: dict, as_json: bool, title: str, verdict=None, quality: dict | None = None, images: dict | None = None) -> None:
    """Print the metrics (and quality, verdict) as one JSON object or as tables. ``images``:
    role → the record of :func:`_load` (file, pixel_size_um, pixel_size_source, warnings)."""
    images = images or {}
    warnings = [w for rec in images.values() for w in rec.get("warnings", ())]
    if as_json:
        out = dict(data)
        measured = [r for k, r in images.items() if k != "transmitted"]
        if len(measured) == 1:  # one image measured: its pixel size beside the metrics
            out["pixel_size_um"] = measured[0]["pixel_size_um"]
            out["pixel_size_source"] = measured[0]["pixel_size_source"]
        out["images"] = {k: {kk: vv for kk, vv in r.items() if kk != "warnings"} for k, r in images.items()}
        out["warnings"] = warnings
        if quality is not None:
            out["quality"] = quality
        if verdict is not None:
            out["verdict"] = verdict.to_dict()
        for w in warnings:
            typer.echo(f"warning: {w}", err=True)
        typer.echo(json.dumps(out))
        return
    con = Console(markup=False)  # file names, flags and advice as written, never Rich markup
    con.print(_table(data, title))
    for role, rec in images.items():
        con.print(f"pixel size ({role}, {Path(rec['file']).name}): {rec['pixel_size_um']:.6g} µm per pixel, "
                  f"from {rec['pixel_size_source']}", markup=False, highlight=False)
        for note in rec.get("read_as", ()):
            con.print(f"read ({role}, {Path(rec['file']).name}): {note}", markup=False, highlight=False)
    for w in warnings:
        con.print(f"warning: {w}", style="bold yellow", markup=False, highlight=False)
    if quality is not None:
        if quality.get("appearance_from"):
            con.print(f"appearance (top view): {quality.get('appearance', '?')} ({quality['appearance_from']})",
                      markup=False, highlight=False)
        from castrig.analysis.quality import NOTE_FLAGS

        flags = [f for f in quality.get("flags", ()) if f not in NOTE_FLAGS]
        notes = [f for f in quality.get("flags", ()) if f in NOTE_FLAGS]
        if flags:
            con.print(f"quality flags: {', '.join(flags)} (flagged metrics are not trusted by the verdict)")
        if "no_background" in flags:  # (its numbers are no section's: the verdict says unknown for them all)
            con.print("not measured: no_background (the film reaches the top edge of this section view with no background "
                      "above it: a top view given as a section, or a section cut at the film's top; the section's metrics "
                      "above are not measured)", style="bold yellow", markup=False, highlight=False)
        if quality.get("wave_px"):
            con.print(f"section: its interface bends {quality['wave_px']:g} px crest to trough beyond a straight line (the "
                      "support's surface undulating); measured with each column moved back by that bend",
                      markup=False, highlight=False)
        if quality.get("binary_mask"):
            view = "section" if list(images) == ["section"] else "surface"
            con.print(f"read ({view}): {quality['binary_mask']}", markup=False, highlight=False)
        if quality.get("section_binary_mask"):
            con.print(f"read (section): {quality['section_binary_mask']}", markup=False, highlight=False)
        if "outliers_clipped" in notes:  # (no metric is flagged for it)
            con.print("quality note: outliers_clipped (hot or dead pixels, far outside the grey range of the rest or alone "
                      "at the type's limit, were replaced by their neighbours' median before measuring)")
        for k, (lo, hi) in quality.get("intervals", {}).items():
            con.print(f"  {k}: 95 % interval {_fmt(lo)} – {_fmt(hi)}")
    if verdict is not None:
        for g in verdict.grades:
            t = Table(title=f"{g.grade}: {g.status.upper()} — {g.description}")
            for col in ("quantity", "bound", "value", "interval", "margin", "status"):
                t.add_column(col)
            for c in g.checks:
                iv = f"{_fmt(c.interval[0])} – {_fmt(c.interval[1])}" if c.interval else "—"
                st = c.status + (f" [{', '.join(c.flags)}]" if c.flags else "") + (f": {c.advice}" if c.advice else "")
                sym = {"min": "≥", "max": "≤", "gt": ">"}.get(c.kind, c.kind)
                t.add_row(c.label, f"{sym} {c.limit:g}", _fmt(c.value), iv, _fmt(c.margin), st)
            con.print(t)
        con.print(f"grades met: {', '.join(verdict.met) or 'none'}")


@app.command()
def surface(
    image: Path = typer.Argument(..., metavar="IMAGE", help="reflected-light top view (TIFF/PNG/JPEG; grey, or RGB/RGBA as luminance)"),
    transmitted: Optional[Path] = typer.Option(None, "--transmitted", metavar="IMAGE", help="registered transmitted-light view"),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", metavar="UM", parser=_pixel_size_option, help="µm per pixel (default: the file's own, see castrig analyse --help)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object of metrics"),
    overlay: Optional[Path] = typer.Option(None, "--overlay", metavar="PNG",
                                             help="write a PNG (.png) with the pores outlined; an existing file is replaced only "
                                                  "if it is an earlier overlay of castrig's"),
    appearance: str = typer.Option("optical", "--appearance", metavar="A",
                                   help="optical (light microscope: pores darker or brighter than the film, found from the image), "
                                        "sem (secondary electrons: bright inner rims, dark cores) or auto (sem for a file "
                                        "carrying an SEM's own metadata: Zeiss, FEI/Thermo, TESCAN, Hitachi, JEOL; else "
                                        "from the image; a ridge round the pores it cannot place is flagged appearance_ambiguous); "
                                        "the result says how it was chosen"),
    rois: Optional[Path] = typer.Option(None, "--rois", metavar="ZIP", help="write the measured pores as an ImageJ/Fiji ROI set"),
) -> None:
    """Opening ratio, pore diameters, through-pore fraction and pitch of a top view.

    RGB/RGBA images are measured in grey: luminance 0.2125 R + 0.7154 G + 0.0721 B, alpha dropped.

    Refused with exit 2: NaN/Inf pixels, pixel sizes outside 0.0005–50 µm, images above $CASTRIG_MAX_IMAGE_PIXELS (default 100 Mpx).

    \b
    Examples:
      castrig analyse surface top.tif
      castrig analyse surface top.png --pixel-size 0.25 --transmitted through.png --json
      castrig analyse surface top.tif --overlay pores.png
      castrig analyse surface sem.tif --appearance sem --rois pores.zip   # open both in Fiji
    """
    _check_outputs([image, transmitted], [rois] if rois is not None else [], overlay)
    _check_appearance(appearance)
    refl, trans, px, images = _load_surface(image, transmitted, pixel_size)
    check_memory([(image, refl, trans)])
    from castrig.analysis import analyse_surface  # (scipy's start-up: not for input refused above)

    used = _appearance_for(appearance, images["surface"])
    m = analyse_surface(refl, px, trans, keep_labels=overlay is not None, appearance=used)
    del trans
    if rois is not None:
        from castrig.analysis.rois import surface_rois

        _write_rois(rois, surface_rois(m))
    if overlay is not None:
        _write_overlay(overlay, refl, m)
    quality = m.quality() | {"appearance_from": _appearance_said(appearance, used, m.appearance, images["surface"],
                                                                  m.appearance_ambiguous)}
    _emit(m.to_dict(), as_json, f"surface: {image.name}", quality=quality, images=images)


@app.command()
def section(
    image: Path = typer.Argument(..., metavar="IMAGE", help="cross-section view (background on top)"),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", metavar="UM", parser=_pixel_size_option, help="µm per pixel (default: the file's own, see castrig analyse --help)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object of metrics"),
    rois: Optional[Path] = typer.Option(None, "--rois", metavar="ZIP", help="write the film top, interface and tongues as an ImageJ/Fiji ROI set"),
) -> None:
    """Film thickness (mean, std), the support's pore size and claim 1's section features:
    polymer penetration into the support (depth, fraction of the interface), neighbouring
    cavities joined by an opening, support pores connected through the section.

    Images are read as for ``analyse surface`` (RGB/RGBA as luminance, alpha dropped).

    \b
    Examples:
      castrig analyse section cut.tif
      castrig analyse section cut.png --pixel-size 0.05 --json
      castrig analyse section cut.tif --rois cut.zip
    """
    _check_outputs([image], [rois] if rois is not None else [])
    sec, px, rec = _load(image, pixel_size, "section")
    _refuse_section_mask(image, sec)
    check_memory([(image, sec, None)])
    from castrig.analysis import analyse_section  # (as in surface: after the input is accepted)

    m, images = analyse_section(sec, px), {"section": rec}
    if rois is not None:
        from castrig.analysis.rois import section_rois

        _write_rois(rois, section_rois(m))
    _emit(m.to_dict(), as_json, f"section: {image.name}", quality=m.quality(), images=images)


@app.command()
def membrane(
    surface_image: Path = typer.Option(..., "--surface", metavar="IMAGE", help="reflected-light top view"),
    transmitted: Optional[Path] = typer.Option(None, "--transmitted", metavar="IMAGE", help="registered transmitted-light view"),
    section_image: Path = typer.Option(..., "--section", metavar="IMAGE", help="cross-section view"),
    pixel_size: Optional[float] = typer.Option(None, "--pixel-size", metavar="UM", parser=_pixel_size_option, help="µm per pixel for all images (default: each file's own, see castrig analyse --help)"),
    surface_pixel_size: Optional[float] = typer.Option(None, "--surface-pixel-size", metavar="UM", parser=_pixel_size_parser("--surface-pixel-size"),
                                                       help="µm per pixel of the top views (reflected and transmitted): wins over --pixel-size"),
    section_pixel_size: Optional[float] = typer.Option(None, "--section-pixel-size", metavar="UM", parser=_pixel_size_parser("--section-pixel-size"),
                                                       help="µm per pixel of the section view: wins over --pixel-size"),
    grade: Optional[str] = typer.Option(None, "--grade", metavar="G", help="judge only this grade (e.g. claim3)"),
    as_json: bool = typer.Option(False, "--json", help="print one JSON object: metrics + verdict"),
    appearance: str = typer.Option("optical", "--appearance", metavar="A", help="top view: optical, sem or auto (sem for a file carrying an SEM's own metadata, else from the image; "
                                   "a ridge round the pores it cannot place is flagged appearance_ambiguous)"),
    rois: Optional[Path] = typer.Option(None, "--rois", metavar="ZIP",
                                        help="ImageJ/Fiji ROI sets: the surface's pores in ZIP, the section's lines in ZIP's name + '-section.zip'"),
) -> None:
    """All metrics of a membrane and the verdict against the specification's grades.

    \b
    Examples:
      castrig analyse membrane --surface top.tif --section cut.tif
      castrig analyse membrane --surface top.tif --transmitted through.tif --section cut.tif --grade claim3 --json
      castrig analyse membrane --surface top.png --section cut.png --surface-pixel-size 0.25 --section-pixel-size 0.05

    A section is most often taken at another magnification than the top views: each view's
    pixel size is its file's own, else --surface-pixel-size / --section-pixel-size, else
    --pixel-size.
    """
    from castrig.analysis.spec import load_spec
    from castrig.analysis.verdict import judge

    spec = load_spec()
    if grade is not None and grade not in spec.grades:
        raise BadInput(f"--grade {grade!r} is not a grade; choose from {', '.join(spec.grades)}", field="--grade")
    _check_outputs([surface_image, transmitted, section_image],
                   [] if rois is None else [rois, _section_rois_path(rois)])
    _check_appearance(appearance)
    # a view's own option wins over --pixel-size; a file's pixel size is used only where neither is given
    # (and a file without one is told of the view's own option)
    s_flag = "--pixel-size" if surface_pixel_size is None and pixel_size is not None else "--surface-pixel-size"
    x_flag = "--pixel-size" if section_pixel_size is None and pixel_size is not None else "--section-pixel-size"
    refl, trans, px, images = _load_surface(surface_image, transmitted, surface_pixel_size if surface_pixel_size is not None
                                            else pixel_size, flag=s_flag)
    sec, sec_px, images["section"] = _load(section_image, section_pixel_size if section_pixel_size is not None else pixel_size,
                                           "section", given_by=x_flag)
    _refuse_section_mask(section_image, sec)
    check_memory([(surface_image, refl, trans), (section_image, sec, None)])  # every image held: before measuring any
    from castrig.analysis import analyse_section, analyse_surface  # (as in surface: after the input is accepted)

    used = _appearance_for(appearance, images["surface"])
    sm = analyse_surface(refl, px, trans, appearance=used)
    del refl, trans  # the section's analysis has their room
    xm = analyse_section(sec, sec_px)
    if rois is not None:
        from castrig.analysis.rois import section_rois, surface_rois

        _write_rois(rois, surface_rois(sm))
        _write_rois(_section_rois_path(rois), section_rois(xm))
    data = sm.to_dict() | xm.to_dict()
    from castrig.analysis.quality import merge_quality

    quality = merge_quality(sm.quality(), xm.quality())
    if xm.wave_px:
        quality["wave_px"] = xm.wave_px  # (the section's: see castrig.analysis.section)
    quality.update(appearance=sm.appearance,
                   appearance_from=_appearance_said(appearance, used, sm.appearance, images["surface"],
                                                    sm.appearance_ambiguous))
    v = judge(data, [grade] if grade else None, spec, intervals=quality["intervals"], flagged=quality["flagged"])
    _emit(data, as_json, "membrane", verdict=v, quality=quality, images=images)
