"""A run's page — the live view while it runs, its report once it has ended — and the report file.

One design, one renderer: the page is drawn in the browser by ``castrig/report/static/live.js``
(with ``live.css``) from JSON. ``castrig serve`` feeds it from its API while the run goes on;
``castrig report RUN_DIR`` (and ``GET /runs/{uid}/report.html``) write the same page as one
self-contained file, stylesheet, script and data inlined — samples, events, status, and this
module's :func:`report_data`: what went wrong, the steps and each crash → resume gap on the time
axis, the allowed RH bands, one section per membrane (process record, verdict, metrics beside the
twin's ground truth, pore-size histogram, micrographs as JPEG with the segmentation as a separate
transparent overlay), and the recipe as written. It opens from a disk or a mail attachment
without castrig or a network. Everything is read back from the run folder (run.json,
run.sqlite, images, results, log.jsonl), so any run can be reported, also a faulted, crashed or
interrupted one, on a machine without the rig; everything from files reaches the page as text.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from castrig import jsontext
from castrig.analysis.segmentation import SECTION_VALUES, SURFACE_VALUES, section_view, shown_step, surface_view
from castrig.redact import redact_urls
from castrig.report import REPORT_NAME
from castrig.report.csp import csp_hash
from castrig.report.images import jpeg_uri, png_uri, to_uint8
from castrig.report.unmet import unmet_bounds, unmet_grades, value_words
from castrig.store.base import Event, ImageRecord, JournalEntry, MembraneRecord, RunInfo
from castrig.store.export import flatten, format_bound, grade_status, verdict_rows
from castrig.store.lock import CRASHED_REASON, live_outcome
from castrig.store.recipe_text import recipe_file_text
from castrig.store.sqlite_store import SqliteRunStore
from castrig.store.sqlite_connect import ro_uri
from castrig.svgchart import Band
from castrig.utc import parse_utc

#: Event kinds that mean something went wrong (drawn red, listed under "what went wrong").
PROBLEM_KINDS = frozenset({"interlock", "run_end", "fault", "error", "alarm", "abort", "crash"})


@dataclass
class RunData:
    """Everything the report reads from a run folder."""

    run_dir: Path
    info: RunInfo
    samples: dict[str, tuple[np.ndarray, np.ndarray]]  # channel -> (t_s, values)
    events: list[Event]
    journal: list[JournalEntry]
    images: list[ImageRecord]
    results: dict[str, dict[str, Any]]
    log_problems: list[dict[str, Any]] = field(default_factory=list)
    membranes: list[MembraneRecord] = field(default_factory=list)
    image_ids: list[int] = field(default_factory=list)  # the images table's ids, in the order of ``images``

    def membrane_results(self, membrane_id: str) -> dict[str, Any]:
        """A membrane's results (``metrics``, ``verdict``, ``truth``…) by their short names."""
        prefix = membrane_id + "/"
        return {k[len(prefix):]: v for k, v in self.results.items() if k.startswith(prefix)}

    @property
    def t_end_s(self) -> float:
        ts = [float(t[-1]) for t, _ in self.samples.values() if len(t)]
        ts += [e.t_s for e in self.events] + [j.t_s for j in self.journal]
        return max(ts, default=0.0)


def load_run(run_dir: Path) -> RunData:
    """Read a run folder (any backend leaves run.json and run.sqlite in it)."""
    run_dir = Path(run_dir)
    with SqliteRunStore(run_dir.parent).open_run(run_dir) as rec:
        by_channel: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for t, ch, v in rec.samples():
            by_channel[ch].append((t, np.nan if v is None else v))
        samples = {ch: (np.array([p[0] for p in pts]), np.array([p[1] for p in pts], float)) for ch, pts in by_channel.items()}
        data = RunData(run_dir, rec.info, samples, rec.events(), rec.journal(), rec.images(), rec.results(),
                       membranes=rec.membranes())
    if live_outcome(run_dir, data.info.outcome) == "crashed":  # nobody owns it: its process died
        data.info.outcome, data.info.outcome_reason = "crashed", CRASHED_REASON
    data.log_problems = _log_problems(run_dir / "log.jsonl")
    data.image_ids = _image_ids(run_dir, len(data.images))
    return data


def _image_ids(run_dir: Path, n: int) -> list[int]:
    """The ids of the images table (ORDER BY id, as the store lists them): the live page's image URLs."""
    import sqlite3

    try:
        db = sqlite3.connect(f"{ro_uri(run_dir / 'run.sqlite')}?mode=ro", uri=True, timeout=5)
        try:
            ids = [int(r[0]) for r in db.execute("SELECT id FROM images ORDER BY id")]
        finally:
            db.close()
    except sqlite3.Error:
        ids = []
    return ids if len(ids) == n else list(range(1, n + 1))


