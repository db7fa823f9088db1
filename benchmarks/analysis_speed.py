"""Seconds per 1024² surface pair (reflected + transmitted) and per section, castrig.analysis
beside the plain scikit-image recipe. Goal: ≤ 0.1 s per surface pair on 2 cores.

The surface pair is timed in both appearances: the optical twin (``appearance="optical"``) and an
SE SEM top view of the same structure (``appearance="sem"``: a lip fitted on each pore's profile).

    python benchmarks/analysis_speed.py [--repeat N] [--size PX]
    python benchmarks/analysis_speed.py --fits [--save F | --against F] [--repeat N]

``--fits``: the SEM pair's lip fits alone (``castrig.analysis.edges._fit_lips``): each call of
one analysis of each view recorded with its output, then replayed ``--repeat`` times one after
another (each call's profiles shared by this thread and a pool worker, as in the analysis):
profiles, LM loop iterations (the most any profile ran), profile-iterations and the median CPU
per call. The replay has none of the pair's other work, so a change of the fit shows above the
noise of a loaded machine; ``--save F`` keeps the calls (inputs and outputs) and ``--against F``
replays the calls saved by another version on this one and says how far its outputs are from
the saved ones (lips and any output; the same inputs, whatever this version's earlier stages
would give). Added 2026-12-06 (issue 16's fourth round on the SEM pair's speed; its record is
docs/records/sem-edges.md).

Where it stands (2026-12-07, round six: the lip fit and the pores' pixels compiled with numba;
``--repeat 5``, main and this version alternated at load 2-6 on this 2-core machine, median wall
and CPU): SEM pair sparse 0.31-0.32 s (CPU 0.36-0.38) -> 0.17-0.18 s (CPU 0.22-0.24), dense
0.60-0.64 s (CPU 0.70-0.76) -> 0.37-0.39 s (CPU 0.47-0.50); optical pair unchanged, sparse
0.10 s, dense 0.16 s. The fits (``--fits``) sparse 88 -> 32 ms, dense 268 -> 104 ms CPU, the
same lips to 8.3e-11 px. Not yet 0.1 s for the SEM pair: the rest of its path is numpy
(docs/records/sem-edges.md, round six).
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


def fit_replay(calls: list, repeat: int) -> None:
    """Replay recorded ``_fit_lips`` calls ``(view, args, kwargs, output)``: per call its
    profiles, LM loop iterations (the most any profile ran), profile-iterations and median CPU,
    and how far its output is from the recorded one (the largest difference of a lip radius,
    and of any output)."""
    from castrig.analysis import edges

    total: dict = {}
    worst_R = worst = 0.0
    for view, args, kw, out in calls:
        its = np.zeros(args[0].shape[0], np.int64)
        got = edges._fit_lips(*args, **kw, its=its)
        d_R = float(np.max(np.abs(got[0][:, 0] - out[0][:, 0]), initial=0.0))
        d = max(float(np.max(np.abs(x - y), initial=0.0)) for x, y in zip(got, out) if x is not None)
        worst_R, worst = max(worst_R, d_R), max(worst, d)
        cs = []
        for _ in range(repeat):
            c = time.process_time()
            edges._fit_lips(*args, **kw)
            cs.append(time.process_time() - c)
        cpu = statistics.median(cs)
        total[view] = total.get(view, 0.0) + cpu
        print(f"[{view}] {args[0].shape[0]:6d} profiles, hold {kw.get('hold', ())}, fit_s {kw.get('fit_s', False)}: "
              f"{int(its.max(initial=0)):4d} loops, {int(its.sum()):6d} profile-iterations, CPU {cpu * 1e3:6.1f} ms, "
              f"lips {d_R:.1e} px from the recorded, any output {d:.1e}")
    print("total CPU per view: " + ", ".join(f"{v} {t * 1e3:.1f} ms" for v, t in total.items())
          + f"; outputs {'identical' if worst == 0 else 'differ'}: lips by {worst_R:.2e} px at most, any output by {worst:.2e}")


def fit_calls(views: list) -> list:
    """The ``_fit_lips`` calls of one SEM analysis of each ``(label, pair, pixel size)``, with
    their outputs (the pair's two halves of a large stage run on two threads: recorded in the
    order they end)."""
    import threading

    from castrig.analysis import edges

    calls: list = []
    lock = threading.Lock()
    fit = edges._fit_lips
    label = [""]

    def recording(*args, **kw):
        out = fit(*args, **kw)
        with lock:
            calls.append((label[0], args, kw, out))
        return out

    edges._fit_lips = recording
    try:
        for name, (sem, sem_t), px in views:
            label[0] = name
            analyse_surface(sem, px, sem_t, appearance="sem")
    finally:
        edges._fit_lips = fit
    return calls


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--fits", action="store_true", help="the SEM pair's lip fits alone, replayed (see above)")
    ap.add_argument("--save", metavar="F", help="with --fits: keep the recorded calls in F (pickle)")
    ap.add_argument("--against", metavar="F", help="with --fits: replay the calls saved in F instead")
    a = ap.parse_args()
    if a.fits:
        import pickle

        if a.against:
            with open(a.against, "rb") as f:
                calls = pickle.load(f)
        else:
            views = []
            for label, d_um, ppp, phi in (("sparse", 20.0, 20, 0.2), ("dense", 5.0, 10, 0.5)):
                rng = np.random.default_rng(1)
                px = d_um / ppp
                st = make_structure(rng, mean_diameter_um=d_um, opening_ratio=phi, thickness_um=d_um, thickness_cv=0.1,
                                    field_um=a.size * px, section_length_um=a.size * d_um / 50)
                render_surface(st, px, rng, bit_depth=8)  # (the same draws as the table's)
                render_section(st, d_um / 50, rng, bit_depth=8)
                views.append((label, render_surface_sem(st, px, rng, bit_depth=8), px))
            calls = fit_calls(views)
            if a.save:
                with open(a.save, "wb") as f:
                    pickle.dump(calls, f)
        print(f"the SEM pair's _fit_lips calls replayed one after another on one thread; median CPU of {a.repeat}")
        fit_replay(calls, a.repeat)
        return
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
