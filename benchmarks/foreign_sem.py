"""SEM-like top views from a generator of our own that is not the twin's, measured by castrig.

    python benchmarks/foreign_sem.py [--seed S] [--size PX]

The twin's SE renderer (castrig.sim.micrograph.render_surface_sem) is one view of what an SEM
shows; castrig's SEM path was tuned on it. Here each honeycomb is drawn independently: a
jittered hexagonal lattice (pitch 1.35 D, CV 5 %) of pores with a flat dark core, a bright SE
rim just inside each edge — a Gaussian band ``rim_w`` px wide whose peak stands ``rim_gain`` of
the film-to-core contrast above the film —, 3× supersampled, a Gaussian blur, Gaussian noise, 8
bit, no metadata. The pore's edge, where the film's top ends (DESIGN §4), is the rim's outer side:
the truth D is the drawn circle's, the opening ratio the supersampled mask's.

Printed per view: D and opening ratio read by castrig with ``--appearance sem`` and ``auto``
(which, for views whose flat cores fail the core test, measures as SEM where the ridge round
the pores is strong and as optical otherwise, flagging ``appearance_ambiguous``), against the truth; the goal of issue 16 is D within 2 %, opening
within 0.02. Recorded 2026-12-05 (seed 2, 768 px): castrig's SEM reading MISSES — D −1 % to −34 %
(worst: faint rims, gain 0.15, where the edge is put at the core's: radius −2 px whatever D),
opening up to 0.28 short, and at noise 0.08 no pore found at all. Since the fifth session of
2026-12-05 (edges: the noise of the smoothed image in the core and ridge tests, the pores' rim
vote on single bins where they are wider than the blur): noise 0.08 D −22 % (pores found,
``auto`` flags it), 40 px pores at gain 0.3 D −1.8 % (was −11 %); the rest as before, 12 of
14 views still MISS. ``auto`` reads 8 of the 14 as
optical, D 11-37 % short, 5 of them flagged appearance_ambiguous (a ridge from
edges.RIM_CLEAR is read as SEM whatever the cores: 4 views, flagged too). Left for the SEM lip model
(castrig.analysis.edges) and the auto test to learn. Where it comes from (2026-12-05): these rims
rise inward — at the lip a step of 0.37 of the rim's height, its peak rim_w/2 inside — while the
lip model's rim decays inward from its peak at the lip (the twin's); the fit puts the lip at the
rim's peak, ~0.8 px inside (gain 0.3, 20 px pores: D −7.8 %, unflagged, the truth outside its
95 % interval). Faint rims (gain 0.15: a ridge of 0.015 of the depth, under rim_decision's 0.025)
are measured rimless (the pores' fits vote against rims), the edge at the rim's inner, core-side
flank (D −21 %); the rim model forced on them (``lip_radii(rims=True)`` in the first pass, a
probe, not an option) gives D −7.4 % (20 px pores) and −5.3 % (40 px): the decision costs ~14
points there, the rim's shape the rest. Aligned on the drawn edges (gain 0.3, 20 px pores), the
blurred view peaks at the edge itself and falls to the core's half level 2.2 px inside; the lip
model fits that profile within 0.02 but puts its lip 0.85 px inside the edge. Tried, 2026-12-06
(a probe, not kept): the cavity's step held δ inside the lip in the last fit of every pore
(m = F + (c − F)·Φ((R − δ − ρ)/σ) + A·Q): δ = 2.25 px brings 7 of the 8 strong-rim views within
3 % (rim_w 3 still −8 %; 0.75 and 1.5 px move them either way, and applied from the first
stage on the rims vote away), but the fits' total cost does not choose δ (lowest at δ = 0 on all
but the 40 px views, over a grid 0–3.5 σ): what the model lacks is the rim's shape, rising
inward to a peak and then ramping down, not only where the step lies.
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import ndimage as ndi

FILM, CORE = 0.5, 0.15
PITCH_RATIO = 1.35


def sem_rims_over_flat_cores(seed: int, size: int = 512, d_px: float = 20.0, rim_gain: float = 0.3,
                             rim_w: float = 2.0, blur_px: float = 1.0, noise: float = 0.03) -> tuple[np.ndarray, dict]:
    """(8-bit image, truth) of one SEM-like view (see the module's docstring). Truth: ``d_px``,
    the mean diameter (px) of the pores wholly inside the field, and ``opening_ratio``."""
    rng = np.random.default_rng(seed)
    pitch, ss = PITCH_RATIO * d_px, 3
    img = np.full((size * ss, size * ss), FILM)
    pore = np.zeros(img.shape, bool)
    yy, xx = np.mgrid[0:size * ss, 0:size * ss] / ss
    inside_d = []
    row, y = 0, pitch / 2
    while y < size + pitch:
        x = (pitch / 2) * (row % 2)
        while x < size + pitch:
            cy, cx = y + rng.normal(0, 0.03 * pitch), x + rng.normal(0, 0.03 * pitch)
            r = d_px / 2 * (1 + rng.normal(0, 0.05))
            y0, y1 = int(max((cy - r - 2) * ss, 0)), int(min((cy + r + 2) * ss, size * ss))
            x0, x1 = int(max((cx - r - 2) * ss, 0)), int(min((cx + r + 2) * ss, size * ss))
            if y0 < y1 and x0 < x1:
                d = np.hypot(yy[y0:y1, x0:x1] - cy, xx[y0:y1, x0:x1] - cx) - r  # < 0 inside
                rim = FILM + rim_gain * (FILM - CORE) * np.exp(-((d + rim_w / 2) / (rim_w / 2)) ** 2)
                grey = np.maximum(CORE + (rim - CORE) * np.clip((d + 1.5 * rim_w) / rim_w, 0, 1), CORE)
                sub = img[y0:y1, x0:x1]
                sub[d < 0] = grey[d < 0]
                pore[y0:y1, x0:x1] |= d < 0
            if r < cy < size - r and r < cx < size - r:
                inside_d.append(2 * r)
            x += pitch
        y += pitch * math.sqrt(3) / 2
        row += 1
    img = img.reshape(size, ss, size, ss).mean(axis=(1, 3))
    img = ndi.gaussian_filter(img, blur_px) + rng.normal(0, noise, img.shape)
    truth = {"d_px": float(np.mean(inside_d)), "opening_ratio": float(pore.mean())}
    return np.clip(img * 255, 0, 255).astype(np.uint8), truth


VIEWS = [dict(d_px=d, rim_gain=g) for d in (12.0, 20.0, 40.0) for g in (0.15, 0.3, 0.5)] + [
    dict(d_px=20.0, rim_gain=0.3, rim_w=1.0), dict(d_px=20.0, rim_gain=0.3, rim_w=3.0),
    dict(d_px=20.0, rim_gain=0.3, blur_px=0.6), dict(d_px=20.0, rim_gain=0.3, blur_px=1.5),
    dict(d_px=20.0, rim_gain=0.3, noise=0.08)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=2)
    ap.add_argument("--size", type=int, default=768)
    a = ap.parse_args()
    from castrig.analysis import analyse_surface

    px = 0.1
    print(f"{'view':44s} {'sem D':>8s} {'open':>7s}   {'auto D':>8s} {'open':>7s} flags")
    worst = {"sem D": 0.0, "sem open": 0.0}
    for kw in VIEWS:
        img, truth = sem_rims_over_flat_cores(a.seed, a.size, **kw)
        d_um, o = truth["d_px"] * px, truth["opening_ratio"]
        sem = analyse_surface(img, px, None, appearance="sem")
        auto = analyse_surface(img, px, None, appearance="auto")
        e_d = (sem.mean_pore_diameter_um or 0) / d_um - 1
        e_o = (sem.opening_ratio or 0) - o
        worst["sem D"] = max(worst["sem D"], abs(e_d))
        worst["sem open"] = max(worst["sem open"], abs(e_o))
        name = ", ".join(f"{k} {v:g}" for k, v in kw.items())
        print(f"{name:44s} {e_d:+8.3f} {e_o:+7.3f}   {(auto.mean_pore_diameter_um or 0) / d_um - 1:+8.3f} "
              f"{(auto.opening_ratio or 0) - o:+7.3f} {auto.appearance}{' ' + ','.join(auto.flags) if auto.flags else ''}")
    verdict = "meets" if worst["sem D"] <= 0.02 and worst["sem open"] <= 0.02 else "MISSES"
    print(f"worst, --appearance sem: D {worst['sem D']:.3f} (goal 0.02), opening {worst['sem open']:.3f} (goal 0.02): {verdict}")


if __name__ == "__main__":
    main()
