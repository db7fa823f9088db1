"""The process-window map: one self-contained HTML file with inline SVG scatter maps.

Why SVG by hand (as in ``castrig.svgchart``): the map must open in any browser on a rig
computer without a network or matplotlib, and the plots are simple — points in the
(RH, concentration) plane coloured by D, σd/D, through-pore fraction, and pass/fail.
Search trials are circles, grid trials squares; the found recipe is ringed.
"""

from __future__ import annotations

import math
from html import escape
from pathlib import Path

from castrig.explore.journal import SearchSettings, Trial
from castrig.explore.page_style import PAGE_STYLE  # (the one stylesheet: castrig serve allows it by hash, and no other style)
from castrig.explore.space import point_label
from castrig.svgchart import nice_ticks
from castrig.atomic import atomic_write_bytes

_VIRIDIS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]
W, H, L, R, T, B = 430, 330, 58, 82, 30, 46



def _colour(f: float) -> str:
    f = min(1.0, max(0.0, f)) * (len(_VIRIDIS) - 1)
    i = min(int(f), len(_VIRIDIS) - 2)
    a, b = _VIRIDIS[i], _VIRIDIS[i + 1]
    u = f - i
    return "#%02x%02x%02x" % tuple(round(a[k] + (b[k] - a[k]) * u) for k in range(3))