#: How much of the end of ``log.jsonl`` the report reads for its problems.
LOG_TAIL_BYTES = 8 << 20


def _log_problems(path: Path, limit: int = 30) -> list[dict[str, Any]]:
    """Warnings and errors from the structured log (a torn last line is skipped): from its last
    :data:`LOG_TAIL_BYTES` (a 300 MB log took 654 MB of a report's memory, on every report page
    `castrig serve` was asked for) and never through a symlink (one to another service's log
    put its errors, secrets in them, into the report: an outside tester)."""
    import collections
    import os

    from castrig.regular import open_regular

    fh = open_regular(path, follow=False)
    if fh is None:
        return []
    with fh:
        start = max(0, os.fstat(fh.fileno()).st_size - LOG_TAIL_BYTES)
        fh.seek(start)
        lines = fh.read(LOG_TAIL_BYTES).split(b"\n")
    out: collections.deque[dict[str, Any]] = collections.deque(maxlen=limit)
    for line in lines[1:] if start else lines:  # (a line cut by the start of the tail: skipped)
        try:
            rec = jsontext.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict) and str(rec.get("level", "")).lower() in ("warning", "error", "critical", "exception"):
            out.append(rec)
    return list(out)


# -- steps and bands -----------------------------------------------------------------------------
@dataclass
class StepSpan:
    index: int
    type: str
    t0_s: float
    t1_s: float | None  # None: started, never finished
    step: dict[str, Any]
    #: started, then cut short: its membrane was lost (a crash, an abort) and the step skipped
    cut: bool = False

    @property
    def label(self) -> str:
        return f"{self.index + 1} {self.step.get('label') or self.type}"  # step numbers are 1-based everywhere


def step_spans(data: RunData) -> list[StepSpan]:
    """Each step's last start and its end, from the journal (resumes restart a step)."""
    steps = list(data.info.recipe.get("steps", [])) if isinstance(data.info.recipe, Mapping) else []
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    cut: set[int] = set()
    types: dict[int, str] = {}
    for j in data.journal:
        if j.state == "started":
            starts[j.step_index] = j.t_s
            ends.pop(j.step_index, None)
            cut.discard(j.step_index)
            types[j.step_index] = str(j.data.get("type", ""))
        elif j.state == "done":
            ends[j.step_index] = j.t_s
        elif j.state == "skipped" and j.step_index in starts and j.step_index not in ends:
            # started, and its membrane lost: it ended there (drawn to the run's end, its RH band
            # had lain over the next membranes' evaporations)
            ends[j.step_index] = max(j.t_s, starts[j.step_index])
            cut.add(j.step_index)
    out = []
    for i in sorted(starts):
        step = steps[i] if i < len(steps) and isinstance(steps[i], Mapping) else {}
        out.append(StepSpan(i, types[i] or str(step.get("type", "step")), starts[i], ends.get(i), dict(step), i in cut))
    return out


def rh_bands(spans: Sequence[StepSpan], t_end_s: float) -> list[Band]:
    """Setpoint ± band of the steps that hold RH (condition, evaporate)."""
    bands = []
    for s in spans:
        sp, band = s.step.get("setpoint_rh_pct"), s.step.get("band_rh_pct")
        if sp is not None and band is not None:
            bands.append(Band(s.t0_s, s.t1_s if s.t1_s is not None else t_end_s, float(sp) - float(band),
                              float(sp) + float(band), "allowed band (setpoint ± band)"))
    return bands


