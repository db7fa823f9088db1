"""A run at a glance: ``RUN_DIR/report.html``, one self-contained file (no network to view it).

It shows the outcome and what went wrong, the verdict per grade, the RH near the membrane
against its setpoint and band, room conditions, both MFC flows, pump volumes, a timeline of
steps and events, the micrographs with the segmentation drawn over them, the pore-size
histogram, the metrics, and the recipe and profile the run used. Everything is read back from
the run folder (run.json, run.sqlite, images, results, log.jsonl), so any run can be reported,
also a faulted or interrupted one, and on a machine without the rig.
"""

from __future__ import annotations

import json
from datetime import datetime
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from castrig.report import plots
from castrig.report.images import Micrograph, data_uri, section_overlay, surface_overlay, to_uint8
from castrig.report.plots import PALETTE, Band, Series, Span
from castrig.store.lock import CRASHED_REASON, live_outcome
from castrig.store.base import Event, ImageRecord, JournalEntry, MembraneRecord, RunInfo
from castrig.store.export import flatten, grade_passes, grade_status, verdict_rows
from castrig.store.sqlite_store import SqliteRunStore

REPORT_NAME = "report.html"


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
    return data


def _log_problems(path: Path, limit: int = 30) -> list[dict[str, Any]]:
    """Warnings and errors from the structured log (a torn last line is skipped)."""
    out: list[dict[str, Any]] = []
    if not path.is_file():
        return out
    for line in path.read_text(errors="replace").splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if str(rec.get("level", "")).lower() in ("warning", "error", "critical", "exception"):
            out.append(rec)
    return out[-limit:]


# -- steps and bands -----------------------------------------------------------------------------
@dataclass
class StepSpan:
    index: int
    type: str
    t0_s: float
    t1_s: float | None  # None: started, never finished
    step: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.index + 1} {self.step.get('label') or self.type}"  # step numbers are 1-based everywhere


def step_spans(data: RunData) -> list[StepSpan]:
    """Each step's last start and its end, from the journal (resumes restart a step)."""
    steps = list(data.info.recipe.get("steps", [])) if isinstance(data.info.recipe, Mapping) else []
    starts: dict[int, float] = {}
    ends: dict[int, float] = {}
    types: dict[int, str] = {}
    for j in data.journal:
        if j.state == "started":
            starts[j.step_index] = j.t_s
            ends.pop(j.step_index, None)
            types[j.step_index] = str(j.data.get("type", ""))
        elif j.state == "done":
            ends[j.step_index] = j.t_s
    out = []
    for i in sorted(starts):
        step = steps[i] if i < len(steps) and isinstance(steps[i], Mapping) else {}
        out.append(StepSpan(i, types[i] or str(step.get("type", "step")), starts[i], ends.get(i), dict(step)))
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
    for e in data.events:
        if e.kind in plots.PROBLEM_KINDS and e.kind != "run_end":
            out.append(f"{e.t_s:.1f} s — {e.kind} ({e.source}): {e.message}")
        if e.kind == "safe_state" and e.data.get("safe") is False:
            out.append(f"{e.t_s:.1f} s — the safe state was NOT verified: {e.message}")
    for mb in data.membranes:
        if mb.status == "lost":
            out.append(f"Membrane {mb.membrane_id} lost: {mb.lost_reason}")
        elif mb.status != "judged" and info.outcome == "completed":
            out.append(f"Membrane {mb.membrane_id} was not judged (status {mb.status}).")
        elif mb.status == "judged" and mb.target_grade and not mb.target_met:
            rows = [r for r in verdict_rows(mb.verdict or {}) if r["grade"] == mb.target_grade and r["pass"] is not True]
            what = "; ".join(f"{r['metric']} {_v(r['measured'])} (bound {r['bound']}, margin {_v(r['margin'])})"
                             if r["pass"] is False else f"{r['metric']} not measured (bound {r['bound']})" for r in rows)
            out.append(f"Membrane {mb.membrane_id}: grade {mb.target_grade} not met" + (f": {what}" if what else "."))
    verdict = data.results.get("verdict")
    if data.membranes:
        pass  # judged per membrane above
    elif verdict is not None:
        target = verdict.get("target_grade") if isinstance(verdict, Mapping) else None
        unmet = [g for g, met in grade_passes(verdict).items() if not met]
        others = [g for g in unmet if target and g != target]
        for grade in unmet:
            if grade not in others:
                rows = [r for r in verdict_rows(verdict) if r["grade"] == grade and r["pass"] is not True]
                what = "; ".join(
                    f"{r['metric']} {_v(r['measured'])} (bound {r['bound']}, margin {_v(r['margin'])})" if r["pass"] is False
                    else f"{r['metric']} not measured (bound {r['bound']})" for r in rows)
                out.append(f"Grade {grade} not met" + (f": {what}" if what else "."))
        if others:
            out.append(f"Also not met: {', '.join(others)} (see the verdict).")
    elif info.outcome == "completed":
        out.append("The run has no verdict (no analyse step, or it recorded none).")
    for rec in data.log_problems:
        out.append(f"log {rec.get('level')}: {rec.get('event')}" + (f" — {rec['error']}" if rec.get("error") else ""))
    out.extend(notes)
    return out


