"""The analyse step: the run's stored micrographs → pooled metrics → verdict.

Images are read back from the run folder (what is analysed is exactly what was stored). Every
kind of image captured of the membrane is analysed (each from the latest capture of that kind:
:func:`membrane_capture`); all fields are pooled: every measured pore counts once, so D and σd are those
of all pores together, and so are their 95 % intervals (more fields, narrower); opening ratio and
thickness are averaged over fields; pore communication counts the joined pairs of all sections. On the twin, the
same pooling is applied to the ground truth recorded with each image, for comparison.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from castrig.analysis import analyse_section, analyse_surface
from castrig.analysis.quality import merge_quality, surface_intervals, wilson
from castrig.analysis.segmentation import section_view, shown_step, surface_view
from castrig.analysis.verdict import judge
from castrig.errors import CastrigError
from castrig.store.measured_images import MembraneCapture, select_images
from castrig.store import RunRecorder, segmentation
from castrig.tiffio import read_micrograph


class AnalysisError(CastrigError):
    """Nothing (or not enough) to analyse."""


class AnalysisStopped(AnalysisError):
    """The run left the analyse step (abort, interlock) while its analysis was computing."""


def membrane_capture(recorder: RunRecorder, membrane_id: str | None = None) -> MembraneCapture:
    """Every image captured of ``membrane_id`` (all the run's when ``None``), by field and view.

    A membrane imaged in several capture steps (a surface capture, then a section capture) is
    analysed on all of them: each kind (reflected, transmitted, section) comes from the latest
    step that captured it, all its fields from that step (a kind captured again replaces the
    earlier capture whole: fields of two captures are not mixed). Only images carrying this
    membrane's id count, so another membrane's images never enter its analysis."""
    images = recorder.images()
    if membrane_id is not None:
        images = [im for im in images if im.metadata.get("membrane_id") == membrane_id]
    if not images:
        raise AnalysisError("no micrographs in this run: capture before analyse" if membrane_id is None else
                            f"no micrographs of membrane {membrane_id}: capture it before analyse")
    return select_images(images)


def latest_capture(recorder: RunRecorder, membrane_id: str | None = None) -> dict[int, dict[str, Any]]:
    """The images to analyse (of ``membrane_id`` when given), by field and view: :func:`membrane_capture`."""
    return membrane_capture(recorder, membrane_id).fields


def pool_surface(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool per-field surface results: diameters of all pores together."""
    diam = np.concatenate([p["diameters_um"] for p in parts]) if parts else np.zeros(0)
    through = [p["through"] for p in parts if p["through"] is not None]
    out: dict[str, Any] = {
        "opening_ratio": float(np.mean([p["opening_ratio"] for p in parts])),
        "pore_count": int(diam.size),
        "mean_pore_diameter_um": float(diam.mean()) if diam.size else None,
        "pore_diameter_std_um": float(diam.std(ddof=1)) if diam.size > 1 else None,
        "through_pore_fraction": None,
    }
    if through and len(through) == len(parts):
        flags = np.concatenate(through)
        out["through_pore_fraction"] = float(flags.mean()) if flags.size else None
    pitches = [p["pore_pitch_um"] for p in parts if p.get("pore_pitch_um")]
    out["pore_pitch_um"] = float(np.mean(pitches)) if pitches else None
    return out


def pool_truth(truths: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Pool per-field ground truth the same way (from counts, means and stds)."""
    truths = [t for t in truths if t]
    if not truths:
        return None
    n = np.array([t.get("pore_count") or 0 for t in truths], float)
    out: dict[str, Any] = {"opening_ratio": float(np.mean([t["opening_ratio"] for t in truths]))}
    if n.sum() > 0 and all(t.get("mean_pore_diameter_um") is not None for t in truths):
        d = np.array([t["mean_pore_diameter_um"] for t in truths])
        s = np.array([t.get("pore_diameter_std_um") or 0.0 for t in truths])
        mean = float((n * d).sum() / n.sum())
        ss = ((n - 1).clip(0) * s**2).sum() + (n * (d - mean) ** 2).sum()
        out.update(mean_pore_diameter_um=mean, pore_diameter_std_um=math.sqrt(ss / max(1.0, n.sum() - 1)),
                   pore_count=int(n.sum()))
        if all(t.get("through_pore_fraction") is not None for t in truths):
            out["through_pore_fraction"] = float((n * np.array([t["through_pore_fraction"] for t in truths])).sum() / n.sum())
    for key in ("mean_thickness_um", "thickness_std_um", "support_pore_diameter_um",
                "penetration_depth_um", "penetration_fraction", "pore_communication", "support_continuity"):
        vals = [t[key] for t in truths if t.get(key) is not None]
        if vals:
            out[key] = float(np.mean(vals))
    return out


def pool_surface_intervals(parts: list[dict[str, Any]]) -> dict[str, list[float]]:
    """95 % intervals of the pooled surface metrics from all the fields' pores together (as one
    field's are from its own: :func:`castrig.analysis.quality.surface_intervals`), when the fields
    share one pixel size; else none (:func:`pool_quality`'s mean stands). The fields' mean
    interval did not narrow with more fields: a marginal D, σd or through-pore fraction, whose
    advice is to measure more fields, stayed marginal however many were taken."""
    pxs = {p["pixel_size_um"] for p in parts}
    if len(pxs) != 1 or not parts:
        return {}
    pooled = pool_surface(parts)
    diam = np.concatenate([p["diameters_um"] for p in parts])
    through = [p["through"] for p in parts if p["through"] is not None]
    flags = np.concatenate(through) if through and len(through) == len(parts) else None
    iv = surface_intervals(diam, pooled["opening_ratio"], flags, pxs.pop())
    return {k: [float(v[0]), float(v[1])] for k, v in iv.items() if v is not None}


def pool_communication(sections: list[tuple[float | None, int]]) -> tuple[float | None, list[float] | None]:
    """Pore communication of several sections, from each one's (fraction joined, neighbouring
    pairs): joined over all their pairs, and its 95 % Wilson interval over all of them. The
    fields' mean fraction and mean interval (:func:`pool_quality`) kept four sections with none of
    27 pairs joined at one section's [0, 0.125]: the verdict's advice, more fields, could never
    settle it (with all 108 pairs: [0, 0.034])."""
    seen = [(f, k) for f, k in sections if f is not None and k > 0]
    if not seen:
        return None, None
    n = sum(k for _, k in seen)
    p = sum(round(f * k) for f, k in seen) / n
    return p, list(wilson(p, n))


def pool_quality(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Quality flags and 95 % intervals of the pooled metrics, from each field's ``quality()``.

    A flag in any field marks the pooled metric (a metric is never trusted more than its worst
    field). Each interval is the fields' mean bounds: as if their errors were one — the
    edge-position part is — so the pooled interval is never narrower than the fields' evidence
    and a bound inside it is judged marginal, not passed."""
    flags = sorted({f for q in parts for f in q.get("flags", ())})
    flagged: dict[str, list[str]] = {}
    for q in parts:
        for k, fl in q.get("flagged", {}).items():
            flagged[k] = sorted(set(flagged.get(k, [])) | set(fl))
    intervals: dict[str, list[float]] = {}
    for k in {k for q in parts for k in q.get("intervals", {})}:
        ivs = [q["intervals"][k] for q in parts if k in q.get("intervals", {})]
        if len(ivs) == len(parts):
            intervals[k] = [float(np.mean([iv[0] for iv in ivs])), float(np.mean([iv[1] for iv in ivs]))]
    return {"flags": flags, "flagged": flagged, "intervals": intervals}


def _keep(run_dir: Path, image_rel: str, view: Callable[[], dict[str, Any]]) -> None:
    """Keep the segmentation the report draws of an image (:mod:`castrig.store.segmentation`).
    Not kept (a full disk, a read-only folder), the report measures the image itself: nothing
    of the analysis depends on it."""
    try:
        segmentation.write(run_dir, image_rel, view())
    except (OSError, ValueError):
        pass


def _measure_section(run_dir: Path, sec: Any) -> Any:
    """A field's section image, read from ``run_dir``, measured and its segmentation kept."""
    img, px, _ = read_micrograph(run_dir / sec.path)
    s = analyse_section(img, px or sec.pixel_size_um)
    _keep(run_dir, sec.path, lambda: section_view(s, img, shown_step(img.shape)))
    return s


class _Beside:
    """``work()`` on a thread of its own (not the analysis pool's: the surface analysis beside it
    hands its own jobs to that pool, and a pool worker waiting on them could starve it)."""

    def __init__(self, work: Callable[[], Any]) -> None:
        self._out: list[Any] = []
        self._err: list[BaseException] = []

        def run() -> None:
            try:
                self._out.append(work())
            except BaseException as exc:  # noqa: BLE001 - raised in the caller's thread by result()
                self._err.append(exc)

        self._thread = threading.Thread(target=run, name="castrig-section", daemon=True)
        self._thread.start()

    def join(self) -> None:
        self._thread.join()

    def result(self) -> Any:
        self._thread.join()
        if self._err:
            raise self._err[0]
        return self._out[0]


def _beside(work: Callable[[], Any]) -> _Beside | None:
    """``work`` started on a thread of its own, or None (the caller then runs it itself) when the
    analysis runs without threads (``$CASTRIG_ANALYSIS_THREADS`` = 0: an explore worker already
    using every core)."""
    from castrig.analysis.workers import analysis_threads

    return _Beside(work) if analysis_threads() > 0 else None


def analyse_capture(run_dir: Path, fields: dict[int, dict[str, Any]], *, grade: str | None,
                    stopped: Callable[[], bool] = lambda: False) -> dict[str, Any]:
    """Metrics and verdict of a capture's images (:func:`latest_capture`), read from ``run_dir``.

    Touches only the image files and their segmentation (kept for the report), not the run's
    store: the runner calls it on a worker thread while the rig goes on ticking. ``stopped()`` is asked before each field: once true (the run
    left the step), :class:`AnalysisStopped` ends the work instead of computing for nobody."""
    surface_parts: list[dict[str, Any]] = []
    sections: list[dict[str, Any]] = []
    pairs: list[tuple[float | None, int]] = []  # each section's (pore communication, neighbouring cavity pairs)
    per_field: list[dict[str, Any]] = []
    truths: list[dict[str, Any]] = []
    qualities: list[dict[str, Any]] = []  # per field, surface and section apart (pooled apart)
    section_qualities: list[dict[str, Any]] = []
    for f, views in fields.items():
        if stopped():
            raise AnalysisStopped(f"analysis of {run_dir.name} stopped before field {f}: the run left the step")
        row: dict[str, Any] = {"field": f}
        refl = views.get("reflected")
        sec = views.get("section")
        # the section measured on a thread of its own beside the surface pair (numpy and scipy
        # release the GIL in their loops: the twin's overnight, 4 fields, spent its analyses one
        # after the other on one core); the same results, taken in the same order
        side = _beside(lambda sec=sec: _measure_section(run_dir, sec)) if sec is not None and refl is not None else None
        if refl is not None:
            try:
                img, px, _ = read_micrograph(run_dir / refl.path)
                px = px or refl.pixel_size_um
                trans = None
                if "transmitted" in views:
                    trans, _, _ = read_micrograph(run_dir / views["transmitted"].path)
                m = analyse_surface(img, px, trans, keep_labels=True)
                _keep(run_dir, refl.path, lambda: surface_view(m, shown_step(img.shape)))
            except BaseException:
                if side is not None:  # (the section's error, if any, is not the one raised: the surface's came first)
                    side.join()
                raise
            qualities.append(m.quality())
            surface_parts.append({**m.to_dict(), "diameters_um": m.diameters_um, "pixel_size_um": px,
                                  "through": None if m.through is None else np.asarray(m.through, bool)})
            row.update(m.to_dict())
            truths.append(refl.metadata.get("truth") or {})
        if sec is not None:
            s = side.result() if side is not None else _measure_section(run_dir, sec)
            section_qualities.append(s.quality())
            sections.append(s.to_dict())
            pairs.append((s.pore_communication, s.cavity_pairs))
            row.update(s.to_dict())
        per_field.append(row)
    if not surface_parts and not sections:
        raise AnalysisError("the membrane's captures have no reflected or section view to analyse")
    metrics: dict[str, Any] = pool_surface(surface_parts) if surface_parts else {}
    for key in ("mean_thickness_um", "thickness_std_um", "support_pore_diameter_um",
                "penetration_depth_um", "penetration_fraction", "pore_communication", "support_continuity"):
        vals = [s[key] for s in sections if s.get(key) is not None]
        metrics[key] = float(np.mean(vals)) if vals else None
    metrics["fields"] = len(fields)
    quality = merge_quality(pool_quality(qualities), pool_quality(section_qualities))
    for k, iv in pool_surface_intervals(surface_parts).items():
        if k in quality["intervals"]:  # (every field's measured: else the pooled metric is not all of them)
            quality["intervals"][k] = iv
    joined, joined_iv = pool_communication(pairs)
    if joined_iv is not None and "pore_communication" in quality["intervals"]:  # (every section's pairs measured)
        metrics["pore_communication"], quality["intervals"]["pore_communication"] = joined, joined_iv
    # the verdict a lab signs: flagged metrics are not trusted, bounds inside an interval are marginal
    verdict = judge(metrics, intervals=quality["intervals"], flagged=quality["flagged"])
    vd = verdict.to_dict()
    vd["grades_met"] = verdict.met
    vd["target_grade"] = grade
    vd["target_met"] = None if grade is None else grade in verdict.met
    truth = pool_truth(truths)
    summary = ", ".join(
        f"{k}={metrics[k]:.3g}" for k in ("opening_ratio", "mean_pore_diameter_um", "pore_diameter_std_um",
                                           "through_pore_fraction", "mean_thickness_um") if metrics.get(k) is not None
    )
    return {"metrics": metrics, "verdict": vd, "quality": quality, "truth": truth, "per_field": per_field,
            "summary": summary}
