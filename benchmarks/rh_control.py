"""RH control quality on the twin, for both kinds of humidity chamber.

    python benchmarks/rh_control.py [--seeds 3]

For each profile: hold 40 %RH, step to 70 %RH and measure, on the near-membrane sensor as the
runner sees it, the settling time into ±1 %RH (in chamber time constants τ = V/Q) and the
overshoot; then hold 70 %RH for 30 minutes and measure the standard deviation.
Goal (issue 7): settle ≤ 3 τ, overshoot ≤ 2 %RH, 30-min hold σ ≤ 0.3 %RH.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from castrig.control.rh_loop import ChamberRhLoop, LoopGains, MfcRhLoop
from castrig.rig.build import build_rig
from castrig.rig.profile import load_profile

ROOT = Path(__file__).resolve().parents[1]


def measure(profile_path: Path, seed: int) -> dict[str, float]:
    profile = load_profile(profile_path)
    rig = build_rig(profile, seed=seed)
    c, sim = profile.control, profile.sim
    if rig.dry_mfc is not None:
        gains = LoopGains(c.kp, c.ki, c.kd, c.total_flow_slpm, c.wet_fraction_min, c.wet_fraction_max,
                          dry_line_rh_pct=sim.dry_line_rh_pct, wet_line_rh_pct=sim.bubbler_rh_pct)
        loop: MfcRhLoop | ChamberRhLoop = MfcRhLoop(gains, rig.clock, rig.dry_mfc, rig.wet_mfc)
    else:
        loop = ChamberRhLoop(rig.clock, rig.chamber)

    def hold(sp: float, duration_s: float) -> np.ndarray:
        loop.set_setpoint(sp, measured_rh_pct=rig.rh_near.read().rh_pct)
        t0 = rig.clock.now()
        rows = []
        while rig.clock.now() - t0 < duration_s:
            rh = rig.rh_near.read().rh_pct
            loop.update(rh)
            rows.append((rig.clock.now() - t0, rh))
            for pump in rig.pumps().values():
                pump.state()  # safe-mode keep-alive, as the runner does
            rig.clock.sleep_until(t0 + len(rows) * c.control_period_s)
        return np.array(rows)

    tau_s = sim.chamber_volume_l / c.total_flow_slpm * 60.0
    hold(40.0, 20 * tau_s)
    step = hold(70.0, 20 * tau_s)
    t, rh = step.T
    outside = np.nonzero(np.abs(rh - 70.0) > 1.0)[0]
    settle_s = float(t[outside[-1]]) if len(outside) else 0.0
    steady = hold(70.0, 1800.0)
    rig.close()
    return {
        "settle_tau": settle_s / tau_s,
        "overshoot_pct": float(max(0.0, rh.max() - 70.0)),
        "hold_std_pct": float(steady[:, 1].std(ddof=1)),
        "tau_s": tau_s,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seeds", type=int, default=3)
    args = ap.parse_args()
    print(f"{'profile':<20} {'seed':>4} {'settle (τ)':>10} {'overshoot %RH':>14} {'30-min σ %RH':>13} {'wall s':>7}")
    worst: dict[str, dict[str, float]] = {}
    for name in ("sim.yaml", "sim-chamber.yaml"):
        for seed in range(1, args.seeds + 1):
            t0 = time.perf_counter()
            r = measure(ROOT / "hw_profiles" / name, seed)
            print(f"{name:<20} {seed:>4} {r['settle_tau']:>10.2f} {r['overshoot_pct']:>14.2f} {r['hold_std_pct']:>13.3f} {time.perf_counter() - t0:>7.2f}")
            w = worst.setdefault(name, {k: 0.0 for k in r})
            for k, v in r.items():
                w[k] = max(w[k], v)
    print()
    for name, w in worst.items():
        ok = w["settle_tau"] <= 3 and w["overshoot_pct"] <= 2 and w["hold_std_pct"] <= 0.3
        print(f"worst {name:<16} settle {w['settle_tau']:.2f} τ (≤ 3), overshoot {w['overshoot_pct']:.2f} %RH (≤ 2), "
              f"σ {w['hold_std_pct']:.3f} %RH (≤ 0.3): {'PASS' if ok else 'FAIL'}")


if __name__ == "__main__":
    main()
