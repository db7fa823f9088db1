"""Metamorphic checks of the surface analysis: the same micrograph, transformed, must measure
the same (issue 16; DESIGN §8: "metamorphic checks on real micrographs").

    python benchmarks/analysis_invariance.py [--micrographs DIR] [--quick]

Transformations of each image (the pixel size follows the image):
  up2        rescaled 2× up (bilinear), pixel size halved
  down2      rescaled 2× down (2×2 block mean), pixel size doubled — only when ≥ 9 px per pore
             remain (18 px per pore in the original)
  rot90      rotated by 90°
  gradient   multiplied by a linear illumination ramp of ±20 % across the field
  gain       grey levels × 0.6 + 15 % of full scale (gain and offset changed)

Goals: D within 2 % (relative), opening ratio within 2 points (absolute), pore count within
3 % (rescaling keeps the field, so the border pores are the same ones; a 2× block mean may drop
one row or column: the count may then change by the pores on that border only).

Images: the twin's top views (optical and SEM families, from castrig.sim.micrograph), and real
micrographs from ``--micrographs DIR`` or ``$CASTRIG_MICROGRAPHS``, else the MIT-licensed ones
shipped in benchmarks/micrographs (see its README.md: a ``manifest.yaml`` lists each file with its
pixel size, appearance, provenance and licence; files absent are skipped). The worst deviation of
each check is printed per image.
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
import sys

import numpy as np
from scipy import ndimage as ndi

from castrig.analysis import analyse_surface
from castrig.sim.micrograph import make_structure, render_surface, render_surface_sem

GOALS = {"D": 0.02, "opening": 0.02, "count": 0.03}
HERE = Path(__file__).resolve().parent


def _float(img: np.ndarray) -> tuple[np.ndarray, float]:
    """Float copy and the full scale of the image's type (1.0 for floats)."""
    a = np.asarray(img)
    full = float(np.iinfo(a.dtype).max) if a.dtype.kind in "ui" else 1.0
    return a.astype(np.float64), full


def _back(a: np.ndarray, like: np.ndarray) -> np.ndarray:
    like = np.asarray(like)
    if like.dtype.kind in "ui":
        info = np.iinfo(like.dtype)
        return np.clip(np.rint(a), info.min, info.max).astype(like.dtype)
    return a.astype(like.dtype)


def up2(img):
    a, _ = _float(img)
    h, w = a.shape
    # bilinear, pixel centres kept: new pixel k sits at old (k + 0.5) / 2 - 0.5
    y = (np.arange(2 * h) + 0.5) / 2 - 0.5
    x = (np.arange(2 * w) + 0.5) / 2 - 0.5
    yy, xx = np.meshgrid(y, x, indexing="ij")
    return _back(ndi.map_coordinates(a, [yy, xx], order=1, mode="nearest"), img)


def down2(img):
    a, _ = _float(img)
    h, w = (a.shape[0] // 2) * 2, (a.shape[1] // 2) * 2
    return _back(a[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3)), img)


def rot90(img):
    return np.ascontiguousarray(np.rot90(img))


def gradient(img):
    a, _ = _float(img)
    h, w = a.shape
    ramp = 1 + 0.2 * np.linspace(-1, 1, w)[None, :] * np.ones((h, 1))
    return _back(a * ramp, img)


def gain(img):
    a, full = _float(img)
    return _back(a * 0.6 + 0.15 * full, img)


TRANSFORMS = {"up2": (up2, 0.5), "down2": (down2, 2.0), "rot90": (rot90, 1.0), "gradient": (gradient, 1.0),
              "gain": (gain, 1.0)}


def measure(img, px, appearance):
    m = analyse_surface(img, px, appearance=appearance)
    return m.mean_pore_diameter_um, m.opening_ratio, m.pore_count


def deviations(img, px, appearance="optical", transforms=TRANSFORMS) -> dict:
    """{transform: (dD rel, d opening abs, d count rel)} against the untransformed image; a
    transform is skipped (None) when it would leave fewer than 9 px per pore."""
    d0, o0, n0 = measure(img, px, appearance)
    out = {}
    for name, (fn, k) in transforms.items():
        if d0 is None:
            out[name] = None
            continue
        if d0 / (px * k) < 9:
            # rescaling would leave too few pixels; at k = 1 the image itself is under-resolved
            out[name] = "under 9 px per pore after scaling" if k != 1 else "under 9 px per pore in the image itself"
            continue
        d, o, n = measure(fn(img), px * k, appearance)
        out[name] = (abs(d / d0 - 1) if d else math.inf, abs(o - o0) if o is not None else math.inf, abs(n - n0) / max(n0, 1))
    return {"base": (d0, o0, n0), **out}