# -- what went wrong -----------------------------------------------------------------------------
def problems(data: RunData, notes: Sequence[str] = ()) -> list[str]:
    """Plain sentences, most important first; empty when nothing went wrong."""
    out: list[str] = []
    info = data.info
    if info.outcome != "completed":
        out.append(f"The run ended {info.outcome}" + (f": {info.outcome_reason}" if info.outcome_reason else "."))
    safe_at = [e.t_s for e in data.events if e.kind == "safe_state" and e.data.get("safe") is True]
    for e in data.events:
        if e.kind in PROBLEM_KINDS and e.kind != "run_end":
            out.append(f"{e.t_s:.1f} s — {e.kind} ({e.source}): {e.message}")
        if e.kind == "safe_state" and e.data.get("safe") is False:
            if e.data.get("first_try") and any(t >= e.t_s for t in safe_at):
                continue  # the safe state's first try, verified by its retries: on the timeline, not a problem
            out.append(f"{e.t_s:.1f} s — the safe state was NOT verified: {e.message}")
    for mb in data.membranes:
        if mb.status == "lost":
            out.append(f"Membrane {mb.membrane_id} lost: {mb.lost_reason}")
        elif mb.status == "made" and (mb.process or {}).get("analysis_failed"):
            out.append(f"Membrane {mb.membrane_id} was made but not judged: its analysis failed "
                       f"({mb.process['analysis_failed']}); its images are in the run folder.")
        elif mb.status != "judged" and info.outcome == "completed":
            out.append(f"Membrane {mb.membrane_id} was not judged (status {mb.status}).")
        elif mb.status == "made":  # the run ended before its capture/analyse: made, and can still be imaged
            out.append(f"Membrane {mb.membrane_id} was made (evaporated under control) but not judged: the run ended "
                       f"{info.outcome} before its capture/analyse (`castrig resume "
                       f"{'--after-abort ' if info.outcome == 'aborted' else ''}RUN` images and judges it).")
        elif mb.status == "forming":  # recorded before runs ending recorded their losses
            out.append(f"Membrane {mb.membrane_id} was still forming when the run ended {info.outcome}: "
                       "its film dried without RH control.")
        elif mb.status == "judged" and mb.target_grade and not mb.target_met:
            # each failing bound once, with the grades it fails (it was named once per grade)
            others = [g for g in unmet_grades(mb.verdict or {}) if g != mb.target_grade]
            what = unmet_bounds(mb.verdict or {}, [mb.target_grade, *others])
            out.append(f"Membrane {mb.membrane_id}: grade {mb.target_grade} not met"
                       + (f" (nor {', '.join(others)})" if others else "") + (f": {what}" if what else "."))
    verdict = data.results.get("verdict")
    if data.membranes:
        pass  # judged per membrane above
    elif verdict is not None:
        target = verdict.get("target_grade") if isinstance(verdict, Mapping) else None
        unmet = unmet_grades(verdict)
        if target and target not in unmet:
            if unmet:
                out.append(f"Also not met: {', '.join(unmet)} (see the verdict).")
        elif unmet:
            others = [g for g in unmet if g != target]
            head = (f"Grade {target} not met" + (f" (nor {', '.join(others)})" if others else "") if target
                    else f"Grade{'s' if len(unmet) > 1 else ''} {', '.join(unmet)} not met")
            what = unmet_bounds(verdict, unmet)
            out.append(head + (f": {what}" if what else "."))
    elif info.outcome == "completed":
        out.append("The run has no verdict (no analyse step, or it recorded none).")
    for rec in data.log_problems:
        out.append(f"log {rec.get('level')}: {rec.get('event')}" + (f" — {rec['error']}" if rec.get("error") else ""))
    out.extend(notes)
    return out


# -- micrographs -----------------------------------------------------------------------------------
@dataclass
class Analysed:
    """The micrographs as the page shows them (JSON-ready dicts), the pore diameters per membrane."""

    micrographs: list[dict[str, Any]]
    diameters_um: dict[str, list[float]]  # membrane id ("" without membranes) -> diameters
    notes: list[str]


def _read_image(path: Path) -> np.ndarray:
    """A run's micrograph, with the same size check as every image castrig reads."""
    from castrig.tiffio import read_micrograph

    return np.asarray(read_micrograph(path)[0])


def _grey(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=2) if a.ndim == 3 else a


