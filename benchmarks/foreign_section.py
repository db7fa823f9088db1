"""Section micrographs from a generator of our own that is not the twin's, measured by castrig.

    python benchmarks/foreign_section.py [--seed S[,S2...]] [--views i,j,...]

castrig's section path (castrig.analysis.section.analyse_section) was tuned on the twin's
renderer (castrig.sim.micrograph.render_section). Here each section is drawn independently
(numpy and scipy only, nothing of castrig.sim), in output pixels, 3× supersampled, then
averaged down, so that the truth is geometric:

- background on one side, max(20, 0.4–0.9 T0) rows, then the film: its top
  ``y_top(x) = y_int − T(x)``, ``T(x) = T0·(1 + cv·g(x))``, g a sum of six sines 0.4–1.5 image
  widths long normalised to mean 0 and s.d. 1 over the columns; the interface ``y_int`` one flat
  row. T0 is 20–80 px, the pixel size 2 µm / T0, the width max(1200, 16 T0) px;
- the film's cavities: spheres (diameter ``cav_ratio``·T0, 0.85 unless the view says, s.d. 8 %,
  pitch 1.1–1.4 diameters) cut by the section at a random distance from their centres (cut radius
  ≥ 0.3 of the sphere's), centres 0.15–``cav_depth`` (0.75) of the sphere's radius below the top
  — the shallow ones open to the top as notches; a bottom wall of max(2 px, 0.1 T0) is kept
  over the interface (``wall=-0.15``: cavities reaching 0.15 T0 past it are cut flat by it, the
  hole then sitting on the interface; ``bilayer``: a second, deeper layer);
- the support: a grainy matrix with discs (diameter ``sup_ratio``·T0, 1.2 unless the view says,
  CV 15 %; ``aspect``: ellipses of aspect up to 1.5, the same area) placed by random sequential
  addition, 30 % porosity, max(3.2 support D, 60 px) deep; along the interface its SURFACE pores,
  discs the interface cuts (centre 0.25 r above to 0.45 r below it, 1.3–2.5 D apart). A surface
  pore is filled by polymer (probability ``fill_prob``, 0.7) from the interface down to a flat
  level 0.3–0.85 of its depth: the polymer tongue is the disc's part above that level, its sides
  the pore's curved walls (the twin's tongues are flat-bottomed rectangles in a pore-free
  matrix, its support pores all below the interface). Unfilled surface pores stay open under
  the film.

Appearances (values in [0, 1]; then a ±4 % light gradient across, Gaussian blur ``blur`` (1 px),
noise ``noise`` (0.02), the artefacts, 8 bit):
  se_sem       SE-SEM: background 0.05; film 0.55 with edge brightening — a band of
               ``rim_gain`` (0.6) × the film-to-background contrast at every free surface of the
               polymer (its top, the cavities' walls, a tongue's level and the film's underside
               over an open surface pore), decaying inward over ``rim_w`` (1.5) px —, the
               cavities 0.10 shaded up to 0.22 towards their bottoms (the far wall); support 0.42
               with grain texture (s.d. 10 %), pores 0.10 with a rim of 0.3 of their contrast;
  se_bright    se_sem with rim_gain 1.0 (the edges twice the film's contrast);
  se_strong    rim_gain 1.0 over rim_w 3 px (a wide interaction volume: thin walls glow);
  se_flip      se_sem upside down (background below);
  film_dark    film 0.35 darker than a grainy support 0.62 (no rims);
  dark_overlap film 0.35, support 0.55 with a coarse texture of s.d. 25 % (its dark grains reach
               the film's level);
  embedded     optical, resin-embedded: the background BRIGHT (resin 0.85), the cavities and the
               support's pores filled with the same resin, film 0.30, support 0.55;
  charging     se_sem with scan-line noise (per-row offsets, s.d. 0.03) and 12 charging streaks
               (1–3 rows, +0.10–0.25 decaying along the scan over 50–300 px, anywhere);
  overlap      film 0.70, support 0.55 with a coarse texture of s.d. 25 % (its bright grains reach
               the film's level);
  jpeg, jpeg40 se_sem, 8 bit, then a JPEG-like 8×8 block-DCT quantisation with the JPEG luminance
               table at quality 60 or 40.

Truth (from the geometry, never from pixels), at the output columns x = k + 0.5:
  T, σt      mean and population s.d. of T(x) = y_int − y_top(x) over ALL columns: the film's
             envelope thickness, bridging the cavities cut by the section, those open to the top
             as well. This is castrig's definition (section.py: "the upper surface is the
             *envelope* bridging the notches"; DESIGN §4: "from its upper surface envelope down
             to the support") and the twin's (ground_truth: ``thickness_at`` over every column).
             The mean over only the columns where no cavity opens the top is printed as
             ``T_closed`` (relative to T): how far the other reading of "thickness" lies.
  pen. depth mean over the tongues seen (opening at the interface ≥ 3 px, as the twin's truth) of
             each tongue's depth below the interface: its flat fill level (over most of its
             central half, so castrig's "median depth over its central half" reads the same).
  pen. frac  sum over the tongues of their opening at the interface (clipped to the image) / the
             width: the share of the interface's length entered. castrig measures each tongue's
             width at HALF its depth, the same for the twin's rectangles; under curved pore walls
             the two differ: ``f½`` prints (width at half depth − opening)/width summed, the
             truth read castrig's way minus the truth used.
  support D  mean equivalent diameter (2·√(ab) for ellipses) of the support pores wholly inside
             the support region (not cut by the interface, the image's sides or its bottom): the
             surface pores, filled or open, are cut by the interface and not counted.
Errors as in analysis_accuracy.py, signed: T, penetration depth, support D relative; σt/T (castrig's
σt over its own T, minus the truth's) and fraction absolute (with no tongue drawn: castrig's
depth over the support D). A metric not measured where the truth has one prints "—".
Goals (analysis_accuracy.GOALS): T 0.03, σt/T 0.05, pen. depth 0.10, pen. fraction 0.03,
support D 0.05. Columns ``tongues`` and ``pores``: castrig's penetration_sites and
support_pore_count / the truth's tongues seen and whole support pores. ``misses``: a letter per
metric outside its goal (t T, s σt/T, p depth, f fraction, d support D): lower case where castrig
flagged that metric (quality.SECTION_FLAG_METRICS), with "?" where it did not but the truth lies
inside its 95 % interval, CAPITAL where it did neither — a result a verdict would sign. The
final lines: the worst error per metric over all views, and over the views where castrig left
that metric unflagged.

Recorded 2026-12-05 (seed 3 by default, 8–10 s; seeds 1–8, 55–80 s). Against castrig af69438: 19
unflagged misses with the truth outside castrig's interval, 39 with it inside; against d1a7aa9 (a
section straightened only where its bottom edge lies on the bend more than on a straight line):
21 and 37 — view 19@4 (overlap), a flat section af69438 straightened by a false 12 px wave (T
−24 %, σt/T +0.25), is now measured as it lies, its interface still read through the cavities'
row (T −17 %, σt/T +0.09, penetration depth −31 % and fraction +0.26, all unflagged); against
f647a1b (the film's level from its plain body where a glow sets the columns' maxima): 7 and 38,
se_strong within the goals for T (−0.1 to −2.8 %), the signed misses left all overlap's; against
ab9e60e (the film's level from its smooth body where bright support grains set it): 0 and 41,
overlap's T within 1 % (the worst unflagged T over all views 3.9 %, charging, the truth inside
its interval; σt/T within 0.022); against the section straightened by a path paying half a
noise unit per pixel of level change once its gate has found a wave (fifth session of
2026-12-05, for the twin's sec_wavy): 0 and 42 — three flat se_strong views (seeds 5-7), whose
glowing top edges pass the wave's gate (evidence 1.2–1.7, a flat twin section's is 1.02 or
less), are straightened by 4–5 px and kept (seeds 6 and 7 were undone before): T −0.1/−2.3 % →
−0.7/−3.0 %, penetration depth +12/+13 % → +15 %. castrig
meets every goal on the moderate SE views (se_sem, se_flip, many cavities open to the top,
bilayer, cavities sitting on the interface, no tongues), on film_dark, jpeg and jpeg40: T within
2 %, σt/T within 0.02, penetration depth within 8 % (jpeg40 −11 % once, flagged), support D −5 to
+2 % — mostly short in the SE views, whose pore rims pull the half-level edge into the pore
(ellipses −2.4 to −4.8 %). Where it misses and we believe castrig is wrong (the geometric truth
there is not in question):
- se_strong (until f647a1b): T off in all 8 seeds, −17 to −44 % in 7 (unflagged in 6; seed 6
  −3.7 %, flagged interface_lost): the walls between cavities, glowing over their whole height,
  set the film's level; the plain film, at 0.8 of it, fell under the film threshold and was read
  as support, the interface put at the cavities' bottoms; penetration fraction +0.09 to +0.38,
  σt/T up to +0.12. Since f647a1b: T −0.1 to −2.8 %, fraction within 0.012, penetration depth
  +12 to +19 % (the truth inside the interval): the interface was read at half the film's
  glow-lifted upper quartile, 1–2.5 px high. Since 2026-12-05 (the interface at half the film's
  grey just above it, the top at half the glow's peak, where the plain film lies under the
  film's found level): T +0.3 to +2.2 %, penetration depth +1.0 to +11.3 % (over 10 % in seed 1
  only), fraction within 0.010.
- overlap (bright support grains at the film's level), T0 40 px, until ab9e60e: T −17 % (seed 4)
  and −24 % (seed 6) unflagged, σt/T up to +0.09: the grains' eroded maxima set the film's level,
  the film fell under its threshold in speckles, most of its bottom edge ran into the grains and
  was taken for tongues, and the interface was read through the few ragged columns left, tilted
  across the film. Since ab9e60e: T within 1 %, penetration depth to +10 %, fraction to +0.10
  (the truth inside the interval);
  penetration depth −31 % (seed 4) and +32 % (seed 6, truth inside the interval); support D to
  −14 % (texture grains counted as pores), T0 25 px to −12 %, mostly with the truth inside the
  interval or flagged interface_lost; dark_overlap: support D −11 %. With the grey test below
  (2026-12-05) a grain under a tongue passes with it more often: seed 1 penetration depth +10 →
  +21 %, fraction +0.008 → +0.034 (truth inside the interval), seed 4 depth +3 → +8 %.
- se_bright: penetration depth +2 to +14 %; seed 5: 6 of 15 tongues missed, fraction −0.17.
  The glow at a tongue's free bottom (facing the pore it did not fill) makes it brighter than
  the film at the same distance from its edge, and the grey test that tells polymer from the
  support's grains (section_tongues._uniform_tongues) counted that as spread, as a grain's. Since
  2026-12-05 only what lies under the film's grey counts: every tongue of seeds 1–8 found,
  penetration depth +1.6 to +9.6 %, fraction within 0.010 (se_sem: 1 of 10–12 tongues missed in
  five seeds before, none now).
- charging, T0 40 px: 1–4 of 10–13 tongues missed in seeds 1–5, fraction −0.05 to −0.15
  (unflagged, the truth inside castrig's wide interval); the per-row offsets (probes, seeds
  1–5: offsets alone −0.01 to −0.34, streaks alone −0.05 to +0.02) added spread to the glowing
  tongues' grey. Since the grey test above: seeds 1–8 all tongues but 2 of 12 (seed 1) found,
  fraction −0.10 (seed 1), else within 0.024, penetration depth −8.6 to +7.9 %.
embedded (a bright background) was flagged no_background in every seed until 2026-12-05, its
numbers meaningless (T +190 to +220 %): the resin's spread, under the ±4 % light gradient, was
0.09–0.15 of the image's contrast, over the 0.08 by which a background was told from a bright
support's end. A bright end is now background also where its spread, the light's slow change
along the rows taken out, is its own white noise (section_levels._negative): over seeds 1–8 all 16
embedded views are read as their positive and meet every goal (T within 1.6 %, σt/T 0.01,
penetration depth 5.3 %, fraction 0.018, support D 1.5 %); the other views are unchanged.
Where the truth could be read otherwise: T_closed lies within
±1.8 % of T (the notches fall at random on a smooth profile), so the envelope/closed-columns
choice makes none of the misses; f½ reaches −0.02 (two thirds of the fraction's goal), so a
fraction error of that size may be the width-at-half-depth definition rather than castrig's.
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np
from scipy import ndimage as ndi
from scipy.fft import dctn, idctn

SS = 3
GOALS = {"T": 0.03, "tcv": 0.05, "pen": 0.10, "pen_f": 0.03, "sup": 0.05}
METRIC = {"T": "mean_thickness_um", "tcv": "thickness_std_um", "pen": "penetration_depth_um",
          "pen_f": "penetration_fraction", "sup": "support_pore_diameter_um"}

SE = dict(bg=0.05, film=0.55, hole=0.10, hole_shade=0.12, sup=0.42, spore=0.10, tex=0.10, grain=2.5,
          rim_gain=0.6, rim_w=1.5, sup_rim=0.3)
APPEARANCES = {
    "se_sem": SE,
    "se_flip": SE | dict(flip=True),
    "film_dark": dict(bg=0.05, film=0.35, hole=0.08, sup=0.62, spore=0.15, tex=0.12, grain=2.5),
    "embedded": dict(bg=0.85, film=0.30, hole=0.85, sup=0.55, spore=0.85, tex=0.08, grain=2.0),
    "charging": SE | dict(line_noise=0.03, streaks=12),
    "overlap": dict(bg=0.06, film=0.70, hole=0.10, sup=0.55, spore=0.15, tex=0.25, grain=4.0),
    "jpeg": SE | dict(jpeg=60),
    "jpeg40": SE | dict(jpeg=40),
    "se_bright": SE | dict(rim_gain=1.0),
    "se_strong": SE | dict(rim_gain=1.0, rim_w=3.0),
    "dark_overlap": dict(bg=0.05, film=0.35, hole=0.08, sup=0.55, spore=0.15, tex=0.25, grain=4.0),
}


def smooth_profile(rng: np.random.Generator, w: int) -> np.ndarray:
    """Six sines 0.4–1.5 widths long at the columns' centres, mean 0, s.d. 1."""
    x = np.arange(w) + 0.5
    g = sum(rng.normal() * np.sin(2 * math.pi * x / (rng.uniform(0.4, 1.5) * w) + rng.uniform(0, 2 * math.pi))
            for _ in range(6))
    return (g - g.mean()) / g.std()


