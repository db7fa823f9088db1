"""The process-window map on a grid: points, their aggregation over seeds, and the drawing.

A map is a set of grid points (RH × concentration, optionally × cast volume; each with one or more
twin seeds). Its trials live in an Optuna study (see :mod:`castrig.explore.distributed`); this
module says which points a grid holds, which of them a study still lacks (so a map grows and
resumes instead of recomputing), and draws the result: heat maps of D and σd/D, and the pass
region of every grade (a cell passes when every seed's membrane met the grade; its shade says
how many did), one row of panels per cast volume. Inline SVG, like :mod:`castrig.explore.plots`.
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
from castrig.store.atomic import atomic_write_bytes

GRADES = ("claim1", "claim2", "claim3", "claim4")


def parse_range(text: str, flag: str) -> list[float]:
    """``A:B:STEP`` (inclusive of B when the steps land on it) or a single number → the values."""
    parts = text.split(":")
    try:
        nums = [float(p) for p in parts]
    except ValueError:
        raise BadInput(f"{flag} {text!r}: expected A:B:STEP or a number", field=flag) from None
    if len(nums) == 1:
        return nums
    if len(nums) != 3 or nums[2] <= 0 or nums[1] < nums[0]:
        raise BadInput(f"{flag} {text!r}: expected A:B:STEP with A <= B and STEP > 0", field=flag)
    a, b, step = nums
    n = int(math.floor((b - a) / step + 1e-9)) + 1
    if n > 200:
        raise BadInput(f"{flag} {text!r}: {n} values (allowed: up to 200)", field=flag)
    return [round(a + i * step, 6) for i in range(n)]


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


def _heat(title: str, rhs: list[float], cs: list[float], value, *, legend: tuple[float, float] | None, fmt: str = ".3g") -> str:  # type: ignore[no-untyped-def]
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


def map_html(grid: Grid, results: list[dict[str, Any]], *, title: str, note: str = "") -> str:
    cs_all = cells(results)
    rhs = sorted({k[0] for k in cs_all} | set(grid.rh))
    concs = sorted({k[1] for k in cs_all} | set(grid.concentration))
    vols = sorted({k[2] for k in cs_all} | set(grid.volume))
    ds = [x for cell in cs_all.values() if (x := cell.mean(cell.d)) is not None]
    cvs = [x for cell in cs_all.values() if (x := cell.mean(cell.cv)) is not None]
    # D spans decades across a window: coloured on a log scale (the legend shows µm).
    ds = [math.log10(x) for x in ds if x > 0]
    d_rng = (min(ds), max(ds) if max(ds) > min(ds) else min(ds) + 1e-9) if ds else (0.0, 1.0)
    cv_rng = (min(cvs), max(cvs) if max(cvs) > min(cvs) else min(cvs) + 1e-9) if cvs else (0.0, 1.0)
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

        panels = [_heat(f"D (µm, log colour scale), V {v:g} mL", rhs, concs, d_val, legend=(10 ** d_rng[0], 10 ** d_rng[1]),
                        fmt=".2f"),
                  _heat(f"σd/D, V {v:g} mL", rhs, concs, cv_val, legend=cv_rng)]
        for g in GRADES:
            def pf(rh: float, c: float, g: str = g) -> tuple[str, str]:
                cell = get(rh, c)
                if cell is None:
                    return "#eeeeee", "not run"
                k = cell.met.get(g, 0)
                col = "#2ca02c" if k == cell.n else ("#b8e186" if k else "#d62728")
                return col, f"{g} met by {k} of {cell.n} seeds"
            panels.append(_heat(f"{g} pass region, V {v:g} mL", rhs, concs, pf, legend=None))
        rows.append(f"<div class='maps'>{''.join(panels)}</div>")
    n = sum(c.n for c in cs_all.values())
    return ("<!doctype html><html><head><meta charset='utf-8'>"
            f"<title>{escape(title)}</title>"
            "<style>body{font-family:sans-serif;margin:1.5em} .maps{display:flex;flex-wrap:wrap;gap:12px;margin-bottom:12px}</style>"
            f"</head><body><h1>{escape(title)}</h1><p>{n} runs on {len(cs_all)} grid cells "
            f"(RH {len(rhs)} × concentration {len(concs)} × volume {len(vols)}; seeds {', '.join(map(str, grid.seeds))}; "
            f"total flow {grid.flow_slpm:g} slpm). {escape(note)}</p>{''.join(rows)}</body></html>")


def write_map(folder: Path, grid: Grid, results: list[dict[str, Any]], *, title: str, note: str = "") -> Path:
    """``FOLDER/map.html`` and ``FOLDER/map.json`` (one row per (point, seed): the store's view of the map)."""
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(folder / "map.json", json.dumps({"grid": grid.to_dict(), "results": results}, indent=1).encode())
    out = folder / "map.html"
    atomic_write_bytes(out, map_html(grid, results, title=title, note=note).encode("utf-8"))
    return out