# -- micrographs -----------------------------------------------------------------------------------
@dataclass
class Analysed:
    micrographs: list[Micrograph]
    diameters_um: list[float]
    notes: list[str]


def _read_image(path: Path) -> np.ndarray:
    """A run's micrograph, with the same size check as every image castrig reads."""
    from castrig.tiffio import read_micrograph

    return np.asarray(read_micrograph(path)[0])


def _grey(a: np.ndarray) -> np.ndarray:
    return a.mean(axis=2) if a.ndim == 3 else a


def analyse_images(data: RunData) -> Analysed:
    """Load each micrograph, segment the surfaces (with their transmitted twins) and sections."""
    from castrig.analysis import analyse_section, analyse_surface

    loaded: dict[str, np.ndarray] = {}
    notes: list[str] = []
    for rec in data.images:
        try:
            loaded[rec.name] = _grey(_read_image(data.run_dir / rec.path))
        except Exception as exc:  # noqa: BLE001 - one unreadable image must not hide the others
            notes.append(f"image {rec.name} ({rec.path}) unreadable: {type(exc).__name__}: {exc}")
    groups: dict[tuple[Any, Any], dict[str, ImageRecord]] = defaultdict(dict)
    for rec in data.images:
        key = (rec.metadata.get("step"), rec.metadata.get("field", rec.name))
        groups[key][rec.illumination] = rec
    out: list[Micrograph] = []
    diameters: list[float] = []
    for rec in data.images:
        img = loaded.get(rec.name)
        if img is None:
            continue
        m = Micrograph(rec.name, rec.illumination, rec.pixel_size_um, rec.t_s, data_uri(to_uint8(img)))
        field_no = rec.metadata.get("field")
        where = f"field {field_no}" if field_no is not None else rec.name
        try:
            if rec.illumination == "reflected":
                partner = groups[(rec.metadata.get("step"), rec.metadata.get("field", rec.name))].get("transmitted")
                trans = loaded.get(partner.name) if partner is not None else None
                if trans is not None and trans.shape != img.shape:
                    trans = None
                s = analyse_surface(img, rec.pixel_size_um, trans, keep_labels=True)
                through = None
                if s.through is not None and len(s.measured_labels) == len(s.through):
                    through = np.asarray(s.measured_labels)[np.asarray(s.through, bool)]
                if s.labels is not None:
                    m.overlay_uri = data_uri(surface_overlay(img, s.labels, s.measured_labels, through))
                diameters += [float(d) for d in np.asarray(s.diameters_um)]
                m.metrics = {k: v for k, v in s.to_dict().items()}
                m.caption = (f"{where}, reflected: {s.pore_count} pores measured, {s.border_pore_count} cut by the border; "
                             f"D = {_v(s.mean_pore_diameter_um)} µm, opening ratio {_v(s.opening_ratio)}")
            elif rec.illumination == "section":
                from castrig.analysis import section as section_mod

                sec = analyse_section(img, rec.pixel_size_um)
                flipped = False
                try:  # the analysis turns a section with the support on top upside down
                    flipped = bool(section_mod._support_on_top(section_mod.as_float(img)))
                except Exception:  # noqa: BLE001 - only the drawing depends on it
                    pass
                if len(sec.top_row):
                    m.overlay_uri = data_uri(section_overlay(img, sec.top_row, sec.interface_row, flipped))
                m.metrics = sec.to_dict()
                m.caption = f"{where}, section: T = {_v(sec.mean_thickness_um)} µm, σt = {_v(sec.thickness_std_um)} µm"
            else:
                m.caption = f"{where}, {rec.illumination}"
        except Exception as exc:  # noqa: BLE001 - show the image even if its analysis fails
            notes.append(f"analysis of {rec.name} failed: {type(exc).__name__}: {exc}")
            m.caption = f"{where}, {rec.illumination} (analysis failed)"
        out.append(m)
    return Analysed(out, diameters, notes)


