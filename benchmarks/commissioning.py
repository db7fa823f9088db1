"""Commissioning accuracy on the twin: camera calibration and the chamber fit (issue 18).

    python benchmarks/commissioning.py [--calibration] [--fit]     (both by default)

Calibration: rendered stage micrometers and grids (castrig.sim.targets) at four magnifications
(6.3-97 px per pitch), four angles and three noise levels; the error of the pixel size against
the truth (pitch_um / pitch_px) and the uncertainty it states. Goal: error <= 0.2 %.

Fit: runs recorded on a twin with hidden chamber parameters (a step recipe and a low-flow purge,
sampled at the control period), fitted from the default twin (hw_profiles/sim.yaml) with
`castrig sim fit`'s procedure. Goal: every parameter within 10 %, replay RMS <= 0.5 %RH
(the HMT330's own noise is 0.3 %RH).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def calibration() -> bool:
    from castrig.analysis.calibration import pixel_size
    from castrig.sim.targets import render_target

    print(f"{'target':<11} {'px/pitch':>8} {'angle':>6} {'noise':>5} {'error %':>9} {'u %':>8}")
    worst, n, t0 = 0.0, 0, time.perf_counter()
    for kind in ("grid", "micrometer"):
        for pitch_px in (6.3, 17.9, 41.7, 97.0):
            for angle in (0.0, 2.7, 33.0, 89.2):
                for noise in (0.02, 0.1, 0.3):
                    img = render_target(pitch_px=pitch_px, angle_deg=angle, kind=kind, noise=noise,
                                        major_every=10 if kind == "micrometer" else 0, seed=int(pitch_px * 10 + angle))
                    cal = pixel_size(img, 10.0)
                    err = cal.pixel_size_um / (10.0 / pitch_px) - 1.0
                    worst, n = max(worst, abs(err)), n + 1
                    print(f"{kind:<11} {pitch_px:>8.1f} {angle:>6.1f} {noise:>5.2f} {err * 100:>+9.4f} "
                          f"{cal.relative_uncertainty * 100:>8.4f}")
    ok = worst <= 0.002
    print(f"\ncalibration: worst |error| {worst * 100:.3f} % over {n} images (<= 0.2 %): {'PASS' if ok else 'FAIL'} "
          f"({time.perf_counter() - t0:.0f} s)\n")
    return ok


HIDDEN = {"chamber_volume_l": 1.4, "leak_per_min": 0.06, "sensor_tau_s": 14.0, "bubbler_rh_pct": 85.0}
RECIPES = {
    "steps": ("name: fit-steps\nsteps:\n  - {type: purge, duration_s: 120}\n"
              "  - {type: condition, setpoint_rh_pct: 40, band_rh_pct: 1.5, stable_for_s: 60, timeout_s: 900}\n"
              "  - {type: condition, setpoint_rh_pct: 75, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"
              "  - {type: condition, setpoint_rh_pct: 55, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"),
    "purge": ("name: fit-purge\nsteps:\n"
              "  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 1.5, stable_for_s: 120, timeout_s: 900}\n"
              "  - {type: prewet, volume_ml: 0.1, rate_ml_min: 2}\n  - {type: purge, duration_s: 900, flow_slpm: 0.3}\n"),
}


def fit() -> bool:
    from castrig.recipe.session import run_recipe
    from castrig.rig.profile import load_profile
    from castrig.rig.profile_edit import set_value
    from castrig.sim.fit import fit as fit_runs
    from castrig.sim.fit import load_run

    ok = True
    for seed in (7, 8, 9):
        with tempfile.TemporaryDirectory(prefix="castrig-fit-") as tmp:
            tmp_path = Path(tmp)
            text = (ROOT / "hw_profiles" / "sim.yaml").read_text()
            for key, value in HIDDEN.items():
                text = set_value(text, ("sim", key), value)
            text = set_value(set_value(text, ("sim", "seed"), seed), ("control", "sample_period_s"), 1.0)
            hidden = tmp_path / "hidden.yaml"
            hidden.write_text(text)
            for name, recipe_text in RECIPES.items():
                recipe = tmp_path / f"{name}.yaml"
                recipe.write_text(recipe_text)
                run_recipe(recipe, hidden, data_root=tmp_path / "runs", quiet=True)
            runs = [load_run(p) for p in sorted((tmp_path / "runs").iterdir()) if (p / "run.sqlite").is_file()]
            t0 = time.perf_counter()
            result = fit_runs(runs, load_profile(ROOT / "hw_profiles" / "sim.yaml"))
            errs = {k: result.params[k] / HIDDEN[k] - 1.0 for k in HIDDEN}
            seed_ok = all(abs(e) <= 0.10 for e in errs.values()) and result.rms_total_pct <= 0.5
            ok &= seed_ok
            print(f"fit, hidden twin seed {seed}: " + ", ".join(
                f"{k} {result.start[k]:g} -> {result.params[k]:.4g} (truth {HIDDEN[k]:g}, {errs[k] * 100:+.1f} %)"
                for k in HIDDEN))
            print(f"  replay RMS {result.rms_total_pct:.3f} %RH (start twin "
                  f"{max(result.start_rms_pct.values()):.2f}), {time.perf_counter() - t0:.1f} s: {'PASS' if seed_ok else 'FAIL'}")
    return ok


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calibration", action="store_true")
    ap.add_argument("--fit", action="store_true")
    args = ap.parse_args()
    both = not (args.calibration or args.fit)
    ok = True
    if args.calibration or both:
        ok &= calibration()
    if args.fit or both:
        ok &= fit()
    raise SystemExit(0 if ok else 1)


if __name__ == "__main__":
    main()