def jpeg_like(img8: np.ndarray, quality: int) -> np.ndarray:
    """8×8 block DCT quantised with the JPEG luminance table at ``quality`` (no entropy coding:
    the loss is all in the quantisation)."""
    q0 = np.array([[16, 11, 10, 16, 24, 40, 51, 61], [12, 12, 14, 19, 26, 58, 60, 55],
                   [14, 13, 16, 24, 40, 57, 69, 56], [14, 17, 22, 29, 51, 87, 80, 62],
                   [18, 22, 37, 56, 68, 109, 103, 77], [24, 35, 55, 64, 81, 104, 113, 92],
                   [49, 64, 78, 87, 103, 121, 120, 101], [72, 92, 95, 98, 112, 100, 103, 99]], float)
    s = 5000 / quality if quality < 50 else 200 - 2 * quality
    q = np.maximum(np.floor((q0 * s + 50) / 100), 1)
    h, w = img8.shape
    H, W = -(-h // 8) * 8, -(-w // 8) * 8
    a = np.pad(img8.astype(float) - 128, ((0, H - h), (0, W - w)), mode="edge")
    b = a.reshape(H // 8, 8, W // 8, 8).transpose(0, 2, 1, 3)
    c = dctn(b, axes=(2, 3), norm="ortho")
    c = np.round(c / q) * q
    out = idctn(c, axes=(2, 3), norm="ortho").transpose(0, 2, 1, 3).reshape(H, W)[:h, :w] + 128
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def draw_section(seed: int, t_px: float = 40.0, t_cv: float = 0.06, cav_ratio: float = 0.85, sup_ratio: float = 1.2,
                 fill_prob: float = 0.7, aspect: float = 1.0, bilayer: bool = False, cav_depth: float = 0.75,
                 wall: float | None = None, blur: float = 1.0, noise: float = 0.02,
                 look: str = "se_sem") -> tuple[np.ndarray, dict]:
    """(8-bit image, truth in px) of one section (see the module's docstring)."""
    ap = APPEARANCES[look]
    rng = np.random.default_rng(seed)
    w = int(max(1200, 16 * t_px))
    g = smooth_profile(rng, w)
    t_col = t_px * (1 + t_cv * g)  # T(x) at the columns' centres, px
    top_margin = max(20.0, rng.uniform(0.4, 0.9) * t_px)
    y_int = top_margin + float(t_col.max())
    ds = sup_ratio * t_px
    depth = max(3.2 * ds, 60.0)
    h = int(math.ceil(y_int + depth))
    # supersampled coordinates (output px)
    ys = (np.arange(h * SS) + 0.5) / SS
    xs = (np.arange(w * SS) + 0.5) / SS
    t_ss = np.interp(xs, np.arange(w) + 0.5, t_col)
    y_top_ss = y_int - t_ss
    Y = ys[:, None]
    above = Y < y_top_ss[None, :]  # background (before cavities)
    film = ~above & (Y < y_int)
    support = np.broadcast_to(Y >= y_int, above.shape)

    # --- film cavities
    dc = cav_ratio * t_px
    cav = np.zeros(film.shape, bool)
    cav_shade = np.zeros(film.shape)
    layers = [(0.15, cav_depth)] + ([(1.6, 2.0)] if bilayer else [])
    wall = max(2.0, 0.1 * t_px) if wall is None else wall * t_px  # px of film kept under a cavity
    cavities = []
    for lo, hi in layers:
        x = rng.uniform(0, dc)
        while x < w + dc:
            R = dc / 2 * (1 + rng.normal(0, 0.08))
            a = R * math.sqrt(1 - rng.uniform(0, 0.95) ** 2)  # cut radius
            cx = x + rng.normal(0, 0.05 * dc)
            ytop_c = y_int - float(np.interp(cx, np.arange(w) + 0.5, t_col))
            cy = ytop_c + rng.uniform(lo, hi) * R
            cy = min(cy, y_int - wall - a)  # the bottom wall (wall < 0: cut flat by the interface)
            ok = a >= 0.3 * R and all(math.hypot(cx - px_, cy - py_) >= a + pa + max(1.5, 0.06 * dc)
                                      for px_, py_, pa in cavities)
            if ok:
                cavities.append((cx, cy, a))
                r0, r1 = int(max((cy - a - 1) * SS, 0)), int(min((cy + a + 1) * SS, h * SS))
                c0, c1 = int(max((cx - a - 1) * SS, 0)), int(min((cx + a + 1) * SS, w * SS))
                if r0 < r1 and c0 < c1:
                    d = np.hypot(ys[r0:r1, None] - cy, xs[None, c0:c1] - cx)
                    inside = (d < a) & ~above[r0:r1, c0:c1] & (ys[r0:r1, None] < y_int)
                    cav[r0:r1, c0:c1] |= inside
                    cav_shade[r0:r1, c0:c1] = np.where(inside, np.clip((ys[r0:r1, None] - cy) / a, 0, 1),
                                                       cav_shade[r0:r1, c0:c1])
            x += dc * rng.uniform(1.1, 1.4)
    film &= ~cav
    # columns where a cavity opens the top (output columns: any supersampled column in it)
    open_ss = np.zeros(w * SS, bool)
    yt = y_top_ss
    for cx, cy, a in cavities:
        open_ss |= (np.abs(xs - cx) < a) & (cy - np.sqrt(np.clip(a * a - (xs - cx) ** 2, 0, None)) < yt)
    open_col = open_ss.reshape(w, SS).any(axis=1)

    # --- support pores: surface pores cut by the interface, then the bulk
    pores = []  # (cx, cy, a, b, theta, surface)
    x = rng.uniform(0, ds)
    while x < w + ds:
        r = ds / 2 * (1 + rng.normal(0, 0.15))
        cy = y_int + rng.uniform(-0.25, 0.45) * r
        if r > 2:
            pores.append((x, cy, r, r, 0.0, True))
        x += ds * rng.uniform(1.3, 2.5)
    area, target = 0.0, 0.3 * w * depth
    for _ in range(4000):
        if area >= target:
            break
        r = ds / 2 * float(np.exp(rng.normal(0, 0.15)))
        ar = rng.uniform(1.0, aspect)
        a_, b_ = r * math.sqrt(ar), r / math.sqrt(ar)  # the same area as the disc
        cx, cy = rng.uniform(-a_, w + a_), y_int + rng.uniform(a_ + 0.12 * ds, depth + a_)
        if all(math.hypot(cx - p[0], cy - p[1]) >= a_ + p[2] + 0.12 * ds for p in pores):
            pores.append((cx, cy, a_, b_, rng.uniform(0, math.pi), False))
            area += math.pi * a_ * b_
    spore = np.zeros(film.shape, bool)
    tongue = np.zeros(film.shape, bool)
    fills = []  # (opening lo, hi, depth px, half-depth lo, hi)
    for cx, cy, a_, b_, th, surf in pores:
        r0, r1 = int(max((cy - a_ - 1) * SS, 0)), int(min((cy + a_ + 1) * SS, h * SS))
        c0, c1 = int(max((cx - a_ - 1) * SS, 0)), int(min((cx + a_ + 1) * SS, w * SS))
        if not (r0 < r1 and c0 < c1):
            continue
        dy, dx = ys[r0:r1, None] - cy, xs[None, c0:c1] - cx
        u, v = dx * math.cos(th) + dy * math.sin(th), -dx * math.sin(th) + dy * math.cos(th)
        inside = ((u / a_) ** 2 + (v / b_) ** 2 < 1) & support[r0:r1, c0:c1]
        if surf and rng.random() < fill_prob:
            bottom = cy + a_ - y_int  # the pore's depth below the interface
            fd = rng.uniform(0.3, 0.85) * bottom
            tg = inside & (ys[r0:r1, None] < y_int + fd)
            tongue[r0:r1, c0:c1] |= tg
            inside &= ~tg
            half = math.sqrt(max(a_ * a_ - (y_int - cy) ** 2, 0))
            zh = y_int + fd / 2 - cy
            halfh = math.sqrt(max(a_ * a_ - zh * zh, 0))
            fills.append((cx - half, cx + half, fd, cx - halfh, cx + halfh))
        spore[r0:r1, c0:c1] |= inside
    # truth (px)
    vis = [(min(hi, w) - max(lo, 0), d, min(h2, w) - max(l2, 0)) for lo, hi, d, l2, h2 in fills]
    seen = [d for o, d, _ in vis if o >= 3]
    whole = []
    for cx, cy, a_, b_, th, surf in pores:
        ex = math.hypot(a_ * math.cos(th), b_ * math.sin(th))  # half extents across and down
        ey = math.hypot(a_ * math.sin(th), b_ * math.cos(th))
        if not surf and cx - ex >= 0 and cx + ex <= w and cy - ey >= y_int and cy + ey <= h:
            whole.append(2 * math.sqrt(a_ * b_))
    truth = {"T": float(t_col.mean()), "tcv": float(t_col.std() / t_col.mean()),
             "T_closed": float(t_col[~open_col].mean()) if (~open_col).any() else math.nan,
             "pen": float(np.mean(seen)) if seen else 0.0,
             "pen_f": float(sum(max(o, 0) for o, _, _ in vis) / w),
             "pen_f_half": float(sum(max(o, 0) for _, _, o in vis) / w),
             "sup": float(np.mean(whole)) if whole else None, "n_sup": len(whole), "n_tongues": len(seen),
             "w": w, "h": h, "y_int": y_int, "tongues": [(lo, hi, d) for lo, hi, d, _, _ in fills]}

    # --- grey levels
    img = np.full(film.shape, ap["bg"])
    fv = ap["film"]
    img[film] = fv
    img[tongue] = fv
    hole = cav & ~above
    img[hole] = ap["hole"] + ap.get("hole_shade", 0.0) * cav_shade[hole]
    tex = ndi.gaussian_filter(rng.standard_normal((h, w)), ap["grain"])
    tex = np.repeat(np.repeat(tex / tex.std(), SS, 0), SS, 1)
    matrix = support & ~spore & ~tongue
    img[matrix] = ap["sup"] * (1 + ap["tex"] * tex[matrix])
    img[spore] = ap["spore"]
    if ap.get("rim_gain"):
        # SE edge brightening: peaks at the film's free surfaces (top, cavity walls), decays inward
        # (free: background, the film's cavities, and the support's empty pores — under a film
        # bridging an open surface pore and under a tongue's level the polymer faces them too)
        free = ndi.distance_transform_edt(~(above | hole | spore)) / SS  # px from the nearest free surface
        fm = film | tongue
        img[fm] += ap["rim_gain"] * (fv - ap["bg"]) * np.exp(-free[fm] / ap["rim_w"])
        ds_ = ndi.distance_transform_edt(~spore) / SS
        img[matrix] += ap["sup_rim"] * (ap["sup"] - ap["spore"]) * np.exp(-ds_[matrix] / ap["rim_w"])
    img = img.reshape(h, SS, w, SS).mean(axis=(1, 3))
    # light: a gentle linear gradient, blur, noise, scan artefacts
    img *= 1 + 0.08 * ((np.arange(w) + 0.5) / w - 0.5)[None, :]
    img = ndi.gaussian_filter(img, blur) + rng.normal(0, noise, img.shape)
    if ap.get("line_noise"):
        img += rng.normal(0, ap["line_noise"], (h, 1))
        for _ in range(ap["streaks"]):
            r, c = rng.integers(0, h), rng.integers(0, w)
            ln = rng.uniform(50, 300)
            tail = rng.uniform(0.1, 0.25) * np.exp(-(np.arange(w - c)) / ln)
            rr = slice(r, min(r + rng.integers(1, 4), h))
            img[rr, c:] += tail[None, :]
    img8 = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if ap.get("jpeg"):
        img8 = jpeg_like(img8, ap["jpeg"])
    if ap.get("flip"):
        img8 = img8[::-1].copy()
    return img8, truth


VIEWS = [
    dict(look="se_sem", t_px=40.0),
    dict(look="se_sem", t_px=20.0, blur=0.7),
    dict(look="se_sem", t_px=80.0, blur=2.0, t_cv=0.04),
    dict(look="se_bright", t_px=30.0),
    dict(look="se_strong", t_px=30.0),
    dict(look="se_flip", t_px=40.0),
    dict(look="se_sem", t_px=40.0, cav_ratio=1.1, cav_depth=0.35),
    dict(look="se_sem", t_px=45.0, bilayer=True, cav_ratio=0.45, t_cv=0.10),
    dict(look="se_sem", t_px=40.0, cav_depth=1.2, wall=-0.15),
    dict(look="se_sem", t_px=50.0, aspect=1.5, fill_prob=0.9),
    dict(look="se_sem", t_px=40.0, fill_prob=0.0),
    dict(look="film_dark", t_px=30.0),
    dict(look="film_dark", t_px=60.0, blur=1.5),
    dict(look="film_dark", t_px=20.0, sup_ratio=2.5, cav_ratio=0.6, noise=0.03),
    dict(look="dark_overlap", t_px=40.0),
    dict(look="embedded", t_px=40.0),
    dict(look="embedded", t_px=25.0, noise=0.04),
    dict(look="charging", t_px=40.0),
    dict(look="charging", t_px=20.0),
    dict(look="overlap", t_px=40.0),
    dict(look="overlap", t_px=25.0, sup_ratio=1.6),
    dict(look="jpeg", t_px=30.0),
    dict(look="jpeg40", t_px=20.0),
]


def view_name(kw: dict) -> str:
    return " ".join([kw["look"]] + [f"{k}={v:g}" if not isinstance(v, bool) else k
                                    for k, v in kw.items() if k != "look"])


def errors(tr: dict, m, px: float) -> tuple[dict, dict]:
    """(signed errors, truths in castrig's units) of one view; a metric castrig did not measure
    where the truth has a value: inf."""
    got = {k: getattr(m, METRIC[k]) for k in GOALS}
    tru = {"T": tr["T"] * px, "tcv": tr["tcv"] * tr["T"] * px, "pen": tr["pen"] * px, "pen_f": tr["pen_f"],
           "sup": tr["sup"] * px if tr["sup"] else None}
    err = {}
    for k in GOALS:
        g = got[k]
        if tru[k] is None:
            continue
        if g is None or (k == "tcv" and not got["T"]):
            err[k] = math.inf
        elif k == "tcv":
            err[k] = g / got["T"] - tr["tcv"]
        elif k == "pen_f":
            err[k] = g - tru[k]
        elif k == "pen" and not tru[k]:
            err[k] = g / (tru["sup"] or math.inf)  # no tongue drawn: castrig's depth / support D
        else:
            err[k] = g / tru[k] - 1
    return err, tru


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", default="3", help="seed, or comma-separated seeds (the worst over all; views named i@seed)")
    ap.add_argument("--views", default="", help="comma-separated view indices (default: all)")
    a = ap.parse_args()
    from castrig.analysis.section import analyse_section

    idx = [int(i) for i in a.views.split(",") if i.strip()] or list(range(len(VIEWS)))
    seeds = [int(x) for x in str(a.seed).split(",") if x.strip()]
    letters = {"T": "t", "tcv": "s", "pen": "p", "pen_f": "f", "sup": "d"}
    t0 = time.perf_counter()
    print(f"{'#':>2s} {'view':48s} {'T':>7s} {'T_closed':>8s} {'σt/T':>7s} {'pen d':>7s} {'pen f':>7s} {'f½':>6s} "
          f"{'sup D':>7s} {'tongues':>7s} {'pores':>5s} {'misses':8s} castrig flags")
    worst = {k: (0.0, None) for k in GOALS}
    worst_unflagged = {k: (0.0, None) for k in GOALS}
    signed = inside_iv = 0
    for seed, j in ((seed, j) for seed in seeds for j in idx):
        kw, i = VIEWS[j], (str(j) if len(seeds) == 1 else f"{j}@{seed}")
        img, tr = draw_section(seed * 1000 + j, **kw)
        px = 2.0 / kw["t_px"]  # a 2 µm film (the pixel size: 25–100 nm)
        m = analyse_section(img, px)
        q = m.quality()
        err, tru = errors(tr, m, px)
        marks = ""
        for k, e in err.items():
            if abs(e) > worst[k][0]:
                worst[k] = (abs(e), i)
            flagged = bool(q["flagged"].get(METRIC[k]))
            if not flagged and abs(e) > worst_unflagged[k][0]:
                worst_unflagged[k] = (abs(e), i)
            if abs(e) <= GOALS[k]:
                continue
            iv = q["intervals"].get(METRIC[k])
            inside = iv is not None and iv[0] <= tru[k] <= iv[1]
            if flagged or math.isinf(e):
                marks += letters[k]
            elif inside:
                marks += letters[k] + "?"
                inside_iv += 1
            else:
                marks += letters[k].upper()
                signed += 1
        cell = {k: ("n/a" if k not in err else "—" if math.isinf(err[k]) else f"{err[k]:+.3f}") for k in GOALS}
        print(f"{i:>2s} {view_name(kw):48s} {cell['T']:>7s} {tr['T_closed'] / tr['T'] - 1:+8.3f} {cell['tcv']:>7s} "
              f"{cell['pen']:>7s} {cell['pen_f']:>7s} {tr['pen_f_half'] - tr['pen_f']:+6.3f} {cell['sup']:>7s} "
              f"{m.penetration_sites:3d}/{tr['n_tongues']:<3d} {m.support_pore_count:2d}/{tr['n_sup']:<2d} "
              f"{marks or '-':8s} {','.join(q['flags']) or '-'}")
    names = {"T": "T", "tcv": "σt/T", "pen": "pen. depth", "pen_f": "pen. fraction", "sup": "support D"}
    print(f"\n({time.perf_counter() - t0:.0f} s, seed {a.seed}; T, pen. depth, support D relative; σt/T, fraction "
          f"absolute; T_closed and f½: the truth read the other way, see the docstring)")
    for k in GOALS:
        (v, i), (vu, iu) = worst[k], worst_unflagged[k]
        print(f"worst {names[k]:14s} {v:8.3f} (view {i}; goal {GOALS[k]:.2f}): {'meets' if v <= GOALS[k] else 'MISSES'}"
              f"   unflagged {vu:7.3f} (view {iu}): {'meets' if vu <= GOALS[k] else 'MISSES'}")
    print(f"misses castrig did not flag: {signed} with the truth outside its 95 % interval (a result a verdict would "
          f"sign), {inside_iv} with the truth inside it")


if __name__ == "__main__":
    main()