# -- the page --------------------------------------------------------------------------------------
def _v(x: Any) -> str:
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "—" if math.isnan(x) else f"{x:.4g}"
    return escape(str(x))


def _series(data: RunData, channel: str, label: str, colour: str, **kw: Any) -> list[Series]:
    if channel not in data.samples:
        return []
    t, v = data.samples[channel]
    return [Series(label, t.tolist(), v.tolist(), colour, **kw)]


def _plots(data: RunData, spans: list[StepSpan]) -> list[str]:
    t_end = max(data.t_end_s, 1.0)
    axes = plots.Axes(spans=[Span(s.t0_s, s.t1_s if s.t1_s is not None else t_end, s.label) for s in spans])
    rng = (0.0, t_end)
    out = []
    rh = (_series(data, "rh_near_pct", "RH near membrane", PALETTE["blue"])
          + _series(data, "rh_setpoint_pct", "setpoint", PALETTE["orange"], dashed=True, step=True)
          + _series(data, "chamber_rh_pct", "chamber RH", PALETTE["purple"]))
    out.append(plots.line_chart("rh", "RH near the membrane vs setpoint and band", "RH (%RH)", rh,
                                bands=rh_bands(spans, t_end), t_range_s=rng, axes=axes))
    room = (_series(data, "rh_room_pct", "room RH", PALETTE["blue"]))
    temps = (_series(data, "t_room_c", "room T", PALETTE["red"])
             + _series(data, "t_near_c", "T near membrane", PALETTE["brown"], dashed=True))
    out.append(plots.line_chart("room", "Room temperature and humidity", "RH (%RH)", room, y2_label="T (°C)",
                                series2=temps, t_range_s=rng, axes=axes))
    flows = (_series(data, "dry_flow_slpm", "dry air", PALETTE["orange"])
             + _series(data, "wet_flow_slpm", "wet air", PALETTE["blue"])
             + _series(data, "dry_setpoint_slpm", "dry setpoint", PALETTE["orange"], dashed=True, step=True)
             + _series(data, "wet_setpoint_slpm", "wet setpoint", PALETTE["blue"], dashed=True, step=True))
    out.append(plots.line_chart("flows", "Mass-flow controllers", "flow (slpm)", flows, t_range_s=rng, axes=axes))
    pumps = []
    colours = [PALETTE["green"], PALETTE["purple"], PALETTE["brown"], PALETTE["grey"]]
    for i, ch in enumerate(sorted(c for c in data.samples if c.endswith("_infused_ml"))):
        pumps += _series(data, ch, ch.removesuffix("_infused_ml").replace("_", " ") + " infused", colours[i % len(colours)])
    out.append(plots.line_chart("pumps", "Syringe pumps: volume infused", "volume (mL)", pumps, t_range_s=rng, axes=axes))
    return out


