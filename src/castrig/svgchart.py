"""Line charts as inline SVG text, written here rather than with matplotlib: the run report's
plots, the RH-loop tuning plot (``castrig commission tune``), the process-window map's axes.

Why: the report must be one self-contained file that any browser shows without a network, and
the plots are few and simple (lines, a band, bars). Hand-written SVG keeps the text selectable,
scales without blur, and adds no dependency to the rig computers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

import numpy as np

PALETTE = {
    "blue": "#1f77b4",
    "orange": "#ff7f0e",
    "green": "#2ca02c",
    "red": "#d62728",
    "purple": "#9467bd",
    "brown": "#8c564b",
    "grey": "#7f7f7f",
    "band": "#2ca02c",
}


@dataclass
class Series:
    """One line: times in seconds, values in the plot's unit."""

    label: str
    t_s: Sequence[float]
    values: Sequence[float]
    colour: str = PALETTE["blue"]
    dashed: bool = False
    step: bool = False  # a setpoint: hold each value until the next one


@dataclass
class Band:
    """A shaded allowed range between two times (e.g. setpoint ± band)."""

    t0_s: float
    t1_s: float
    lo: float
    hi: float
    label: str = ""


@dataclass
class Span:
    """A labelled stretch of time drawn behind the data (a recipe step)."""

    t0_s: float
    t1_s: float
    label: str


@dataclass
class Axes:
    width_px: int = 900
    height_px: int = 260
    left_px: int = 62
    right_px: int = 62
    top_px: int = 40
    bottom_px: int = 42
    spans: list[Span] = field(default_factory=list)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values covering [lo, hi] (1, 2, 2.5, 5 × 10^k steps)."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / max(n, 1)
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.floor(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 0.5:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.6g}" if abs(v) >= 1e-9 else "0"


def time_unit(t_max_s: float) -> tuple[float, str]:
    """Seconds for short runs, minutes up to 5 h, hours beyond."""
    if t_max_s <= 300:
        return 1.0, "s"
    if t_max_s <= 5 * 3600:
        return 60.0, "min"
    return 3600.0, "h"


def _finite(series: Sequence[Series]) -> list[float]:
    vals: list[float] = []
    for s in series:
        vals += [float(v) for v in s.values if v is not None and math.isfinite(float(v))]
    return vals