def twin_images(quick: bool = False):
    """(name, image, pixel size, appearance) of the twin: optical and SEM, 12 and 24 px per pore."""
    cases = [(5.0, 24, 0.4, 1), (3.0, 12, 0.5, 2)] if not quick else [(5.0, 24, 0.4, 1)]
    size = 512 if quick else 1024
    for d_um, ppp, phi, seed in cases:
        for fam in ("optical", "sem"):
            rng = np.random.default_rng(seed)
            px = d_um / ppp
            st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=phi, field_um=size * px, cv=0.1)
            if fam == "sem":
                img, _ = render_surface_sem(st, px, rng)
            else:
                img, _ = render_surface(st, px, rng)
            yield f"twin-{fam}-{ppp}px", img, px, fam


def real_images(folder: Path | None):
    """(name, image, pixel size, appearance) listed in ``folder/manifest.yaml`` and present."""
    if folder is None:
        return
    if not (folder / "manifest.yaml").is_file():
        print(f"real micrographs: no manifest.yaml in {folder} (skipped; see benchmarks/micrographs/README.md)")
        return
    import yaml

    from castrig.tiffio import read_micrograph

    for e in yaml.safe_load((folder / "manifest.yaml").read_text(encoding="utf-8")).get("images", []):
        p = folder / e["file"]
        if not p.is_file():
            print(f"  (skipped {e['file']}: absent)")
            continue
        img, px, meta = read_micrograph(p)
        img = np.asarray(img)
        if e.get("crop"):  # rows to keep, e.g. above a data bar: [0, 890]
            img = img[e["crop"][0]: e["crop"][1]]
        yield e["file"], img, float(e.get("pixel_size_um") or px), e.get("appearance", "optical")


def report(name, dev) -> list[str]:
    d0, o0, n0 = dev["base"]
    lines = [f"{name}: D={d0 if d0 is None else round(d0, 4)} µm, opening={'—' if o0 is None else f'{o0:.4f}'}, pores={n0}"]
    bad = []
    for t, v in dev.items():
        if t == "base":
            continue
        if v is None or isinstance(v, str):
            lines.append(f"  {t:9s} skipped ({v or 'no pores measured'})")
            continue
        ok = v[0] <= GOALS["D"] and v[1] <= GOALS["opening"] and v[2] <= GOALS["count"]
        if not ok:
            bad.append(t)
        lines.append(f"  {t:9s} dD {v[0]:7.2%}  d opening {100 * v[1]:5.2f} pt  d count {v[2]:6.2%}  {'ok' if ok else 'MISSES'}")
    return lines + ([f"  worst: D {max(v[0] for k, v in dev.items() if k != 'base' and isinstance(v, tuple)):.2%}, opening "
                     f"{100 * max(v[1] for k, v in dev.items() if k != 'base' and isinstance(v, tuple)):.2f} pt, count "
                     f"{max(v[2] for k, v in dev.items() if k != 'base' and isinstance(v, tuple)):.2%}"] if any(isinstance(v, tuple) for k, v in dev.items() if k != 'base') else [])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--micrographs", type=Path, default=os.environ.get("CASTRIG_MICROGRAPHS") or HERE / "micrographs",
                    help="folder with manifest.yaml and real micrographs (default $CASTRIG_MICROGRAPHS, else the "
                         "ones shipped in benchmarks/micrographs)")
    ap.add_argument("--quick", action="store_true", help="one small twin image per family")
    a = ap.parse_args()
    print(f"goals: D {GOALS['D']:.0%}, opening {100 * GOALS['opening']:.0f} pt, count {GOALS['count']:.0%}")
    for name, img, px, app in twin_images(a.quick):
        print("\n".join(report(name, deviations(img, px, app))))
    folder = Path(a.micrographs) if a.micrographs else None
    if folder is None:
        print("real micrographs: none (give --micrographs DIR or $CASTRIG_MICROGRAPHS; see benchmarks/micrographs/README.md)")
    else:
        for name, img, px, app in real_images(folder):
            print("\n".join(report(name, deviations(img, px, app))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