def _verdict_html(verdict: Any) -> str:
    if verdict is None:
        return '<p class="muted" id="no-verdict">No verdict recorded for this run.</p>'
    rows = verdict_rows(verdict)
    passes = grade_status(verdict)
    parts = []
    target = verdict.get("target_grade") if isinstance(verdict, Mapping) else None
    if target:
        met = passes.get(str(target)) == "pass"
        parts.append(f'<p id="target">Target grade of the recipe: <b>{escape(str(target))}</b> — '
                     f'{"met" if met else "<b>not met</b>"}.</p>')
    descriptions = {e.get("grade"): e.get("description") for e in (verdict.get("grades") or [])
                    if isinstance(e, Mapping)} if isinstance(verdict, Mapping) and isinstance(verdict.get("grades"), list) else {}
    for grade, status in passes.items():
        badge = {"pass": '<span class="badge pass">PASS</span>', "fail": '<span class="badge fail">FAIL</span>'}.get(
            status, '<span class="badge unknown">NOT MET: UNKNOWN</span>')
        desc = f' <span class="muted">{escape(str(descriptions[grade]))}</span>' if descriptions.get(grade) else ""
        heading = f'<h3 class="grade" data-grade="{escape(grade)}" data-status="{escape(status)}">{escape(grade)} {badge}{desc}</h3>'
        fold = bool(target) and grade != target  # the recipe's own grade open, the others folded
        parts.append(f"<details><summary>{heading}</summary>" if fold else heading)
        parts.append('<table class="verdict"><thead><tr><th>metric</th><th>bound</th><th>measured</th>'
                     '<th>margin</th><th>pass</th></tr></thead><tbody>')
        for r in rows:
            if r["grade"] != grade:
                continue
            cls = "pass" if r["pass"] else ("fail" if r["pass"] is False else "unknown")
            word = {"pass": "yes", "fail": "no", "unknown": "unknown"}[cls]
            parts.append(f'<tr class="{cls}"><td>{escape(str(r["metric"]))}</td><td>{escape(str(r["bound"]))}</td>'
                         f'<td class="num">{_v(r["measured"])}</td><td class="num">{_v(r["margin"])}</td>'
                         f'<td class="cell-{cls}">{word}</td></tr>')
        parts.append("</tbody></table>" + ("</details>" if fold else ""))
    if not passes:
        parts.append(f"<pre>{escape(json.dumps(verdict, indent=2, default=str))}</pre>")
    return "\n".join(parts)


def _metrics_html(results: Mapping[str, Any]) -> str:
    metrics = results.get("metrics")
    if not isinstance(metrics, Mapping):
        return '<p class="muted">No metrics recorded.</p>'
    truth = dict(flatten(results["truth"])) if isinstance(results.get("truth"), Mapping) else {}
    head = "<tr><th>metric</th><th>measured</th>" + ("<th>twin ground truth</th>" if truth else "") + "</tr>"
    body = []
    for name, value in flatten(metrics):
        body.append(f'<tr><td>{escape(name)}</td><td class="num">{_v(value)}</td>'
                    + (f'<td class="num">{_v(truth.get(name))}</td>' if truth else "") + "</tr>")
    return f'<table class="metrics"><thead>{head}</thead><tbody>{"".join(body)}</tbody></table>'