def analyse_images(data: RunData, image_url: Callable[[int], str] | None = None) -> Analysed:
    """Load each micrograph and its segmentation: the run's own (the analyse step keeps it,
    :mod:`castrig.store.segmentation`), else the surfaces (with their transmitted twins) and
    sections measured here.

    ``image_url``: where the page finds the picture itself (the live page: castrig serve's image
    route); without it the picture is inlined as a JPEG data URI. Overlays are always inlined
    (indexed PNGs, mostly transparent: a few kB).
    """
    from castrig.store import segmentation

    loaded: dict[str, np.ndarray] = {}
    digests: dict[str, str | None] = {}
    notes: list[str] = []
    from castrig.store.live import held_file_in

    for rec in data.images:
        # (only files inside the run folder: a symlinked, absolute or '..' path put a file from
        # elsewhere on the disk into the report, though the live image route refused it; and read
        # as checked, held open: one swapped for a named pipe after the look hung the report)
        with held_file_in(data.run_dir, rec.path) as path:
            if path is None:
                notes.append(f"image {rec.name} ({rec.path}) not read: not a file inside the run folder")
                continue
            try:
                loaded[rec.name] = _grey(_read_image(path))
                digests[rec.name] = segmentation.image_digest(path)
            except Exception as exc:  # noqa: BLE001 - one unreadable image must not hide the others
                # (said without the server's own paths, nor the descriptor it was read through)
                why = str(exc).replace(f"{path}", Path(rec.path).name).replace(f"{data.run_dir}/", "")
                notes.append(f"image {rec.name} ({rec.path}) unreadable: {type(exc).__name__}: {why}")
    groups: dict[tuple[Any, Any], dict[str, ImageRecord]] = defaultdict(dict)
    for rec in data.images:
        # (a hand-edited step or field that is a list or an object: a key of its text, not a TypeError)
        key = tuple(v if v is None or isinstance(v, (str, int, float)) else json.dumps(v, sort_keys=True, default=str)
                    for v in (rec.metadata.get("step"), rec.metadata.get("field", rec.name)))
        groups[key][rec.illumination] = rec
    out: list[dict[str, Any]] = []
    diameters: dict[str, list[float]] = defaultdict(list)
    measured = _measured_names(data.images)
    for image_id, rec in zip(data.image_ids, data.images):
        img = loaded.get(rec.name)
        if img is None:
            continue
        step = shown_step(img.shape)
        mid = str(rec.metadata.get("membrane_id") or "")
        m: dict[str, Any] = {
            "id": image_id, "name": rec.name, "illumination": rec.illumination, "pixel_size_um": rec.pixel_size_um,
            "t_s": rec.t_s, "membrane_id": mid, "width_px": int(img.shape[1]), "height_px": int(img.shape[0]),
            "src": image_url(image_id) if image_url else jpeg_uri(to_uint8(img[::step, ::step])), "overlay": None, "caption": "",
        }
        field_no = rec.metadata.get("field")
        where = f"field {field_no}" if field_no is not None else rec.name
        try:
            view = None
            if rec.illumination in ("reflected", "section"):  # the run's own segmentation, if it is this image's
                view = segmentation.read(data.run_dir, rec.path, digests[rec.name], rec.illumination, img.shape, step,
                                         SURFACE_VALUES if rec.illumination == "reflected" else SECTION_VALUES)
            if rec.illumination == "reflected":
                if view is None:
                    partner = groups[(rec.metadata.get("step"), rec.metadata.get("field", rec.name))].get("transmitted")
                    trans = loaded.get(partner.name) if partner is not None else None
                    if trans is not None and trans.shape != img.shape:
                        trans = None
                    from castrig.analysis import analyse_surface

                    view = surface_view(analyse_surface(img, rec.pixel_size_um, trans, keep_labels=True), step)
                v = view["values"]
                if rec.name in measured:  # (a view captured again: the histogram pools what the verdict measured)
                    diameters[mid] += view["diameters_um"]
                m["caption"] = (f"{where}, reflected: {v['pore_count']} pores measured, {v['border_pore_count']} cut by the border; "
                                f"D = {_v(v['mean_pore_diameter_um'])} µm, opening ratio {_v(v['opening_ratio'])}")
            elif rec.illumination == "section":
                if view is None:
                    from castrig.analysis import analyse_section

                    view = section_view(analyse_section(img, rec.pixel_size_um), img, step)
                v = view["values"]
                m["caption"] = (f"{where}, section: T = {_v(v['mean_thickness_um'])} µm, σt = {_v(v['thickness_std_um'])} µm; "
                                f"claim 1: polymer {_v(v['penetration_depth_um'])} µm into the support over "
                                f"{_v(v['penetration_fraction'])} of the interface, {_v(v['pore_communication'])} of "
                                f"neighbouring cavities joined, support pores {_v(v['support_continuity'])} connected through")
            else:
                m["caption"] = f"{where}, {rec.illumination}"
            if view is not None and view["overlay_png"] is not None:
                m["overlay"] = png_uri(view["overlay_png"])
        except Exception as exc:  # noqa: BLE001 - show the image even if its analysis fails
            notes.append(f"analysis of {rec.name} failed: {type(exc).__name__}: {exc}")
            m["caption"] = f"{where}, {rec.illumination} (analysis failed)"
        out.append(m)
    return Analysed(out, dict(diameters), notes)


# -- the data the page draws -------------------------------------------------------------------------
_v = value_words


def _run_time(t_s: Any) -> str:
    """A time into the run for sentences: seconds, and past 10 minutes the clock reading too
    ("14580 s (4:03:00)"), not "1.458e+04 s"."""
    if not isinstance(t_s, (int, float)) or isinstance(t_s, bool) or not math.isfinite(t_s):
        return _v(t_s)
    if abs(t_s) < 600:
        return f"{t_s:.4g} s"
    whole = int(round(abs(t_s)))
    sign = "-" if t_s < 0 else ""
    return f"{t_s:.0f} s ({sign}{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d})"