def _panel(title: str, trials: list[Trial], value, settings: SearchSettings, *, kind: str = "value",  # type: ignore[no-untyped-def]
           found: int | None = None) -> str:
    rh_lo, rh_hi = settings.space.bounds("rh_pct")
    c_lo, c_hi = settings.space.bounds("concentration_mg_ml")
    pts = [(t, t.params["rh_pct"], t.params["concentration_mg_ml"], value(t)) for t in trials if t.done]
    if pts:
        rh_lo, rh_hi = min(rh_lo, *(p[1] for p in pts)), max(rh_hi, *(p[1] for p in pts))
        c_lo, c_hi = min(c_lo, *(p[2] for p in pts)), max(c_hi, *(p[2] for p in pts))
    if rh_hi <= rh_lo:
        rh_lo, rh_hi = rh_lo - 5, rh_hi + 5
    if c_hi <= c_lo:
        c_lo, c_hi = c_lo / 2, c_hi * 2
    lc0, lc1 = math.log10(c_lo) - 0.05, math.log10(c_hi) + 0.05
    pw, ph = W - L - R, H - T - B

    def px(rh: float) -> float:
        return L + (rh - rh_lo) / (rh_hi - rh_lo) * pw

    def py(c: float) -> float:
        return T + ph - (math.log10(c) - lc0) / (lc1 - lc0) * ph

    vals = [p[3] for p in pts if p[3] is not None and math.isfinite(p[3])]
    vmin, vmax = (min(vals), max(vals)) if vals else (0.0, 1.0)
    if vmax <= vmin:
        vmax = vmin + 1e-9
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="11">',
           f'<text x="{L}" y="18" font-size="13" font-weight="bold">{escape(title)}</text>',
           f'<rect x="{L}" y="{T}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#999"/>']
    for tick in nice_ticks(rh_lo, rh_hi, 6):
        if rh_lo <= tick <= rh_hi:
            x = px(tick)
            out.append(f'<line x1="{x:.1f}" y1="{T + ph}" x2="{x:.1f}" y2="{T + ph + 4}" stroke="#666"/>'
                       f'<text x="{x:.1f}" y="{T + ph + 16}" text-anchor="middle">{tick:g}</text>')
    for dec in range(math.floor(lc0), math.ceil(lc1) + 1):
        for m in (1, 2, 5):
            c = m * 10.0**dec
            if lc0 <= math.log10(c) <= lc1:
                y = py(c)
                out.append(f'<line x1="{L - 4}" y1="{y:.1f}" x2="{L}" y2="{y:.1f}" stroke="#666"/>'
                           f'<text x="{L - 6}" y="{y + 4:.1f}" text-anchor="end">{c:g}</text>')
    out.append(f'<text x="{L + pw / 2}" y="{H - 8}" text-anchor="middle">RH setpoint (%)</text>'
               f'<text transform="translate(14,{T + ph / 2}) rotate(-90)" text-anchor="middle">concentration (mg/mL)</text>')
    for t, rh, c, v in pts:
        x, y = px(rh), py(c)
        o = t.outcome
        tip = escape(f"#{t.number} {t.kind}: {point_label(t.params)}; D {o.d_um or float('nan'):.2f} µm; "
                     f"grades met: {', '.join(o.grades_met) or 'none'}")
        if kind == "passfail":
            fill = "#2ca02c" if o.hit(settings.tolerance) else ("#98df8a" if o.grade_met else "#d62728")
        else:
            fill = "#cccccc" if v is None or not math.isfinite(v) else _colour((v - vmin) / (vmax - vmin))
        shape = (f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10"' if t.kind == "grid"
                 else f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5.5"')
        out.append(f'{shape} fill="{fill}" stroke="#333" stroke-width="0.6"><title>{tip}</title>'
                   + ("</rect>" if t.kind == "grid" else "</circle>"))
        if found is not None and t.number == found:
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="10" fill="none" stroke="#000" stroke-width="2"/>')
    cx = L + pw + 14
    if kind == "passfail":
        for i, (lab, col) in enumerate((("hit", "#2ca02c"), ("grade met", "#98df8a"), ("not met", "#d62728"))):
            out.append(f'<circle cx="{cx + 5}" cy="{T + 10 + 18 * i}" r="5" fill="{col}" stroke="#333"/>'
                       f'<text x="{cx + 13}" y="{T + 14 + 18 * i}">{lab}</text>')
    elif vals:
        for i in range(40):
            out.append(f'<rect x="{cx}" y="{T + ph - (i + 1) * ph / 40:.1f}" width="12" height="{ph / 40 + 0.5:.1f}" fill="{_colour(i / 39)}"/>')
        out.append(f'<text x="{cx + 15}" y="{T + ph}">{vmin:.3g}</text><text x="{cx + 15}" y="{T + 10}">{vmax:.3g}</text>')
    out.append("</svg>")
    return "".join(out)


def map_html(settings: SearchSettings, trials: list[Trial]) -> str:
    s = settings
    found_n = None
    hits = [t for t in trials if t.kind == "confirm" and t.done and t.outcome.hit(s.tolerance)]  # type: ignore[union-attr]
    if hits:
        found_n = hits[0].number
    panels = [
        _panel("mean pore diameter D (µm)", trials, lambda t: t.outcome.d_um, s, found=found_n),
        _panel("σd/D", trials, lambda t: t.outcome.cv, s, found=found_n),
        _panel("through-pore fraction", trials, lambda t: t.outcome.metrics.get("through_pore_fraction"), s, found=found_n),
        _panel(f"{s.grade} at D {s.target_d_um:g} µm ± {s.tolerance:.0%}", trials, lambda t: None, s, kind="passfail", found=found_n),
    ]
    rows = []
    for t in trials:
        o = t.outcome
        if o is None:
            # (escaped as the finished rows are: the journal is a file in the data folder, and a
            # kind written into it by hand came out as markup)
            rows.append(f"<tr><td>{escape(str(t.number))}</td><td>{escape(str(t.kind))}</td><td colspan=9>not finished</td></tr>")
            continue
        m = o.metrics
        cells = [t.number, t.kind, f"{t.params['rh_pct']:.1f}", f"{t.params['concentration_mg_ml']:.2f}",
                 f"{t.params['cast_volume_ml']:.3f}", f"{t.params['total_flow_slpm']:.2f}",
                 "" if o.d_um is None else f"{o.d_um:.2f}", "" if o.cv is None else f"{o.cv:.3f}",
                 "" if m.get("through_pore_fraction") is None else f"{m['through_pore_fraction']:.2f}",
                 ", ".join(o.grades_met) or "none", f"{o.score:.3f}"]
        rows.append("<tr>" + "".join(f"<td>{escape(str(c))}</td>" for c in cells) + "</tr>")
    head = "".join(f"<th>{h}</th>" for h in ("#", "kind", "RH %", "c mg/mL", "V mL", "Q slpm", "D µm", "σd/D", "through", "grades met", "score"))
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>castrig explore — {escape(s.grade)} at {s.target_d_um:g} µm</title>"
        f"<style>{PAGE_STYLE}</style>"
        "</head><body>"
        f"<h1>Process window: {escape(s.grade)} at D = {s.target_d_um:g} µm</h1>"
        f"<p>{sum(1 for t in trials if t.done)} runs ({sum(1 for t in trials if t.kind == 'search')} search trials, budget {s.budget}); "
        f"seed {s.seed}; profile {escape(s.profile_path)}. Each point is one run (circles: search and confirmation, "
        "squares: grid map); other parameters vary between points — hover a point for all of them.</p>"
        f"<div class='maps'>{''.join(panels)}</div><h2>Trials</h2><table><tr>{head}</tr>{''.join(rows)}</table>"
        "</body></html>"
    )


def write_map(path: Path, settings: SearchSettings, trials: list[Trial]) -> Path:
    atomic_write_bytes(Path(path), map_html(settings, trials).encode("utf-8"))
    return Path(path)