def _membranes_table_html(data: RunData) -> str:
    """One row per membrane of the run: what it is, where, how it was made, what it met, its lot."""
    if not data.membranes:
        return '<p class="muted">No membranes: the recipe has no cast step (or the run predates membranes).</p>'
    head = ("<tr><th>membrane</th><th>position</th><th>made on</th><th>status</th><th>target</th><th>grades met</th>"
            "<th>D µm</th><th>σd/D</th><th>opening</th><th>T µm</th><th>RH mean (min–max) %RH</th>"
            "<th>out of band s</th><th>lot</th></tr>")
    rows = []
    for mb in data.membranes:
        m, p = mb.metrics or {}, mb.process or {}
        d, sd = m.get("mean_pore_diameter_um"), m.get("pore_diameter_std_um")
        rh = (f"{_v(p.get('rh_mean_pct'))} ({_v(p.get('rh_min_pct'))}–{_v(p.get('rh_max_pct'))})"
              if p.get("rh_mean_pct") is not None else "—")
        target = "—" if not mb.target_grade else f"{escape(mb.target_grade)} {'met' if mb.target_met else 'NOT met'}"
        status = escape(mb.status) + (f": {escape(mb.lost_reason or '')}" if mb.status == "lost" else "")
        cls = "fail" if mb.status == "lost" or mb.target_met is False else ("pass" if mb.target_met else "")
        rows.append(f'<tr class="{cls}" data-membrane="{escape(mb.membrane_id)}" data-status="{escape(mb.status)}">'
                    f'<td><a href="#m-{escape(mb.membrane_id)}">{escape(mb.membrane_id)}</a></td>'
                    f'<td class="num">{_v(mb.support_position)}</td><td>{"twin (simulated)" if mb.simulated else "rig"}</td>'
                    f"<td>{status}</td><td>{target}</td><td>{escape(', '.join(mb.grades_met)) or '—'}</td>"
                    f'<td class="num">{_v(d)}</td><td class="num">{_v(sd / d if d and sd is not None else None)}</td>'
                    f'<td class="num">{_v(m.get("opening_ratio"))}</td><td class="num">{_v(m.get("mean_thickness_um"))}</td>'
                    f'<td class="num">{rh}</td><td class="num">{_v((p.get("evaporation") or {}).get("out_of_band_s"))}</td>'
                    f"<td>{escape(mb.lot_id or '—')}</td></tr>")
    return f'<table class="membranes" id="membranes-table"><thead>{head}</thead><tbody>{"".join(rows)}</tbody></table>'


def _membrane_sections_html(data: RunData, an: Analysed) -> str:
    """A section per membrane: its process record, verdict, metrics and micrographs."""
    by_image = {im.name: im.metadata.get("membrane_id") for im in data.images}
    parts = []
    for mb in data.membranes:
        res = data.membrane_results(mb.membrane_id)
        p = mb.process or {}
        disp = p.get("dispensed") or {}
        made = "; ".join(f"{k} {_v(v.get('volume_ml'))} mL at {_v(v.get('rate_ml_min'))} mL/min" for k, v in disp.items())
        ev = p.get("evaporation") or {}
        record = (f"<p>Support position {_v(mb.support_position)} · {'made on the digital twin (simulated)' if mb.simulated else 'made on the rig'}"
                  f" · t = {_v(mb.t_start_s)}–{_v(mb.t_end_s)} s · {escape(made) or 'nothing dispensed recorded'}"
                  + (f" · evaporation at {_v(ev.get('setpoint_rh_pct'))} ± {_v(ev.get('band_rh_pct'))} %RH, "
                     f"{_v(ev.get('out_of_band_s'))} s out of band" if ev else "")
                  + (f" · RH {_v(p.get('rh_mean_pct'))} %RH mean, {_v(p.get('rh_min_pct'))}–{_v(p.get('rh_max_pct'))}"
                     if p.get("rh_mean_pct") is not None else "") + "</p>")
        if mb.status == "lost":
            body = f'<p class="problems">Lost: {escape(mb.lost_reason or "")}</p>'
        else:
            mine = Analysed([m for m in an.micrographs if by_image.get(m.name) == mb.membrane_id], [], [])
            body = (f"<h4>Verdict</h4>{_verdict_html(res.get('verdict') or mb.verdict)}"
                    f"<h4>Metrics</h4>{_metrics_html(res if res.get('metrics') else {'metrics': mb.metrics})}"
                    f"<h4>Micrographs</h4>{_micrographs_html(mine)}")
        parts.append(f'<section class="membrane" id="m-{escape(mb.membrane_id)}" data-status="{escape(mb.status)}">'
                     f"<h3>Membrane {escape(mb.membrane_id)} — {escape(mb.status)}</h3>{record}{body}</section>")
    return "\n".join(parts)