def _num(x: Any) -> float | None:
    """A number the page can show, or None (NaN and infinities are not JSON)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(float(x)) else None


def grades_of(verdict: Any) -> list[dict[str, Any]]:
    """A verdict as ``[{grade, status, description, checks: [{label, quantity, bound, value, margin, status}]}]``.

    The analysis writes checks with ``quantity``, ``label``, ``kind``, ``limit``, ``value``,
    ``margin`` and ``status`` (pass | fail | marginal | unknown); other layouts are read through
    :func:`castrig.store.export.verdict_rows`. Rows added to a grade (claim 1's section rows) show
    as they come.
    """
    if not isinstance(verdict, Mapping):
        return []
    status = grade_status(verdict)
    entries = verdict.get("grades")
    out: list[dict[str, Any]] = []
    if isinstance(entries, list) and all(isinstance(e, Mapping) and isinstance(e.get("checks"), list) for e in entries):
        for e in entries:
            g = str(e.get("grade", ""))
            checks = []
            for c in e["checks"]:
                if not isinstance(c, Mapping):
                    continue
                st = c.get("status")
                if st not in ("pass", "fail", "marginal", "unknown"):
                    p = c.get("pass")
                    st = "pass" if p is True else "fail" if p is False else "unknown"
                checks.append({"label": str(c.get("label") or c.get("quantity") or c.get("metric") or ""),
                               "quantity": str(c.get("quantity") or ""), "bound": format_bound(c),
                               "value": _num(c.get("value", c.get("measured"))), "margin": _num(c.get("margin")),
                               "status": st})
            st = e.get("status") if e.get("status") in ("pass", "fail", "marginal", "unknown") else status.get(g, "unknown")
            out.append({"grade": g, "status": st, "description": str(e.get("description") or ""), "checks": checks})
        return out
    rows = verdict_rows(verdict)
    for g, st in status.items():
        checks = [{"label": str(r["metric"]), "quantity": str(r["metric"]), "bound": str(r["bound"]),
                   "value": _num(r["measured"]), "margin": _num(r["margin"]),
                   "status": "pass" if r["pass"] else "fail" if r["pass"] is False else "unknown"}
                  for r in rows if r["grade"] == g]
        out.append({"grade": g, "status": st, "description": "", "checks": checks})
    return out


def _metrics_rows(metrics: Any, truth: Any) -> list[list[Any]]:
    """[name, measured, twin ground truth] for each metric (the truth None where the twin has none)."""
    if not isinstance(metrics, Mapping):
        return []
    t = dict(flatten(truth)) if isinstance(truth, Mapping) else {}
    return [[name, _num(value) if _num(value) is not None else (None if value is None else str(value)), _num(t.get(name))]
            for name, value in flatten(metrics)]


def _measured_names(images: list[ImageRecord]) -> set[str]:
    """The names of the images the run's analysis measured, membrane by membrane
    (:func:`castrig.store.measured_images.select_images`): each view's latest capture of the membrane."""
    from castrig.store.measured_images import select_images

    by_membrane: dict[str, list[ImageRecord]] = defaultdict(list)
    for rec in images:
        by_membrane[str(rec.metadata.get("membrane_id") or "")].append(rec)
    return {im.name for ims in by_membrane.values() for views in select_images(ims).fields.values() for im in views.values()}


def histogram(diameters_um: Sequence[float], marks: Sequence[tuple[float | None, str, str]] = ()) -> dict[str, Any] | None:
    """Pore-size histogram as bins (edges, counts) and marked values (x, label, kind)."""
    v = np.asarray([x for x in diameters_um if x is not None and math.isfinite(x)], float)
    if v.size == 0:
        return None
    n_bins = int(np.clip(np.sqrt(v.size) * 1.5, 6, 40))
    lo, hi = float(v.min()), float(v.max())
    if hi <= lo:
        lo, hi = lo - 0.5, hi + 0.5
    counts, edges = np.histogram(v, bins=n_bins, range=(lo, hi))
    return {"n": int(v.size), "edges": [round(float(e), 4) for e in edges], "counts": [int(c) for c in counts],
            "marks": [{"x": float(x), "label": label, "kind": kind} for x, label, kind in marks
                      if x is not None and math.isfinite(float(x))]}


def _dispensed(v: Mapping[str, Any]) -> str:
    """A dispense's volume; one cut short: at least its pump's last count (or unknown)."""
    if v.get("volume_ml") is None and v.get("finished") is False:
        least = v.get("volume_at_least_ml")
        return "unknown (cut short)" if least is None else f"at least {_v(least)} (cut short)"
    return _v(v.get("volume_ml"))


def _process_record(mb: MembraneRecord) -> str:
    p = mb.process or {}
    disp = p.get("dispensed") or {}
    made = "; ".join(f"{k} {_dispensed(v)} mL at {_v(v.get('rate_ml_min'))} mL/min"
                     for k, v in disp.items() if isinstance(v, Mapping))
    ev = p.get("evaporation") or {}
    return (f"Support position {_v(mb.support_position)} · {'made on the digital twin (simulated)' if mb.simulated else 'made on the rig'}"
            f" · from t = {_run_time(mb.t_start_s)} to {_run_time(mb.t_end_s)} · {made or 'nothing dispensed recorded'}"
            + (f" · evaporation at {_v(ev.get('setpoint_rh_pct'))} ± {_v(ev.get('band_rh_pct'))} %RH, "
               f"{_v(ev.get('out_of_band_s'))} s out of band" if ev else "")
            + (f" · RH {_v(p.get('rh_mean_pct'))} %RH mean, {_v(p.get('rh_min_pct'))}–{_v(p.get('rh_max_pct'))}"
               if p.get("rh_mean_pct") is not None else "")
            + (f" · partial record, up to t = {_run_time((p.get('partial') or {}).get('up_to_t_s'))} (the membrane was lost)"
               if p.get("partial") else ""))


def run_results(results: Mapping[str, Any]) -> dict[str, Any]:
    """The results of no membrane (``metrics``, ``verdict``… with no ``<membrane id>/`` before
    them): an analyse step before any cast, or a run recorded before membranes."""
    return {k: v for k, v in results.items() if "/" not in k}


def _membrane_block(mid: str, res: Mapping[str, Any], verdict: Any, metrics: Any, an: Analysed) -> dict[str, Any]:
    truth = res.get("truth")
    d = an.diameters_um.get(mid, [])
    marks: list[tuple[float | None, str, str]] = []
    if d:
        marks.append((float(np.mean(d)), f"mean measured {np.mean(d):.3g} µm", "mean"))
    if isinstance(truth, Mapping) and _num(truth.get("mean_pore_diameter_um")):
        marks.append((float(truth["mean_pore_diameter_um"]), f"twin ground truth {float(truth['mean_pore_diameter_um']):.3g} µm", "truth"))
    return {"grades": grades_of(verdict),
            "verdict_target": verdict.get("target_grade") if isinstance(verdict, Mapping) else None,
            "metrics": _metrics_rows(metrics, truth), "has_truth": isinstance(truth, Mapping),
            "histogram": histogram(d, marks), "micrographs": [m for m in an.micrographs if m["membrane_id"] == mid]}


def _membranes(data: RunData, an: Analysed) -> list[dict[str, Any]]:
    out = []
    for mb in data.membranes:
        res = data.membrane_results(mb.membrane_id)
        m, p = mb.metrics or {}, mb.process or {}
        d, sd = _num(m.get("mean_pore_diameter_um")), _num(m.get("pore_diameter_std_um"))
        out.append({
            "membrane_id": mb.membrane_id, "k": mb.k, "status": mb.status, "support_position": mb.support_position,
            "simulated": bool(mb.simulated), "lost_reason": mb.lost_reason, "target_grade": mb.target_grade,
            "target_met": mb.target_met, "grades_met": list(mb.grades_met or []), "lot_id": mb.lot_id,
            "record": _process_record(mb),
            "summary": {"D_um": d, "cv": sd / d if d and sd is not None else None, "opening_ratio": _num(m.get("opening_ratio")),
                        "T_um": _num(m.get("mean_thickness_um")), "rh_mean_pct": _num(p.get("rh_mean_pct")),
                        "rh_min_pct": _num(p.get("rh_min_pct")), "rh_max_pct": _num(p.get("rh_max_pct")),
                        "out_of_band_s": _num((p.get("evaporation") or {}).get("out_of_band_s"))},
            **_membrane_block(mb.membrane_id, res, res.get("verdict") or mb.verdict,
                              res.get("metrics") if isinstance(res.get("metrics"), Mapping) else mb.metrics, an),
        })
    return out


def _gaps(data: RunData) -> list[dict[str, Any]]:
    """Each crash → resume gap, at the run time where it happened (the run clock goes on from there)."""
    out = []
    for e in data.events:
        if e.kind == "resume" and e.source == "runner" and e.data.get("gap_at_t_s") is not None:
            gap = _num(e.data.get("gap_s"))
            words = f"gap: stopped, resumed {gap / 60:.1f} min later (wall clock)" if gap is not None else "gap: stopped, resumed"
            out.append({"t_s": float(e.data["gap_at_t_s"]), "gap_s": gap, "label": words})
    return out


def _wall_clock(info: RunInfo) -> str:
    """Wall-clock span of the whole run (every part)."""
    parts = list(info.parts or [])
    t0, t1 = parse_utc(info.started_utc), parse_utc(info.ended_utc)
    if t0 is None:
        return ""
    out = f"wall clock {info.started_utc} → {info.ended_utc or 'not ended'}"
    if t1 is not None:
        out += f" ({(t1 - t0).total_seconds() / 60:.1f} min" + (f" over {len(parts)} parts)" if len(parts) > 1 else ")")
    return out


def _plain(x: Any) -> Any:
    """Integral floats as integers (60.0 → 60), as people write them."""
    if isinstance(x, float) and x.is_integer() and abs(x) < 1e15:
        return int(x)
    if isinstance(x, Mapping):
        return {k: _plain(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_plain(v) for v in x]
    return x


#: Order of a recipe's top-level keys when it has to be rebuilt from run.json (the file is gone).
_RECIPE_HEAD = ("name", "description", "grade", "polymer", "solvent", "concentration_mg_ml", "support_pore_um")


def recipe_as_written(run_dir: Path, info: RunInfo) -> tuple[str, str]:
    """(text, where it came from): the recipe file as the operator wrote it.

    The copy the run took at its start (``RUN/recipe.yaml``), else the recorded model in the order
    recipes are written (name, description, grade…, steps last; each step's type first), without
    empty fields.
    """
    found = recipe_file_text(Path(run_dir))
    if found is not None:
        return found
    rec = info.recipe if isinstance(info.recipe, Mapping) else {}
    if not rec:
        return "(not recorded)", "run.json"

    def clean(d: Mapping[str, Any], first: Sequence[str]) -> dict[str, Any]:
        keys = [k for k in first if k in d] + [k for k in d if k not in first and k != "steps"] + (["steps"] if "steps" in d else [])
        return {k: d[k] for k in keys if d[k] is not None and d[k] != "" and d[k] != [] and d[k] != {}}

    out = clean(rec, _RECIPE_HEAD)
    if isinstance(out.get("steps"), list):
        out["steps"] = [clean(s, ("type", "label")) if isinstance(s, Mapping) else s for s in out["steps"]]
    text = yaml.safe_dump(_plain(out), sort_keys=False, allow_unicode=True, default_flow_style=None, width=110)
    return text, "rebuilt from run.json (the recipe file is gone): key order as recipes are written, empty fields left out"


def _file_name(path: Any) -> Any:
    """A path's last part: the report is mailed and served, and the folders it was made in (a
    user's home, the lab PC's layout) are none of its readers' business; the operator has the
    full path from the command line."""
    return str(path).replace("\\", "/").rstrip("/").rsplit("/", 1)[-1] if path else path


def report_data(run_dir: Path, image_url: Callable[[int], str] | None = None,
                data: RunData | None = None) -> dict[str, Any]:
    """What the page needs beyond the live API: problems, steps, gaps, bands, membranes, recipe."""
    data = data or load_run(Path(run_dir))
    an = analyse_images(data, image_url)
    info = data.info
    spans = step_spans(data)
    t_end = max(data.t_end_s, 1.0)
    recipe_text, recipe_source = recipe_as_written(data.run_dir, info)
    membranes = _membranes(data, an)
    other = None
    if not data.membranes:  # a run from before membranes: one block for the run
        other = _membrane_block("", data.results, data.results.get("verdict"), data.results.get("metrics"), an)
    else:
        loose = [m for m in an.micrographs if m["membrane_id"] not in {mb.membrane_id for mb in data.membranes}]
        # an analyse before the first cast (the bare support imaged first) is the run's own, under
        # no membrane: its metrics and verdict were left out, its micrographs shown alone
        own = run_results(data.results)
        if loose or own:
            other = {**_membrane_block("", own, own.get("verdict"), own.get("metrics"), an), "micrographs": loose}
    return {
        "version": 1,
        "run": {"run_id": info.run_id, "outcome": info.outcome, "outcome_reason": info.outcome_reason,
                "recipe_name": info.recipe_name, "recipe_path": _file_name(info.recipe_path), "profile_name": info.profile_name,
                "operator": info.operator, "started_utc": info.started_utc, "ended_utc": info.ended_utc,
                "virtual_time": bool(info.virtual_time), "seed": info.seed, "software_version": info.software_version,
                "wall_clock": _wall_clock(info), "parts": len(info.parts or []), "t_end_s": t_end,
                "run_folder": data.run_dir.name},
        "problems": problems(data, an.notes),
        "steps": [{"index": s.index, "label": s.label, "type": s.type, "t0_s": s.t0_s, "t1_s": s.t1_s, "cut": s.cut}
                  for s in spans],
        "gaps": _gaps(data),
        "bands": [{"t0_s": b.t0_s, "t1_s": b.t1_s, "lo": b.lo, "hi": b.hi} for b in rh_bands(spans, t_end)],
        "problem_kinds": sorted(PROBLEM_KINDS),
        "membranes": membranes,
        "other": other,
        "recipe_text": recipe_text,
        "recipe_source": recipe_source,
        # (redacted again: a run recorded before run.json kept no passwords still holds them)
        "profile_text": yaml.safe_dump(redact_urls(info.profile), sort_keys=False, allow_unicode=True) if info.profile else "(not recorded)",
    }


# -- the self-contained page -------------------------------------------------------------------------
#: Samples per channel kept in a saved page (an 8-hour run at 1 Hz is thinned evenly; the page zooms).
MAX_POINTS_PER_CHANNEL = 12_000


def _static(name: str) -> str:
    from importlib import resources

    return resources.files("castrig.report").joinpath("static", name).read_text(encoding="utf-8")


def _thin(rows: list[list[Any]], n: int) -> list[list[Any]]:
    if len(rows) <= n:
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)] + [rows[-1]]


