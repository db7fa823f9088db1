"""The process-window map on a grid: points, their aggregation over seeds, and the drawing.

A map is a set of grid points (RH × concentration, optionally × cast volume; each with one or more
twin seeds). Its trials live in an Optuna study (see :mod:`castrig.explore.distributed`); this
module says which points a grid holds, which of them a study still lacks (so a map grows and
resumes instead of recomputing), and draws the result: heat maps of D and σd/D, and the pass
region of every grade (a cell passes when every seed's membrane met the grade; its shade says
how many did), one row of panels per cast volume. Inline SVG, like :mod:`castrig.explore.plots`.

The membranes a real rig made (:func:`real_membranes`: judged membranes in the store under the
data root whose run was not on the twin) are drawn over the panels as circles: on a grade's
pass region filled when the membrane met that grade, hollow when it did not; on D and σd/D
filled with its measured value's colour. Simulated membranes are never drawn as real.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from html import escape
from pathlib import Path
from typing import Any

from castrig.errors import BadInput
from castrig.explore.plots import _colour
from castrig.atomic import atomic_write_bytes

GRADES = ("claim1", "claim2", "claim3", "claim4")


#: Values one range may give, and runs (points × seeds) one map may ask for.
MAX_RANGE_VALUES = 200
MAX_MAP_RUNS = 5_000

RANGE_FORM = "START:STOP:STEP (finite numbers, START <= STOP, STEP > 0) or one number"


def parse_range(text: str, flag: str) -> list[float]:
    """``START:STOP:STEP`` (inclusive of STOP when the steps land on it) or a single number → the values.

    Non-finite parts, a STEP <= 0, START > STOP and more than :data:`MAX_RANGE_VALUES` values are
    a :class:`BadInput` naming the option and the allowed form.
    """
    parts = text.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise BadInput(f"{flag} {text!r}: not numbers (allowed: {RANGE_FORM})", field=flag) from None
    if len(nums) not in (1, 3):
        raise BadInput(f"{flag} {text!r}: {len(nums)} parts (allowed: {RANGE_FORM})", field=flag)
    bad = [p for p, x in zip(parts, nums) if not math.isfinite(x)]
    if bad:
        raise BadInput(f"{flag} {text!r}: {bad[0].strip()} is not a finite number (allowed: {RANGE_FORM})", field=flag)
    if len(nums) == 1:
        return nums
    a, b, step = nums
    if step <= 0:
        raise BadInput(f"{flag} {text!r}: STEP {step:g} is not above 0 (allowed: {RANGE_FORM})", field=flag)
    if a > b:
        raise BadInput(f"{flag} {text!r}: START {a:g} is above STOP {b:g} (allowed: {RANGE_FORM})", field=flag)
    n = (b - a) / step + 1e-9
    if n >= MAX_RANGE_VALUES:  # (checked before counting: a tiny STEP must not build a huge list)
        raise BadInput(f"{flag} {text!r}: more than {MAX_RANGE_VALUES} values (allowed: up to {MAX_RANGE_VALUES}; use a larger "
                       "STEP)", field=flag)
    return [round(a + i * step, 6) for i in range(int(math.floor(n)) + 1)]


def check_map_size(grid: "Grid") -> None:
    """At most :data:`MAX_MAP_RUNS` runs (grid points × seeds) in one map."""
    runs = len(grid.rh) * len(grid.concentration) * len(grid.volume) * len(grid.seeds)
    if runs > MAX_MAP_RUNS:
        raise BadInput(f"the map asks for {runs} runs ({len(grid.rh)} RH × {len(grid.concentration)} concentrations × "
                       f"{len(grid.volume)} volumes × {len(grid.seeds)} seeds; allowed: up to {MAX_MAP_RUNS}): use larger "
                       "steps, and grow the map later (a map only runs the points it lacks)", field="--rh")


def finite_point(point: dict[str, Any]) -> bool:
    """Every parameter of a grid point is a finite number (a folder written by an older castrig may hold NaN)."""
    try:
        return all(math.isfinite(float(v)) for v in point.values())
    except (TypeError, ValueError):
        return False


def point_key(p: dict[str, float], seed: int) -> tuple[float, ...]:
    return (round(p["rh_pct"], 4), round(p["concentration_mg_ml"], 4), round(p["cast_volume_ml"], 5),
            round(p["total_flow_slpm"], 4), int(seed))


@dataclass
class Grid:
    rh: list[float]
    concentration: list[float]
    volume: list[float]
    flow_slpm: float
    seeds: list[int]

    def points(self) -> list[tuple[dict[str, float], int, list[int]]]:
        """(point, seed, [i, j, k]) for every cell and seed."""
        out = []
        for k, v in enumerate(self.volume):
            for i, rh in enumerate(self.rh):
                for j, c in enumerate(self.concentration):
                    for s in self.seeds:
                        out.append(({"rh_pct": rh, "concentration_mg_ml": c, "cast_volume_ml": v, "total_flow_slpm": self.flow_slpm},
                                    s, [i, j, k]))
        return out

    def asked_and_done(self, results: list[dict[str, Any]]) -> tuple[int, int]:
        """(points × seeds this grid asks for, how many of them ``results`` already hold)."""
        asked = {point_key(p, s) for p, s, _ in self.points()}
        return len(asked), len(asked & {point_key(r["point"], r["seed"]) for r in results})

    def to_dict(self) -> dict[str, Any]:
        return {"rh": self.rh, "concentration": self.concentration, "volume": self.volume, "flow_slpm": self.flow_slpm,
                "seeds": self.seeds}


@dataclass
class Cell:
    rh: float
    c: float
    v: float
    d: list[float] = field(default_factory=list)
    cv: list[float] = field(default_factory=list)
    met: dict[str, int] = field(default_factory=dict)
    n: int = 0

    def mean(self, xs: list[float]) -> float | None:
        return sum(xs) / len(xs) if xs else None


def cells(results: list[dict[str, Any]]) -> dict[tuple[float, float, float], Cell]:
    """Results (``{"point", "seed", "outcome"}``) → cells, each counted once per (point, seed)."""
    seen: set[tuple[float, ...]] = set()
    out: dict[tuple[float, float, float], Cell] = {}
    for r in results:
        p, o = r["point"], r["outcome"]
        key = point_key(p, r["seed"])
        if key in seen:
            continue
        seen.add(key)
        ck = key[:3]
        cell = out.setdefault(ck, Cell(*ck))
        cell.n += 1
        d, s = o["metrics"].get("mean_pore_diameter_um"), o["metrics"].get("pore_diameter_std_um")
        if d:
            cell.d.append(d)
            if s is not None:
                cell.cv.append(s / d)
        for g in o.get("grades_met", []):
            cell.met[g] = cell.met.get(g, 0) + 1
    return out


def _axis_pos(vals: list[float], x: float) -> float | None:
    """``x`` as a fractional cell index on a sorted axis (cell centres at 0, 1, ...), None when it
    lies more than half a cell outside (a one-value axis: within 0.5 of that value)."""
    if not vals:
        return None
    if len(vals) == 1:
        return 0.0 if abs(x - vals[0]) <= 0.5 else None
    if x < vals[0]:
        f = (x - vals[0]) / (vals[1] - vals[0])
    elif x > vals[-1]:
        f = len(vals) - 1 + (x - vals[-1]) / (vals[-1] - vals[-2])
    else:
        i = max(k for k in range(len(vals)) if vals[k] <= x)
        f = float(i) if i == len(vals) - 1 else i + (x - vals[i]) / (vals[i + 1] - vals[i])
    return f if -0.5 <= f <= len(vals) - 0.5 else None


@dataclass
class Mark:
    """A point drawn over a panel: a real rig's membrane (``fill`` None: hollow)."""

    rh: float
    c: float
    fill: str | None
    tip: str