def _clock_html(info: RunInfo) -> str:
    """Wall-clock span of the whole run (every part), and the gaps between parts."""
    parts = list(info.parts or [])
    try:
        t0 = datetime.fromisoformat(info.started_utc.replace("Z", "+00:00"))
        t1 = datetime.fromisoformat((info.ended_utc or "").replace("Z", "+00:00")) if info.ended_utc else None
    except ValueError:
        return ""
    out = f"wall clock {escape(info.started_utc)} → {escape(info.ended_utc or 'not ended')}"
    if t1 is not None:
        out += f" ({(t1 - t0).total_seconds() / 60:.1f} min"
        out += f" over {len(parts)} parts)" if len(parts) > 1 else ")"
    return out


def _gap_steps(data: RunData) -> list[tuple[float, float | None, str, str]]:
    """Each crash → resume gap as a row of the timeline, at the run time where it happened."""
    out = []
    for e in data.events:
        if e.kind == "resume" and e.source == "runner" and e.data.get("gap_at_t_s") is not None:
            gap = e.data.get("gap_s")
            words = f"gap: stopped, resumed {gap / 60:.1f} min later (wall clock)" if gap is not None else "gap: stopped, resumed"
            out.append((float(e.data["gap_at_t_s"]), float(e.data["gap_at_t_s"]), words, "gap"))
    return out


def _events_html(events: Sequence[Event]) -> str:
    rows = []
    for e in events:
        cls = ' class="problem"' if e.kind in plots.PROBLEM_KINDS else ""
        rows.append(f"<tr{cls}><td class=\"num\">{e.t_s:.1f}</td><td>{escape(e.kind)}</td><td>{escape(e.source)}</td>"
                    f"<td>{escape(e.message)}</td></tr>")
    return ('<table class="events"><thead><tr><th>t (s)</th><th>kind</th><th>source</th><th>message</th></tr></thead>'
            f"<tbody>{''.join(rows)}</tbody></table>")


def _micrographs_html(an: Analysed) -> str:
    if not an.micrographs:
        return '<p class="muted">No micrographs in this run.</p>'
    cards = []
    for m in an.micrographs:
        img = m.overlay_uri or m.uri
        alt = "segmentation overlay" if m.overlay_uri else "micrograph"
        raw = (f'<details><summary>without overlay</summary><img src="{m.uri}" alt="{escape(m.name)}"></details>'
               if m.overlay_uri else "")
        cards.append(f'<figure class="micrograph" data-illumination="{escape(m.illumination)}">'
                     f'<img class="{"overlay" if m.overlay_uri else "raw"}" src="{img}" alt="{escape(m.name)} {alt}">'
                     f'<figcaption><b>{escape(m.name)}</b> · {m.pixel_size_um:g} µm/px · t = {m.t_s:.0f} s<br>'
                     f'{escape(m.caption)}</figcaption>{raw}</figure>')
    legend = ('<p class="muted">Outlines: <span style="color:#00c853">■</span> measured pore, '
              '<span style="color:#ff9100">■</span> cut by the border (opening ratio only), '
              '<span style="color:#00b8ff">■</span> through-pore; sections: '
              '<span style="color:#ff4081">■</span> upper envelope, <span style="color:#00b8ff">■</span> support interface.</p>')
    return legend + '<div class="gallery">' + "".join(cards) + "</div>"