def line_chart(
    plot_id: str,
    title: str,
    y_label: str,
    series: Sequence[Series],
    *,
    bands: Sequence[Band] = (),
    y2_label: str | None = None,
    series2: Sequence[Series] = (),
    t_range_s: tuple[float, float] | None = None,
    axes: Axes | None = None,
) -> str:
    """A time chart; ``series2`` go on a right-hand axis with its own scale."""
    ax = axes or Axes()
    w, h = ax.width_px, ax.height_px
    x0, x1 = ax.left_px, w - ax.right_px
    y0, y1 = h - ax.bottom_px, ax.top_px  # pixel rows of the value axis ends
    all_t = [float(t) for s in (*series, *series2) for t in s.t_s]
    t_lo, t_hi = t_range_s or ((min(all_t), max(all_t)) if all_t else (0.0, 1.0))
    if t_hi <= t_lo:
        t_hi = t_lo + 1.0
    scale_t, unit = time_unit(t_hi)
    parts = [f'<svg class="plot" id="plot-{escape(plot_id)}" data-plot="{escape(plot_id)}" role="img" '
             f'xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {w} {h}" width="{w}" height="{h}">',
             f"<title>{escape(title)}</title>",
             f'<text x="{x0}" y="14" class="ptitle">{escape(title)}</text>']

    def px_t(t: float) -> float:
        return x0 + (t - t_lo) / (t_hi - t_lo) * (x1 - x0)

    for i, sp in enumerate(ax.spans):  # recipe steps behind everything
        a, b = px_t(max(sp.t0_s, t_lo)), px_t(min(sp.t1_s, t_hi))
        if b <= a:
            continue
        fill = "#f4f6fa" if i % 2 == 0 else "#ffffff"
        parts.append(f'<rect x="{a:.1f}" y="{y1}" width="{b - a:.1f}" height="{y0 - y1}" fill="{fill}"/>')
        if b - a > 38:
            parts.append(f'<text x="{(a + b) / 2:.1f}" y="{y1 + 11}" class="span">{escape(sp.label)}</text>')

    def value_axis(ss: Sequence[Series], extra: Sequence[float], right: bool, label: str) -> tuple[float, float] | None:
        vals = _finite(ss) + list(extra)
        if not vals:
            return None
        lo, hi = min(vals), max(vals)
        pad = 0.05 * (hi - lo) if hi > lo else max(abs(hi) * 0.05, 0.5)
        # quantities that are never negative (RH, flows, volumes) never get a negative axis (no "-20 %RH")
        ticks = nice_ticks(lo - pad if lo < 0 else max(0.0, lo - pad), hi + pad)
        vlo, vhi = ticks[0], ticks[-1]
        for v in ticks:
            y = y0 - (v - vlo) / (vhi - vlo) * (y0 - y1)
            if not right:
                parts.append(f'<line x1="{x0}" x2="{x1}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>')
                parts.append(f'<text x="{x0 - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{_fmt(v)}</text>')
            else:
                parts.append(f'<text x="{x1 + 6}" y="{y + 4:.1f}" class="tick">{_fmt(v)}</text>')
        xl = 14 if not right else w - 10
        parts.append(f'<text transform="translate({xl},{(y0 + y1) / 2:.0f}) rotate(-90)" class="alabel" '
                     f'text-anchor="middle">{escape(label)}</text>')
        return vlo, vhi

    band_vals = [v for b in bands for v in (b.lo, b.hi)]
    left = value_axis(series, band_vals, False, y_label)
    right = value_axis(series2, (), True, y2_label or "") if series2 else None
    for t in nice_ticks(t_lo / scale_t, t_hi / scale_t, 8):
        ts = t * scale_t
        if ts < t_lo - 1e-9 or ts > t_hi + 1e-9:
            continue
        x = px_t(ts)
        parts.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{y0}" y2="{y0 + 4}" class="axis"/>')
        parts.append(f'<text x="{x:.1f}" y="{y0 + 16}" class="tick" text-anchor="middle">{_fmt(t)}</text>')
    parts.append(f'<text x="{(x0 + x1) / 2:.0f}" y="{h - 6}" class="alabel" text-anchor="middle">time ({unit})</text>')
    parts.append(f'<rect x="{x0}" y="{y1}" width="{x1 - x0}" height="{y0 - y1}" class="frame"/>')

    def px_v(v: float, rng: tuple[float, float]) -> float:
        return y0 - (v - rng[0]) / (rng[1] - rng[0]) * (y0 - y1)

    if left is not None:
        for b in bands:
            a, c = px_t(max(b.t0_s, t_lo)), px_t(min(b.t1_s, t_hi))
            top, bot = px_v(b.hi, left), px_v(b.lo, left)
            if c > a:
                parts.append(f'<rect class="band" x="{a:.1f}" y="{top:.1f}" width="{c - a:.1f}" height="{bot - top:.1f}" '
                             f'fill="{PALETTE["band"]}" fill-opacity="0.16"><title>{escape(b.label)}</title></rect>')
    legend: list[tuple[str, str, bool]] = []
    for ss, rng in ((series, left), (series2, right)):
        if rng is None:
            continue
        for s in ss:
            pts = _points(s, rng, px_t, px_v)
            if pts:
                dash = ' stroke-dasharray="6 4"' if s.dashed else ""
                parts.append(f'<polyline class="series" data-series="{escape(s.label)}" fill="none" stroke="{s.colour}" '
                             f'stroke-width="1.6"{dash} points="{pts}"/>')
            legend.append((s.label, s.colour, s.dashed))
    if bands:
        legend.append((bands[0].label or "band", PALETTE["band"] + "55", False))
    lx = x0 + 8
    for label, colour, dashed in legend:
        dash = ' stroke-dasharray="6 4"' if dashed else ""
        parts.append(f'<line x1="{lx}" x2="{lx + 18}" y1="{y1 - 8}" y2="{y1 - 8}" stroke="{colour}" stroke-width="3"{dash}/>')
        parts.append(f'<text x="{lx + 22}" y="{y1 - 4}" class="legend">{escape(label)}</text>')
        lx += 30 + 6.6 * len(label)
    parts.append("</svg>")
    return "\n".join(parts)


def _points(s: Series, rng: tuple[float, float], px_t, px_v) -> str:  # type: ignore[no-untyped-def]
    t = np.asarray(s.t_s, float)
    v = np.asarray([np.nan if x is None else x for x in s.values], float)
    ok = np.isfinite(t) & np.isfinite(v)
    t, v = t[ok], v[ok]
    if t.size == 0:
        return ""
    if s.step and t.size > 1:  # hold each value until the next sample
        t = np.repeat(t, 2)[1:]
        v = np.repeat(v, 2)[:-1]
    if t.size > 4000:  # more points than pixels: thin evenly, keep the ends
        idx = np.unique(np.linspace(0, t.size - 1, 4000).astype(int))
        t, v = t[idx], v[idx]
    return " ".join(f"{px_t(a):.1f},{px_v(b, rng):.1f}" for a, b in zip(t, v))