def _heat(title: str, rhs: list[float], cs: list[float], value, *, legend: tuple[float, float] | None, fmt: str = ".3g",  # type: ignore[no-untyped-def]
          marks: list[Mark] = ()) -> str:  # type: ignore[assignment]
    W, H, L, R, T, B = 430, 330, 58, 82, 30, 46
    pw, ph = W - L - R, H - T - B
    nx, ny = len(rhs), len(cs)
    cw, ch = pw / max(nx, 1), ph / max(ny, 1)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<text x="{L}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="#eee" stroke="#999"/>']
    for i, rh in enumerate(rhs):
        for j, c in enumerate(cs):
            fill, tip = value(rh, c)
            x, y = L + i * cw, T + ph - (j + 1) * ch
            out.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cw + 0.3:.1f}" height="{ch + 0.3:.1f}" fill="{fill}">'
                       f'<title>{escape(f"RH {rh:g} %, c {c:g} mg/mL: {tip}")}</title></rect>')
    for m in marks:
        fi, fj = _axis_pos(rhs, m.rh), _axis_pos(cs, m.c)
        if fi is None or fj is None:
            continue
        x, y = L + (fi + 0.5) * cw, T + ph - (fj + 0.5) * ch
        fill = "none" if m.fill is None else m.fill
        out.append(f'<circle class="real" cx="{x:.1f}" cy="{y:.1f}" r="5.5" fill="{fill}" stroke="#000" stroke-width="1.6">'
                   f'<title>{escape(m.tip)}</title></circle>')
    step = max(1, nx // 6)
    for i in range(0, nx, step):
        out.append(f'<text x="{L + (i + 0.5) * cw:.1f}" y="{T + ph + 16}" text-anchor="middle">{rhs[i]:g}</text>')
    step = max(1, ny // 8)
    for j in range(0, ny, step):
        out.append(f'<text x="{L - 6}" y="{T + ph - (j + 0.5) * ch + 4:.1f}" text-anchor="end">{cs[j]:g}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 8}" text-anchor="middle">RH setpoint (%)</text>'
               f'<text transform="translate(14,{T + ph / 2}) rotate(-90)" text-anchor="middle">concentration (mg/mL)</text>')
    cx = L + pw + 14
    if legend is not None:
        vmin, vmax = legend
        for i in range(40):
            out.append(f'<rect x="{cx}" y="{T + ph - (i + 1) * ph / 40:.1f}" width="12" height="{ph / 40 + 0.5:.1f}" fill="{_colour(i / 39)}"/>')
        out.append(f'<text x="{cx + 15}" y="{T + ph}">{vmin:{fmt}}</text><text x="{cx + 15}" y="{T + 10}">{vmax:{fmt}}</text>')
    else:
        for i, (lab, col) in enumerate((("pass", "#2ca02c"), ("some seeds", "#b8e186"), ("fail", "#d62728"),
                                        ("not run", "#eeeeee"))):
            out.append(f'<rect x="{cx}" y="{T + 4 + 18 * i}" width="10" height="10" fill="{col}" stroke="#333"/>'
                       f'<text x="{cx + 13}" y="{T + 13 + 18 * i}" font-size="10">{lab}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclass
class RealMembrane:
    """A judged membrane a real rig made (never one made on the twin), where it sits on the map."""

    run_id: str
    membrane_id: str
    rh_pct: float  # the evaporation setpoint (the maps' RH axis)
    concentration_mg_ml: float
    cast_volume_ml: float | None
    grades_met: list[str]
    d_um: float | None = None
    cv: float | None = None
    rh_measured_pct: float | None = None  # mean RH near the membrane, pre-wet to the end of evaporation

    def tip(self) -> str:
        meas = "" if self.rh_measured_pct is None else f" (measured {self.rh_measured_pct:.1f} %)"
        vol = "" if self.cast_volume_ml is None else f", V {self.cast_volume_ml:g} mL"
        d = "" if self.d_um is None else f"; D {self.d_um:.2f} µm" + ("" if self.cv is None else f", σd/D {self.cv:.3f}")
        return (f"real rig membrane {self.membrane_id}: RH {self.rh_pct:g} %{meas}, c {self.concentration_mg_ml:g} mg/mL{vol}{d}; "
                f"grades met: {', '.join(self.grades_met) or 'none'}")


def _evaporate_after(steps: list[dict[str, Any]], i: int) -> dict[str, Any] | None:
    return next((s for s in steps[max(i, 0):] if isinstance(s, dict) and s.get("type") == "evaporate"), None)


def real_membranes(root: str | Path | None) -> list[RealMembrane]:
    """The judged membranes a real rig made, from the run folders under the data root.

    Read from each folder itself (:func:`~castrig.store.sqlite_store.open_run_folder`, read-only
    until a write; neither catalog is touched: a fleet store's recorder would push each run's row). A run on virtual time, and every membrane marked
    ``simulated``, was made on the twin and is left out; so are runs recorded before membranes
    (they cannot say whether they were simulated per membrane) unless their run.json says real
    (no virtual time, no twin seed). RH is the membrane's evaporation setpoint (its process
    record, else the recipe's evaporate step after its cast); concentration the recipe's.
    """
    from castrig.errors import BadInput as _Bad
    from castrig.store import live
    from castrig.store.sqlite_store import open_run_folder

    if root is None or not Path(root).is_dir():
        return []
    out: list[RealMembrane] = []
    for run_dir in live.run_dirs(Path(root)):
        try:
            rec = open_run_folder(run_dir)  # read only (not a fleet recorder)
        except (_Bad, OSError, ValueError):
            continue  # damaged or being created: `castrig runs` shows it
        try:
            info = rec.info
            if info.virtual_time:
                continue
            recipe = info.recipe or {}
            steps = list(recipe.get("steps") or [])
            conc = float(recipe.get("concentration_mg_ml", 5.0))
            try:
                mbs = rec.membranes()
            except Exception:  # noqa: BLE001 - an older record without the table
                mbs = []
            if not mbs and info.seed is None:  # a run recorded before membranes: the run is the membrane
                from castrig.store.base import latest_results

                res = latest_results(rec)
                verdict, metrics = res.get("verdict"), res.get("metrics") or {}
                cast = next((k for k, st in enumerate(steps) if isinstance(st, dict) and st.get("type") == "cast"), None)
                evap = _evaporate_after(steps, cast or 0)
                if isinstance(verdict, dict) and cast is not None and evap is not None:
                    d = metrics.get("mean_pore_diameter_um")
                    sd = metrics.get("pore_diameter_std_um")
                    out.append(RealMembrane(info.run_id, info.run_id, float(evap["setpoint_rh_pct"]), conc,
                                            steps[cast].get("volume_ml"), list(verdict.get("grades_met") or []), d,
                                            sd / d if d and sd is not None else None))
                continue
            for mb in mbs:
                if mb.simulated or mb.status != "judged":
                    continue
                proc = mb.process or {}
                sp = (proc.get("evaporation") or {}).get("setpoint_rh_pct")
                if sp is None:
                    evap = _evaporate_after(steps, mb.cast_step)
                    sp = None if evap is None else evap.get("setpoint_rh_pct")
                if sp is None:
                    continue
                cast = steps[mb.cast_step] if 0 <= mb.cast_step < len(steps) and isinstance(steps[mb.cast_step], dict) else {}
                m = mb.metrics or {}
                d, sd = m.get("mean_pore_diameter_um"), m.get("pore_diameter_std_um")
                out.append(RealMembrane(info.run_id, mb.membrane_id, float(sp), conc, cast.get("volume_ml"), list(mb.grades_met),
                                        d, sd / d if d and sd is not None else None, proc.get("rh_mean_pct")))
        finally:
            rec.close()
    return out


def map_body(grid: Grid, results: list[dict[str, Any]], *, note: str = "", real: list[RealMembrane] | None = None) -> str:
    """The map's summary line, panels (one row per volume) and legend: an HTML fragment (for
    ``map.html`` and for ``castrig serve``'s explore page)."""
    cs_all = cells(results)
    real = list(real or [])
    rhs = sorted({k[0] for k in cs_all} | set(grid.rh))
    concs = sorted({k[1] for k in cs_all} | set(grid.concentration))
    vols = sorted({k[2] for k in cs_all} | set(grid.volume))
    ds = [x for cell in cs_all.values() if (x := cell.mean(cell.d)) is not None]
    cvs = [x for cell in cs_all.values() if (x := cell.mean(cell.cv)) is not None]
    # D spans decades across a window: coloured on a log scale (the legend shows µm).
    ds = [math.log10(x) for x in ds if x > 0]
    d_rng = (min(ds), max(ds) if max(ds) > min(ds) else min(ds) + 1e-9) if ds else (0.0, 1.0)
    cv_rng = (min(cvs), max(cvs) if max(cvs) > min(cvs) else min(cvs) + 1e-9) if cvs else (0.0, 1.0)

    def clip(f: float) -> float:
        return min(1.0, max(0.0, f))

    # Each real membrane goes on the row of the nearest cast volume (its own volume is in the tip).
    by_vol: dict[float, list[RealMembrane]] = {v: [] for v in vols}
    for r in real if vols else []:
        v = vols[0] if r.cast_volume_ml is None else min(vols, key=lambda x: abs(x - r.cast_volume_ml))  # type: ignore[operator]
        by_vol[v].append(r)
    shown = sum(1 for r in real if vols and _axis_pos(rhs, r.rh_pct) is not None and _axis_pos(concs, r.concentration_mg_ml) is not None)
    rows = []
    for v in vols:
        def get(rh: float, c: float, v: float = v) -> Cell | None:
            return cs_all.get((round(rh, 4), round(c, 4), round(v, 5)))

        def scale(x: float | None, rng: tuple[float, float]) -> str:
            return "#eeeeee" if x is None else _colour((x - rng[0]) / (rng[1] - rng[0]))

        def d_val(rh: float, c: float) -> tuple[str, str]:
            cell = get(rh, c)
            x = None if cell is None else cell.mean(cell.d)
            colour = scale(math.log10(x) if x else None, d_rng)
            return colour, "not run" if cell is None else (f"D {x:.2f} µm ({cell.n} seeds)" if x else "no pores")

        def cv_val(rh: float, c: float) -> tuple[str, str]:
            cell = get(rh, c)
            x = None if cell is None else cell.mean(cell.cv)
            return scale(x, cv_rng), "not run" if cell is None else (f"σd/D {x:.3f}" if x is not None else "no pores")

        here = by_vol[v]
        d_marks = [Mark(r.rh_pct, r.concentration_mg_ml,
                        None if not r.d_um else _colour(clip((math.log10(r.d_um) - d_rng[0]) / (d_rng[1] - d_rng[0]))), r.tip())
                   for r in here]
        cv_marks = [Mark(r.rh_pct, r.concentration_mg_ml,
                         None if r.cv is None else _colour(clip((r.cv - cv_rng[0]) / (cv_rng[1] - cv_rng[0]))), r.tip()) for r in here]
        panels = [_heat(f"D (µm, log colour scale), V {v:g} mL", rhs, concs, d_val, legend=(10 ** d_rng[0], 10 ** d_rng[1]),
                        fmt=".2f", marks=d_marks),
                  _heat(f"σd/D, V {v:g} mL", rhs, concs, cv_val, legend=cv_rng, marks=cv_marks)]
        for g in GRADES:
            def pf(rh: float, c: float, g: str = g) -> tuple[str, str]:
                cell = get(rh, c)
                if cell is None:
                    return "#eeeeee", "not run"
                k = cell.met.get(g, 0)
                col = "#2ca02c" if k == cell.n else ("#b8e186" if k else "#d62728")
                return col, f"{g} met by {k} of {cell.n} seeds"
            g_marks = [Mark(r.rh_pct, r.concentration_mg_ml, "#000" if g in r.grades_met else None,
                            r.tip() + f" — {g} {'met' if g in r.grades_met else 'NOT met'}") for r in here]
            panels.append(_heat(f"{g} pass region, V {v:g} mL", rhs, concs, pf, legend=None, marks=g_marks))
        rows.append(f"<div class='maps'>{''.join(panels)}</div>")
    n = sum(c.n for c in cs_all.values())
    if real:
        dot = ('<svg width="14" height="14"><circle cx="7" cy="7" r="5" fill="{}" stroke="#000" '
               'stroke-width="1.6"/></svg>')
        outside = len(real) - shown
        legend = (f"<p class='real-legend'>{dot.format('#000')} / {dot.format('none')} a membrane a real rig made "
                  f"({len(real)} in the store, {shown} drawn" + (f", {outside} outside this grid" if outside else "") + "): "
                  "on a pass region filled when it met that grade, hollow when not; on D and σd/D filled with its measured "
                  "value (hollow: no pores measured). Placed at its evaporation RH setpoint and concentration, on the row of "
                  "the nearest cast volume; hover for the run. Twin runs are never drawn here.</p>")
    else:
        legend = "<p class='real-legend'>No membrane from a real rig in the store: only the twin's map is drawn.</p>"
    return (f"<p class='map-summary'>{n} runs on {len(cs_all)} grid cells "
            f"(RH {len(rhs)} × concentration {len(concs)} × volume {len(vols)}; seeds {', '.join(map(str, grid.seeds))}; "
            f"total flow {grid.flow_slpm:g} slpm). {escape(note)}</p>{legend}{''.join(rows)}")


def map_html(grid: Grid, results: list[dict[str, Any]], *, title: str, note: str = "", real: list[RealMembrane] | None = None) -> str:
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em} .maps{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px} "
            ".real-legend svg{vertical-align:middle}</style>"
            f"</head><body><h1>{escape(title)}</h1>{map_body(grid, results, note=note, real=real)}</body></html>")


def write_map(folder: Path, grid: Grid, results: list[dict[str, Any]], *, title: str, note: str = "",
              real: list[RealMembrane] | None = None) -> Path:
    """``FOLDER/map.html`` and ``FOLDER/map.json`` (one row per (point, seed): the store's view of the map)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "map.json", json.dumps({"grid": grid.to_dict(), "results": results}, indent=1).encode())
    out = folder / "map.html"
    atomic_write_bytes(out, map_html(grid, results, title=title, note=note, real=real).encode("utf-8"))
    return out