_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:0;color:#1d2330;background:#fff}
header{padding:18px 28px;background:#1d2330;color:#fff}
header h1{margin:0 0 4px;font-size:22px} header .meta{opacity:.85;font-size:13px}
main{padding:8px 28px 40px;max-width:1400px}
h2{border-bottom:2px solid #e3e7ef;padding-bottom:4px;margin-top:28px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:700;font-size:13px;vertical-align:middle}
.outcome{display:inline-block;padding:3px 12px;border-radius:12px;font-weight:700;background:#c5221f;color:#fff}
.badge.pass,.outcome.outcome-completed{background:#1e8e3e;color:#fff}.badge.fail{background:#c5221f;color:#fff}
.badge.unknown{background:#e37400;color:#fff}tr.unknown td{background:#fff4e5}
table{border-collapse:collapse;margin:6px 0 14px}th,td{border:1px solid #d7dce6;padding:3px 9px;text-align:left;vertical-align:top}
th{background:#f1f3f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr.pass td.cell-pass{background:#ccebd5;font-weight:700}tr.fail td{background:#fde2e0}tr.fail td.cell-fail{font-weight:700;color:#a50e0e}
tr.problem td{background:#fde2e0}
.problems{background:#fff4e5;border-left:5px solid #e37400;padding:8px 16px}.ok{background:#e6f4ea;border-left:5px solid #1e8e3e;padding:8px 16px}
.muted{color:#5f6b7a}
svg.plot{display:block;margin:10px 0;max-width:100%;height:auto;font-family:inherit}
svg .ptitle{font-size:14px;font-weight:600}svg .tick{font-size:11px;fill:#4a5568}svg .alabel{font-size:12px;fill:#2d3748}
svg .legend{font-size:12px;fill:#2d3748}svg .span{font-size:10px;fill:#8a94a6;text-anchor:middle}
svg .grid{stroke:#e5e8ef}svg .axis{stroke:#4a5568}svg .frame{fill:none;stroke:#9aa3b2}
.gallery{display:flex;flex-wrap:wrap;gap:14px}.micrograph{margin:0;width:330px}.micrograph img{width:330px;image-rendering:auto;border:1px solid #ccc}
figcaption{font-size:12px;color:#3a4556}
.cols{display:flex;gap:24px;flex-wrap:wrap}.cols>div{flex:1;min-width:360px}
summary h3{display:inline-block;margin:6px 0}
pre{background:#f6f8fb;border:1px solid #e3e7ef;padding:8px;font-size:12px;overflow:auto;max-height:420px}
"""


def render_html(data: RunData, an: Analysed) -> str:
    info = data.info
    spans = step_spans(data)
    t_end = max(data.t_end_s, 1.0)
    probs = problems(data, an.notes)
    verdict = data.results.get("verdict")
    if data.membranes:
        judged = [mb for mb in data.membranes if mb.status == "judged"]
        truths = [data.membrane_results(mb.membrane_id).get("truth") for mb in judged]
        truth_d = [t.get("mean_pore_diameter_um") for t in truths if isinstance(t, Mapping) and t.get("mean_pore_diameter_um")]
    outcome_cls = "outcome outcome-completed" if info.outcome == "completed" else "outcome"
    meta = (f"recipe <b>{escape(info.recipe_name)}</b> ({escape(info.recipe_path)}) · profile <b>{escape(info.profile_name)}</b>"
            f" · operator {escape(info.operator or '—')} · started {escape(info.started_utc)} · ended {escape(info.ended_utc or '—')}"
            f" · run clock {'virtual' if info.virtual_time else 'wall'} ({_v(round(t_end))} s) · {_clock_html(info)}"
            f" · seed {_v(info.seed)} · castrig {escape(info.software_version)}")
    wrong = ('<div class="problems" id="problems"><ul>' + "".join(f"<li>{escape(p)}</li>" for p in probs) + "</ul></div>"
             if probs else '<div class="ok" id="problems">Nothing went wrong: the run completed and every grade judged was met.</div>')
    marks = [(e.t_s, e.kind, e.message) for e in data.events]
    steps = [(s.t0_s, s.t1_s, f"{s.label}", "done" if s.t1_s is not None else "open") for s in spans]
    steps = sorted(steps + _gap_steps(data), key=lambda s: s[0])
    truth_mean = (data.results.get("truth") or {}).get("mean_pore_diameter_um") if isinstance(data.results.get("truth"), Mapping) else None
    if data.membranes and truth_d:
        truth_mean = float(np.mean(truth_d))
    dm = float(np.mean(an.diameters_um)) if an.diameters_um else float("nan")
    marks_h = [(dm, f"mean {dm:.3g} µm")] + ([(float(truth_mean), f"truth {float(truth_mean):.3g} µm")] if truth_mean else [])
    hist = plots.histogram("pores", f"Pore-size distribution ({len(an.diameters_um)} pores, all fields)",
                           "equivalent-circle diameter (µm)", an.diameters_um, marks=marks_h)
    recipe_yaml = yaml.safe_dump(info.recipe, sort_keys=False, allow_unicode=True) if info.recipe else "(not recorded)"
    profile_yaml = yaml.safe_dump(info.profile, sort_keys=False, allow_unicode=True) if info.profile else "(not recorded)"
    if data.membranes:
        membranes_html = (f'<h2>Membranes</h2><div id="membranes">{_membranes_table_html(data)}</div>'
                          f'<h2>Verdict, per membrane</h2><div id="verdict">{_membrane_sections_html(data, an)}</div>')
        micrographs_html = metrics_html = ""  # in each membrane's section
    else:
        membranes_html = f'<h2>Verdict</h2><div id="verdict">{_verdict_html(verdict)}</div>'
        micrographs_html = f"<h2>Micrographs</h2>{_micrographs_html(an)}"
        metrics_html = f"<h2>Metrics</h2>{_metrics_html(data.results)}"
    body = f"""<header><h1>Run {escape(info.run_id)} <span class="{outcome_cls}" id="outcome">{escape(info.outcome)}</span></h1>
<div class="meta">{meta}</div></header>
<main>
<h2>What went wrong</h2>{wrong}
{membranes_html}
<h2>Conditions</h2>{''.join(_plots(data, spans))}
<h2>Timeline</h2>{plots.timeline("timeline", steps, marks, t_end)}
<details><summary>{len(data.events)} events</summary>{_events_html(data.events)}</details>
{micrographs_html}
<h2>Pore sizes</h2>{hist}
{metrics_html}
<h2>Recipe and profile</h2><div class="cols"><div><h3>recipe</h3><pre>{escape(recipe_yaml)}</pre></div>
<div><h3>profile</h3><pre>{escape(profile_yaml)}</pre></div></div>
<p class="muted">Run folder {escape(str(data.run_dir.resolve()))}</p>
</main>"""
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f'<meta name="generator" content="castrig {escape(info.software_version)}">'
            f"<title>castrig run {escape(info.run_id)} — {escape(info.outcome)}</title><style>{_CSS}</style></head>"
            f"<body>{body}</body></html>\n")


def build_report(run_dir: Path, out: Path | None = None) -> Path:
    """Write ``RUN_DIR/report.html`` (or ``out``) atomically; returns its path."""
    from castrig.store.atomic import atomic_write_bytes

    run_dir = Path(run_dir)
    data = load_run(run_dir)
    an = analyse_images(data)
    path = Path(out) if out is not None else run_dir / REPORT_NAME
    atomic_write_bytes(path, render_html(data, an).encode("utf-8"))
    return path