def _drop_flat(rows: list[list[Any]]) -> list[list[Any]]:
    """Keep the first and last sample of each run of equal values: the same line, far fewer points
    (setpoints, pump volumes and flows hold still for hours)."""
    out = []
    for i, row in enumerate(rows):
        if 0 < i < len(rows) - 1 and rows[i - 1][1] == row[1] == rows[i + 1][1]:
            continue
        out.append(row)
    return out


def _round(v: Any) -> Any:
    if isinstance(v, float):
        return float(f"{v:.5g}") if math.isfinite(v) else None
    return v


def embedded_data(run_dir: Path) -> dict[str, Any]:
    """Everything the page reads from castrig serve's API, plus :func:`report_data`, as one JSON object."""
    from castrig.store import live as R

    run_dir = Path(run_dir)
    samples = R.samples(run_dir)
    samples["channels"] = {ch: _drop_flat([[round(t, 2), _round(v)] for t, v in _thin(rows, MAX_POINTS_PER_CHANNEL)])
                           for ch, rows in samples["channels"].items()}
    with R.open_ro(run_dir) as db:
        events = R.events(db, 0, limit=100_000)
    run = R.detail(run_dir, with_recipe=False)
    report = report_data(run_dir)
    run["recipe_as_written"] = report["recipe_text"]
    return {"samples": samples, "events": events, "run": run, "report": report}


