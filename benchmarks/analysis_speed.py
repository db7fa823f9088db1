"""Seconds per 1024² surface pair (reflected + transmitted) and per section, castrig.analysis
beside the plain scikit-image recipe. Goal: ≤ 0.1 s per surface pair on 2 cores.

The surface pair is timed in both appearances: the optical twin (``appearance="optical"``) and an
SE SEM top view of the same structure (``appearance="sem"``: a lip fitted on each pore's profile).

    python benchmarks/analysis_speed.py [--repeat N] [--size PX]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
from analysis_accuracy import plain_section, plain_surface  # noqa: E402

from castrig.analysis import analyse_section, analyse_surface  # noqa: E402
from castrig.sim.micrograph import make_structure, render_section, render_surface, render_surface_sem  # noqa: E402


def timed(fn, repeat: int) -> tuple[float, float, float]:
    """Median and best wall time, and median CPU time (all threads of the process: on a shared
    machine the wall time also counts the other processes' share of the cores)."""
    fn()  # warm-up (imports, thread pool)
    ts, cs = [], []
    for _ in range(repeat):
        t, c = time.perf_counter(), time.process_time()
        fn()
        ts.append(time.perf_counter() - t)
        cs.append(time.process_time() - c)
    return statistics.median(ts), min(ts), statistics.median(cs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--size", type=int, default=1024)
    a = ap.parse_args()
    print(f"cores available: {os.cpu_count()}; image {a.size}x{a.size}; median (best) wall and median CPU time of {a.repeat}")
    for label, d_um, ppp, phi in (("sparse, 20 px pores", 20.0, 20, 0.2), ("dense, 10 px pores", 5.0, 10, 0.5)):
        rng = np.random.default_rng(1)
        px = d_um / ppp
        st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=phi, thickness_um=d_um, thickness_cv=0.1,
                            field_um=a.size * px, section_length_um=a.size * d_um / 50)
        refl, trans = render_surface(st, px, rng, bit_depth=8)
        sec = render_section(st, d_um / 50, rng, bit_depth=8)
        sem, sem_t = render_surface_sem(st, px, rng, bit_depth=8)
        s_med, s_min, s_cpu = timed(lambda: analyse_surface(refl, px, trans), a.repeat)
        p_med, p_min, p_cpu = timed(lambda: plain_surface(refl, trans, px), a.repeat)
        e_med, e_min, e_cpu = timed(lambda: analyse_surface(sem, px, sem_t, appearance="sem"), a.repeat)
        f_med, f_min, f_cpu = timed(lambda: plain_surface(sem, sem_t, px), a.repeat)
        x_med, x_min, x_cpu = timed(lambda: analyse_section(sec, d_um / 50), a.repeat)
        q_med, q_min, q_cpu = timed(lambda: plain_section(sec, d_um / 50), a.repeat)
        print(f"[{label}] surface pair: castrig {s_med:.3f} s ({s_min:.3f}; CPU {s_cpu:.3f})   plain {p_med:.3f} s ({p_min:.3f}; CPU {p_cpu:.3f})")
        print(f"[{label}] SEM surface pair: castrig {e_med:.3f} s ({e_min:.3f}; CPU {e_cpu:.3f})   plain {f_med:.3f} s ({f_min:.3f}; CPU {f_cpu:.3f})")
        print(f"[{label}] section {sec.shape[0]}x{sec.shape[1]}: castrig {x_med:.3f} s ({x_min:.3f}; CPU {x_cpu:.3f})   plain {q_med:.3f} s ({q_min:.3f}; CPU {q_cpu:.3f})")


if __name__ == "__main__":
    main()
