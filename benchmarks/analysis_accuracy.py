"""Accuracy of castrig.analysis against the generator's geometric ground truth.

    python benchmarks/analysis_accuracy.py [--cases N] [--size PX] [--seed S[,S2...]] [--families optical,sem]

Each case renders a 1024² surface pair (reflected + transmitted) and a section from a random
honeycomb film (castrig.sim.micrograph), measures them with castrig.analysis and with a plain
scikit-image recipe (Otsu -> label -> clear_border -> regionprops; section: 3-class Otsu and the
count of film pixels per column), and compares both to the truth computed from the geometry.
Errors: D and T relative; σd/D, σt/T, opening ratio and through-pore fraction absolute.
Every section also shows claim 1's features (issue 16): polymer tongues in the support's surface
pores, windows joining neighbouring cavities, channels joining support pores; their amounts are
drawn per case from their own generator (so the surface images are those of earlier versions).
Penetration depth and support pore diameter relative; fraction entered, cavities joined and
support continuity absolute. Cavities joined: the error is the distance to the range the section
can rightly show (``communication_range``): windows 3 px high or more joined, under 2 px not;
windows 2–3 px high and walls under 2 px thin, at the resolution limit, may be seen either way.

Appearance families (issue 16), each case rendered in each, worst errors printed per family:
  optical  reflected light, pores a dark floor (the twin's default renderer);
  optical_bright  reflected light, pores a BRIGHT floor on a dim film (``render_surface_bright``:
           a mirror-like support seen through the pores; film 0.30 of full scale, through-pores
           0.88–1.00, blind ones 0.82–0.96), the optical family's blur, noise, light and bits;
  optical_halo  a slightly defocused reflected-light view (``render_surface_halo``): the optical
           family's image spread by a defocus disc of 0.8–1.6 px and each pore ringed by a
           fringe in the film beyond its edge, bright or dark (drawn per case), peaking at
           0.12–0.25 of the film (light moved across the edge by the pores' phase step, the
           intensity transport equation: the fringe is film, the pore's edge stays the lip);
           the transmitted view in focus;
  sem      secondary-electron top view: bright inner rim at each lip, dark core, black necks,
           scan-line noise, charging streaks, vignetting, sharper focus (0.6 × the case's blur);
           measured with ``appearance="sem"`` (the microscope is known from the file).
  bse_jpeg backscatter-like top view (issue 16): flat, weak contrast (pores 0.55–0.75 × film,
           no rim), a pillbox defocus of 1 px, 8-bit, saved as JPEG at quality 75; measured with
           ``appearance="sem"`` (the SEM path finds that the view has no rims). Its densest views
           are its hardest: a neighbour's blurred edge darkens each profile's outer flank.
The optical families are measured with the default call (``appearance="optical"``: an optical
microscope, known from the file); the contrast's polarity and how far the edges reach (blur,
halo) are found from the image (castrig.analysis.surface: ``pores_brighter``, ``_edge_reach``).
Section appearance families (issue 16): the section rendered under one variant of
``render_section``, measured with the same call (orientation and contrast found from the image);
only the section is rendered and measured (the surface metrics show "—"):
  sec_flip     background below (the image upside down);
  sec_dark     film (and polymer tongues) darker than the support (0.45 vs 0.70), whose grain
               texture (relative s.d. 0.15) reaches down to the film's level;
  sec_texture  film brighter, support brighter than by default (0.60 vs 0.45 of the film's 0.85)
               with a grain texture of relative s.d. 0.15: its brightest grains reach the film's;
  sec_tilt     the section tilted by ±1–3° (a shear: vertical distances and areas unchanged;
               the sign and angle drawn per case from their own generator). The image's bottom
               then cuts the support at a slant: the support pore diameter and continuity truth
               take the pores' depths relative to it (``sheared_support_truth``);
  sec_wavy     the support's surface undulating, the film following it (a real support is not
               flat): a sine of 0.05–0.2 of the film's thickness over 10–25 thicknesses, drawn
               per case (``render_section(wave_amplitude_px=, wave_period_px=)``: a shear of the
               columns like sec_tilt's, so the same ground truth). Still MISSES. Measured as it
               lay (the interface one straight line) it read the wave's troughs as penetration:
               seed 1000 T up to 24 % off, penetration depth up to 46 %, 6 signed misses;
               seeds 1000-5000, 50. Since 2026-12-05 castrig.analysis.section straightens a
               section by the bend its interface shows, while that makes one of the film's edges
               straighter: seed 1000 T worst 11 %, joined meets, 2 signed misses; seeds
               1000-5000, 32 (cases missing T 38 → 31 of 70, σt/T 33 → 22, penetration depth
               40 → 35), the flat families' figures unchanged. The bend was read from the film's
               bottom edge outside the tongues found against one straight line, which took the
               troughs for tongues. Read as a least-cost path of bounded slope under the edge
               (section_waves._interface_path, 2026-12-05 third session): seed 1000 T worst 3.5 %,
               σt/T meets, 0 signed misses; seeds 1000-5000, 15 (cases missing T 31 → 12 of 70,
               σt/T 22 → 10, penetration depth 35 → 15, fraction 42 → 16), the flat families'
               tables identical. The wave then also read where the film's top is seen over
               less than half the width (many cavities open to the top; 10 cases were left as
               they lay): seeds 1000-5000 11 signed misses (T 12 → 9 cases, σt/T 10 → 8,
               penetration depth 15 → 11, fraction 16 → 12); of the flat families only seed
               2000 sec_thin case 13 moved (straightened by 3 px: its support D, not measured
               before, 5.4 % short). Left: sections straightened and then undone because the
               interface was seen over less of the width (seed 2000 case 0, 3000 case 1), a
               tongue at the image's side with no interface seen beside it. With the bend's
               evidence (section_waves._bend_evidence): 9. Short runs of columns with no film top
               over them (a through-pore's side, its edge no film's bottom) give the path no
               edge since the fifth session of 2026-12-05: one such column over the wave
               lifted the path over a hundred columns of interface (seed 5000 case 4,
               penetration depth 69 % off); seeds 1000-5000 5 signed misses (σt/T 1@5000 and
               9@5000, fraction 9@5000, joined 7@2000, continuity 6@5000), the flat families'
               tables identical but four cases, within their goals (worst: seed 2000 sec_dark
               case 5 T 0.5 → 1.4 %). Tongues under most of the interface (seed 2000 case 7,
               5000 cases 1 and 9) left the interface seen only in the short gaps between
               them, and the path kept to the level over the tongues, a level change costing
               more than those few columns: the path a section is straightened by pays half
               (section_waves.BEND_CHANGE_COST) once the gate, at the full cost, has found a wave —
               1 signed miss (continuity 6@5000: the support's pores cut by the image's
               bottom, moved by the wave), T and σt/T within the goals wherever unflagged;
               the flat families: two cases moved, both closer to the truth. The straightened
               image now holds every row of every column and its support is measured down to
               each column's own last row: 0 signed misses, continuity within its goal
               wherever measured; support D misses its 5 % in 3 cases (5.4–8.9 %, 4–6 pores
               each, the truth inside the interval: a pore 2–3 px above the image's bottom is
               whole to the truth and cut to castrig's margin, as in the section as it lies).
               Since the sixth session of 2026-12-05 a support pore is cut where the pore phase
               joins it to a run of pore pixels along the border, with no margin: 2 cases
               (0@2000 8.9 %, a whole pore 95 px wide missing beside one the bottom cuts;
               6@5000 5.4 %, one of six missing), 7 misses with the truth inside the interval.
               Seed 1000 case 11 (cavities sitting on the interface of a thin film) was left as
               it lay: the column at each cavity's side caught between its roof and the interface
               passed for interface seen, four of them held the interface path 16 px high over
               175 columns, the bend's evidence fell to 1.07 and the wave's troughs read as
               tongues 3 px deep — penetration depth 46 % short, fraction 0.059 over. Since
               2026-12-07 columns where the film's bottom edge jumps give the path no edge
               (section_waves._edge_jumps): 0.6 % and 0.001, seed 1000 sec_wavy meets every goal; seeds
               2000 unchanged; 3000-5000 one case straightened now (13@4000) whose tongue running
               out through the image's side the path followed down (depth 16 % over unflagged →
               20 % short). The run from the edge's last jump down to the image's side gives the
               path no edge either (section_waves._side_tongues): 13@4000 6 %, 1@4000 11 → 4 %, seed
               2000 case 7 7.2 → 0.4 %. Seed 2000 case 11 (the same film, a 14 px wave) was
               straightened and then undone: 6.60 px found, 3.41 left, a shrinking wave, but
               rounded to whole pixels 4 of 6, over WAVE_SHRINK — the bends are now compared as
               measured: penetration depth 32 % short → 1.2 %, fraction 0.074 over → 0.000.
               sec_wavy's penetration depth misses over seeds 1000-5000: 6 → 2 (2@5000
               interface_lost, 11@5000 not measured); the flat families' tables identical
               (seeds 1000-5000), case by case but seed 3000 sec_thin case 11 (T 1.5 → 1.4 %).

  sec_thin     the default appearance of films far thinner than their pores: T/D 0.1–0.35 (the
               cases' own 0.4–2.0; claim 1 allows 0.05, the twin makes 0.25 at 80 %RH);
  sec_tongues  the default appearance with polymer tongues as deep and wide as the twin's grade
               recipes make them: 0.4–0.8 of the support pore deep under 0.4–0.7 of the interface
               (the other families: 0.1–0.4 under 0.1–0.5). Their flat bottoms can line up under
               a slope and pass for the interface (two twin sections read T 1.6× and 4.2× high).
The optical, optical_bright, optical_halo and sem families render the same section (the default
appearance; it differs between them only in its noise and texture draws, the surface renderers
consuming the stream differently).

Support continuity's truth counts a channel only where it runs inside the imaged support
(``support_spanning``): pores joined only through pores or channels outside the image look
separate in it, and the earlier truth (joining them) could not be measured from the image.
It is that of the pore phase as rendered (discs and channel strokes) inside the image: a
channel meeting a pore only below the image's bottom joins nothing there but takes its cluster
to the bottom, one crossing a third pore joins it; "near the interface" is within the whole
pores' mean diameter (the support D truth), not the mean over all generated pores.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
import math
import time

import numpy as np
from skimage.filters import threshold_multiotsu, threshold_otsu
from skimage.measure import label, regionprops
from skimage.segmentation import clear_border

from castrig.analysis import analyse_section, analyse_surface
from castrig.sim.micrograph import (communication_range, ground_truth, make_structure, render_section, render_surface, render_surface_bright,
                                    render_surface_bse, render_surface_halo, render_surface_sem)

GOALS = {"D": 0.02, "cv": 0.03, "opening": 0.02, "through": 0.05, "T": 0.03, "tcv": 0.05,
         # claim 1 from the section (issue 16): penetration depth relative (the goal: 10 %
         # worst case); fraction entered, cavities joined, support continuity absolute
         # (provisional goals of ours)
         "pen": 0.10, "pen_f": 0.03, "comm": 0.15, "cont": 0.10,
         # the support's pore diameter (relative; provisional): its pores now joined by channels
         "sup": 0.05}


@dataclass
class Case:
    d_um: float
    px_per_pore: float
    cv: float
    opening: float
    through: float
    t_over_d: float
    t_cv: float
    blur: float
    noise: float
    gradient: float
    bits: int


CASES = [
    Case(0.8, 9, 0.05, 0.45, 0.60, 1.5, 0.05, 1.0, 0.02, 0.3, 8),
    Case(1.5, 12, 0.15, 0.30, 0.50, 1.0, 0.10, 1.5, 0.03, 0.4, 16),
    Case(2.5, 10, 0.03, 0.60, 0.95, 0.6, 0.02, 1.2, 0.03, 0.3, 8),
    Case(4.0, 15, 0.25, 0.20, 0.20, 1.2, 0.20, 1.0, 0.02, 0.3, 16),
    Case(5.0, 9, 0.10, 0.55, 0.80, 0.8, 0.05, 1.2, 0.03, 0.4, 8),
    Case(7.0, 20, 0.20, 0.15, 0.35, 2.0, 0.30, 1.5, 0.02, 0.2, 8),
    Case(10.0, 12, 0.08, 0.40, 0.50, 1.0, 0.10, 0.8, 0.04, 0.3, 16),
    Case(12.0, 18, 0.12, 0.50, 0.70, 0.5, 0.15, 1.5, 0.02, 0.4, 8),
    Case(15.0, 10, 0.03, 0.35, 0.25, 1.5, 0.02, 1.0, 0.03, 0.3, 16),
    Case(18.0, 14, 0.18, 0.25, 0.90, 0.7, 0.25, 1.2, 0.02, 0.4, 8),
    Case(20.0, 20, 0.25, 0.15, 0.45, 1.0, 0.05, 1.0, 0.03, 0.3, 16),
    Case(25.0, 16, 0.10, 0.60, 0.60, 0.4, 0.10, 1.5, 0.04, 0.3, 8),
    Case(3.0, 9, 0.20, 0.50, 0.30, 1.8, 0.08, 1.5, 0.04, 0.4, 8),
    Case(8.0, 11, 0.05, 0.58, 0.85, 1.2, 0.12, 1.2, 0.02, 0.3, 16),
]


def plain_surface(refl: np.ndarray, trans: np.ndarray, px: float) -> dict:
    """The recipe most people write first: global Otsu, label, clear border, regionprops."""
    m = refl < threshold_otsu(refl)
    lab = clear_border(label(m))
    props = regionprops(lab, intensity_image=trans)
    d = np.array([p.equivalent_diameter_area for p in props]) * px
    t_thr = threshold_otsu(trans)
    thr = np.array([p.intensity_mean > t_thr for p in props])
    return {
        "opening_ratio": float(m.mean()),
        "mean_pore_diameter_um": float(d.mean()) if d.size else math.nan,
        "pore_diameter_std_um": float(d.std(ddof=1)) if d.size > 1 else math.nan,
        "pore_count": int(d.size),
        "through_pore_fraction": float(thr.mean()) if thr.size else math.nan,
    }


def plain_section(img: np.ndarray, px: float) -> dict:
    """3-class Otsu; the film is the brightest class; thickness = film pixels per column."""
    t1, t2 = threshold_multiotsu(img.astype(np.float64), classes=3, nbins=256)
    t = (img > t2).sum(axis=0) * px
    return {"mean_thickness_um": float(t.mean()), "thickness_std_um": float(t.std())}


QUALITY = "_quality"  # castrig's flags and intervals, beside its metrics in run_case's answer
METRIC = {"D": "mean_pore_diameter_um", "cv": "pore_diameter_std_um", "opening": "opening_ratio",
          "through": "through_pore_fraction", "T": "mean_thickness_um", "tcv": "thickness_std_um",
          "pen": "penetration_depth_um", "pen_f": "penetration_fraction", "comm": "pore_communication",
          "cont": "support_continuity", "sup": "support_pore_diameter_um"}


def flagged_miss(key: str, truth: dict, ours: dict) -> str | None:
    """How castrig itself qualified a metric that missed its goal: its quality flags, and whether
    its 95 % interval holds the truth — or None when the metric went out unflagged (a result the
    verdict would have trusted)."""
    q = ours.get(QUALITY, {})
    m = METRIC[key]
    flags = q.get("flagged", {}).get(m)
    iv, tv = q.get("intervals", {}).get(m), truth.get(m)
    inside = iv is not None and tv is not None and iv[0] <= tv <= iv[1]
    if ours.get(m) is None:
        return "not measured (its bounds unknown: no grade asking it is met)"
    if not flags:
        # unflagged, the verdict still judges a bound inside the interval marginal: a miss whose
        # truth lies inside it is reported as uncertain; one outside it is a result it would sign
        return None if not inside else "unflagged, truth inside its interval"
    return f"{'+'.join(flags)}, truth {'inside' if inside else 'OUTSIDE'} its interval"


def errors(truth: dict, got: dict) -> dict:
    def g(k):
        v = got.get(k)
        return math.nan if v is None else float(v)

    d_t, d_m = truth["mean_pore_diameter_um"], g("mean_pore_diameter_um")
    t_t, t_m = truth["mean_thickness_um"], g("mean_thickness_um")
    return {
        "D": abs(d_m / d_t - 1),
        "cv": abs(g("pore_diameter_std_um") / d_m - truth["pore_diameter_std_um"] / d_t),
        "opening": abs(g("opening_ratio") - truth["opening_ratio"]),
        "through": abs(g("through_pore_fraction") - truth["through_pore_fraction"]),
        "T": abs(t_m / t_t - 1),
        "tcv": abs(g("thickness_std_um") / t_m - truth["thickness_std_um"] / t_t),
        "pen": abs(g("penetration_depth_um") / truth["penetration_depth_um"] - 1) if truth.get("penetration_depth_um") else math.nan,
        "sup": abs(g("support_pore_diameter_um") / truth["support_pore_diameter_um"] - 1) if truth.get("support_pore_diameter_um") else math.nan,
        "pen_f": abs(g("penetration_fraction") - truth.get("penetration_fraction", math.nan)),
        "comm": comm_error(g("pore_communication"), truth.get("pore_communication"), truth.get("pore_communication_max")),
        "cont": abs(g("support_continuity") - (truth.get("support_continuity") if truth.get("support_continuity") is not None else math.nan)),
    } | {  # a section metric not measured where the truth has a value: a failure, not a NaN
        k: math.inf for k, m in (("T", "mean_thickness_um"), ("tcv", "thickness_std_um"), ("pen", "penetration_depth_um"),
                                 ("sup", "support_pore_diameter_um"), ("pen_f", "penetration_fraction"),
                                 ("comm", "pore_communication"), ("cont", "support_continuity"))
        if truth.get(m) is not None and m in got and got[m] is None
    }


def comm_max(st, sec_px: float) -> dict:
    """The most cavities joined the section can rightly show (see the module's docstring)."""
    r = communication_range(st, sec_px)
    return {"pore_communication_max": r[1] if r else None}


def comm_error(got: float, lo: float | None, hi: float | None) -> float:
    """Distance of the measured fraction joined from [lo, hi] (NaN without a truth)."""
    if lo is None:
        return math.nan
    hi = lo if hi is None else hi
    return max(lo - got, got - hi, 0.0)


def claim1_features(i: int, seed: int, support_pore_um: float) -> dict:
    """Claim-1 amounts for case i from their own generator (the case's stream is untouched)."""
    r = np.random.default_rng([seed, i, 1])
    return {"penetration_depth_um": support_pore_um * r.uniform(0.1, 0.4), "penetration_fraction": r.uniform(0.1, 0.5),
            "communication": r.uniform(0.0, 0.9), "support_link_prob": r.uniform(0.6, 1.0)}


SECTION_FAMILIES = ("sec_flip", "sec_dark", "sec_texture", "sec_tilt", "sec_tongues", "sec_thin", "sec_wavy")


def deep_tongues(i: int, seed: int, support_pore_um: float) -> dict:
    """sec_tongues: polymer tongues as deep and wide as the twin's grade recipes make them (grade
    4: 0.65 of the support pore deep under 0.53 of the interface), drawn from their own stream."""
    r = np.random.default_rng([seed, i, 3])
    return {"penetration_depth_um": support_pore_um * r.uniform(0.4, 0.8), "penetration_fraction": r.uniform(0.4, 0.7)}


def section_variant(family: str, i: int, seed: int) -> dict:
    """``render_section`` keywords of a section appearance family for case i."""
    if family == "sec_flip":
        return {"flip": True}
    if family == "sec_dark":
        return {"film_darker": True, "support_texture": 0.15}
    if family == "sec_texture":
        return {"support_level": 0.6, "support_texture": 0.15}
    if family == "sec_tilt":
        r = np.random.default_rng([seed, i, 2])
        return {"tilt_deg": float(r.choice([-1, 1]) * r.uniform(1.0, 3.0))}
    return {}


def wave(i: int, seed: int, t_px: float) -> dict:
    """sec_wavy: the support's surface undulating (the film following it) by 0.05–0.2 of the film
    thickness over 10–25 thicknesses, drawn from its own stream (the ``render_section`` keywords)."""
    r = np.random.default_rng([seed, i, 5])
    return {"wave_amplitude_px": float(r.uniform(0.05, 0.2) * t_px), "wave_period_px": float(r.uniform(10.0, 25.0) * t_px)}


def sheared_support_truth(st, sec_px: float, kw: dict) -> dict:
    """Support pore diameter and continuity of a tilted or wavy section (``render_section(tilt_deg=,
    wave_amplitude_px=, wave_period_px=)``).

    The shear moves column x down by dy(x) (``section_shear_px``: (x - w/2)·tan θ, plus the wave) while the image's bottom row stays
    at the support depth of the centre column: at column x the image ends dy(x) shallower (or
    deeper). The flat truth would count as whole a pore the image cuts at its bottom (and the
    reverse), so here the pores' depths are taken relative to the image's bottom — each pore
    moved by dy at its centre column — and the truth is computed as before."""
    from castrig.sim.micrograph import disc_rect_area, section_shear_px, support_spanning

    w = int(round(st.section_length_um / sec_px))
    sc, sd = st.support_centres_um, st.support_diameters_um
    if not len(sd):
        return {}
    shear = {k: kw[k] for k in ("tilt_deg", "wave_amplitude_px", "wave_period_px") if k in kw}
    off = section_shear_px(sc[:, 0] / sec_px, w, **shear) * sec_px
    z = sc[:, 1] + off  # depth relative to the image's bottom (at the support depth)
    L, D = st.section_length_um, st.support_depth_um
    s_in = (sc[:, 0] - sd / 2 >= 0) & (sc[:, 0] + sd / 2 <= L) & (z + sd / 2 <= D)
    span = support_spanning(st, depth_offset_um=off, band_um=float(sd[s_in].mean()) if s_in.any() else None)
    # the area inside the image: cut by its sides and bottom only (the interface is above them all)
    area = np.array([disc_rect_area(float(x), float(zz) + D, float(d) / 2, L, 2 * D) for x, zz, d in zip(sc[:, 0], z, sd)])
    return {"support_pore_diameter_um": float(sd[s_in].mean()) if s_in.any() else None,
            "support_continuity": float(area[span].sum() / area.sum()) if area.sum() > 0 else None}


def case_t_over_d(i: int, c: Case, seed: int, family: str) -> float:
    """The film's T/D in case i: the case's own, or sec_thin's draw from its own stream."""
    return float(np.random.default_rng([seed, i, 4]).uniform(0.1, 0.35)) if family == "sec_thin" else c.t_over_d


def run_case(i: int, c: Case, size: int, seed: int, family: str = "optical") -> tuple[dict, dict, dict]:
    rng = np.random.default_rng(seed + i)
    px = c.d_um / c.px_per_pore
    # sec_thin: films far thinner than their pores (T/D 0.1-0.35, from its own stream; claim 1
    # allows 0.05, the twin makes 0.25 at 80 %RH), the cases' T/D being 0.4-2.0
    t_um = case_t_over_d(i, c, seed, family) * c.d_um
    sec_px = t_um / rng.uniform(30, 70)  # 30–70 px across the film
    st = make_structure(
        rng,
        mean_diameter_um=c.d_um,
        cv=c.cv,
        opening_ratio=c.opening,
        through_fraction=c.through,
        thickness_um=t_um,
        thickness_cv=c.t_cv,
        support_pore_um=max(2 * c.d_um, 1.0),
        field_um=size * px,
        section_length_um=size * sec_px,
        **(claim1_features(i, seed, max(2 * c.d_um, 1.0))
           | (deep_tongues(i, seed, max(2 * c.d_um, 1.0)) if family == "sec_tongues" else {})),
    )
    if family in SECTION_FAMILIES:
        kw = section_variant(family, i, seed) | (wave(i, seed, t_um / sec_px) if family == "sec_wavy" else {})
        sec = render_section(st, sec_px, rng, bit_depth=c.bits, illumination_gradient=c.gradient * 0.5, blur_px=c.blur,
                             noise=c.noise, **kw)
        truth = ground_truth(st, section_pixel_size_um=sec_px) | comm_max(st, sec_px)
        if kw.get("tilt_deg") or kw.get("wave_period_px"):
            truth |= sheared_support_truth(st, sec_px, kw)
        m = analyse_section(sec, sec_px)
        return truth, m.to_dict() | {QUALITY: m.quality()}, plain_section(sec, sec_px)
    if family == "sem":
        refl, trans = render_surface_sem(st, px, rng, bit_depth=c.bits, illumination_gradient=c.gradient * 0.5,
                                         blur_px=0.6 * c.blur, noise=c.noise)
    elif family == "bse_jpeg":
        refl, trans = render_surface_bse(st, px, rng, illumination_gradient=c.gradient * 0.5, blur_px=0.6 * c.blur,
                                         noise=c.noise)
    elif family == "optical_bright":
        refl, trans = render_surface_bright(st, px, rng, bit_depth=c.bits, illumination_gradient=c.gradient, blur_px=c.blur,
                                            noise=c.noise)
    elif family == "optical_halo":
        refl, trans = render_surface_halo(st, px, rng, bit_depth=c.bits, illumination_gradient=c.gradient, blur_px=c.blur,
                                          noise=c.noise)
    else:
        refl, trans = render_surface(st, px, rng, bit_depth=c.bits, illumination_gradient=c.gradient, blur_px=c.blur, noise=c.noise)
    sec = render_section(st, sec_px, rng, bit_depth=c.bits, illumination_gradient=c.gradient * 0.5, blur_px=c.blur, noise=c.noise)
    truth = ground_truth(st, section_pixel_size_um=sec_px) | comm_max(st, sec_px)
    # the microscope is known from the file (SEM or optical); the contrast's polarity and focus not
    appearance = {"bse_jpeg": "sem", "optical_bright": "optical", "optical_halo": "optical"}.get(family, family)
    ms, mx = analyse_surface(refl, px, trans, appearance=appearance), analyse_section(sec, sec_px)
    qs, qx = ms.quality(), mx.quality()
    quality = {"flagged": qs["flagged"] | qx["flagged"], "intervals": qs["intervals"] | qx["intervals"]}
    ours = ms.to_dict() | mx.to_dict() | {QUALITY: quality}
    plain = plain_surface(refl, trans, px) | plain_section(sec, sec_px)
    return truth, ours, plain


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", type=int, default=len(CASES))
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--seed", default="1000",
                    help="seed, or comma-separated seeds: the worst over all of them (a case is named i@seed)")
    ap.add_argument("--families", default="optical,optical_bright,optical_halo,sem,bse_jpeg," + ",".join(SECTION_FAMILIES),
                    help="comma-separated appearance families")
    ap.add_argument("--quiet", action="store_true", help="only the worst-error tables")
    a = ap.parse_args()
    seeds = [int(x) for x in str(a.seed).split(",") if x.strip()]
    keys = list(GOALS)
    names = {"D": "D (rel)", "cv": "σd/D", "opening": "opening", "through": "through", "T": "T (rel)", "tcv": "σt/T",
             "pen": "pen. depth", "pen_f": "pen. frac", "comm": "joined", "cont": "continuity", "sup": "support D"}
    t0 = time.perf_counter()
    tables = []
    for family in a.families.split(","):
        worst_o: dict[str, tuple[float, str | None]] = {k: (0.0, None) for k in keys}
        worst_p: dict[str, tuple[float, str | None]] = {k: (0.0, None) for k in keys}
        missed: dict[str, list[tuple[str, str | None]]] = {k: [] for k in keys}
        for seed, i, c in ((seed, i, c) for seed in seeds for i, c in enumerate(CASES[: a.cases])):
            name = str(i) if len(seeds) == 1 else f"{i}@{seed}"
            truth, ours, plain = run_case(i, c, a.size, seed, family)
            eo, ep = errors(truth, ours), errors(truth, plain)
            if not a.quiet:
                print(
                    f"\n[{family}] case {name}: D={c.d_um} µm ({c.px_per_pore} px), CV={c.cv:.0%}, opening={c.opening:.0%}, "
                    f"through={c.through:.0%}, T/D={case_t_over_d(i, c, seed, family):.3g}, σt/T={c.t_cv:.0%}, blur={c.blur} px, "
                    f"noise={c.noise:.0%}, light ±{c.gradient:.0%}, {c.bits}-bit"
                )
                print(f"  {'metric':26s} {'truth':>10s} {'castrig':>10s} {'plain':>10s}")
                for k in ("opening_ratio", "mean_pore_diameter_um", "pore_diameter_std_um", "pore_count",
                          "through_pore_fraction", "mean_thickness_um", "thickness_std_um", "penetration_depth_um",
                          "penetration_fraction", "pore_communication", "pore_communication_max", "support_continuity"):
                    tv, ov, pv = truth.get(k), ours.get(k), plain.get(k)
                    f = lambda v: "—" if v is None or (isinstance(v, float) and math.isnan(v)) else (f"{v:10d}" if isinstance(v, int) else f"{v:10.4f}")
                    print(f"  {k:26s} {f(tv):>10s} {f(ov):>10s} {f(pv):>10s}")
                print("  errors   " + "  ".join(f"{k}: {eo[k]:.4f} (plain {ep[k]:.4f})" for k in keys))
            for k in keys:
                # NaN: the truth has no value (e.g. no neighbouring cavity pair) or the metric is
                # not measured in this family — skipped (a NaN used to reset the worst so far)
                if eo[k] > worst_o[k][0]:
                    worst_o[k] = (eo[k], name)
                if ep[k] > worst_p[k][0]:
                    worst_p[k] = (ep[k], name)
                if eo[k] > GOALS[k]:
                    missed[k].append((name, flagged_miss(k, truth, ours)))
        tables.append((family, worst_o, worst_p, missed))
    n = min(a.cases, len(CASES))
    over = f"{n} cases" if len(seeds) == 1 else f"{n} cases × seeds {','.join(map(str, seeds))}"
    print(f"\nworst error over {over} per appearance family ({time.perf_counter() - t0:.0f} s):")
    print("verdict: meets = every case within the goal; MISSES names each case outside it, with castrig's own\n"
          "quality flags on that metric (a flagged metric is never trusted by the verdict) or 'unflagged'")
    unflagged = within = 0
    for family, worst_o, worst_p, missed in tables:
        print(f"\n[{family}]")
        w = 5 if len(seeds) == 1 else 8
        print(f"  {'metric':10s} {'goal':>8s} {'castrig':>10s} {'case':>{w}s} {'plain':>10s} {'case':>{w}s}  verdict")
        for k in keys:
            o, p = worst_o[k], worst_p[k]
            if family in SECTION_FAMILIES and k in ("D", "cv", "opening", "through"):
                continue  # only the section is rendered in a section family
            ok = "meets" if o[0] <= GOALS[k] else "MISSES: " + "; ".join(
                f"case {i} {why or 'unflagged'}" for i, why in missed[k])
            unflagged += sum(why is None for _, why in missed[k])
            within += sum(why is not None and why.startswith("unflagged") for _, why in missed[k])
            pv = f"{p[0]:10.4f} {p[1]:>{w}s}" if p[1] is not None else f"{'—':>10s} {'':{w}s}"  # not measured by the plain recipe
            oc = f"{o[1]:>{w}s}" if o[1] is not None else f"{'—':>{w}s}"  # (no case above 0: none worst)
            print(f"  {names[k]:10s} {GOALS[k]:8.3f} {o[0]:10.4f} {oc} {pv}  {ok}")
    # the misses the verdict would trust: what a lab must not sign
    print(f"\nunflagged misses (metric × case outside its goal, no quality flag, the truth outside its 95 % interval: "
          f"a result the verdict would sign): {unflagged}; unflagged with the truth inside the interval: {within}")


if __name__ == "__main__":
    main()