#: How every page :func:`page_html` writes begins: what tells an earlier report from any other file.
PAGE_START = '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>castrig run '


def is_report(path: Path) -> bool:
    """Whether ``path`` is a regular file that an earlier ``castrig report`` wrote."""
    try:
        if not Path(path).is_file() or Path(path).is_symlink():
            return False
        with open(path, "rb") as fh:
            return fh.read(len(PAGE_START.encode())) == PAGE_START.encode()
    except OSError:
        return False


def _page_script() -> str:
    """The saved page's one inline script: live.js, with nothing in it that could end the element."""
    return _static("live.js").replace("</", "<\\/")


def _inline_policy() -> str:
    """The page's one script and one stylesheet by hash, its images inline, nothing else: the same
    policy whether the page is served or opened from disk (its meta tag)."""
    return (f"default-src 'none'; script-src {csp_hash(_page_script())}; style-src-elem {csp_hash(_static('live.css'))}; "
            "style-src-attr 'none'; img-src data:; base-uri 'none'; form-action 'none'")


def page_csp() -> str:
    """The Content-Security-Policy for serving a page :func:`page_html` wrote (and no framing)."""
    return _inline_policy() + "; frame-ancestors 'none'"


def page_html(run_dir: Path) -> str:
    """The run's page as one self-contained HTML document (no request leaves it)."""
    run_dir = Path(run_dir)
    data = jsontext.dumps(embedded_data(run_dir), separators=(",", ":"), ensure_ascii=False)
    data = data.replace("<", "\\u003c")  # no "</script>" or "<!--" from a file can end the data early
    uid = escape(jsontext.plain(run_dir.name), quote=True)  # (a folder name that is not UTF-8: U+FFFD)
    script = _page_script()
    return (f"{PAGE_START}{uid}</title>"
            '<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta http-equiv="Content-Security-Policy" content="{_inline_policy()}">'
            f"<style>{_static('live.css')}</style></head><body data-saved=\"1\">"
            f"<header>castrig · run {uid} · report</header><main><div id=\"run\" data-uid=\"{uid}\"></div></main>"
            f'<script type="application/json" id="castrig-data">{data}</script>'
            f"<script>{script}</script></body></html>\n")


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write the run's page, self-contained, to ``RUN_DIR/report.html`` (or ``out``) atomically; returns its path."""
    from castrig.errors import BadInput
    from castrig.atomic import atomic_write_bytes, remove_dead_temporaries

    from castrig.store import runjson
    from castrig.store.folders import refuse_never_started

    run_dir = Path(run_dir)
    refuse_never_started(run_dir)  # a folder whose making was cut short says so, as resume and export do
    if not runjson.present(run_dir):
        raise BadInput(f"{run_dir}: not a run folder (needs run.json and run.sqlite)", file=str(run_dir))
    path = Path(out) if out is not None else run_dir / REPORT_NAME
    remove_dead_temporaries(path.parent, path.name)  # a report killed mid-write left its temporary there
    atomic_write_bytes(path, page_html(run_dir).encode("utf-8"))
    return path
