"""Durable samples per second of the run store, and the synchronous mode it uses.

    python benchmarks/store_throughput.py [--seconds 3] [--channels 8]

Each call to ``add_samples`` is one fsync'd transaction (a runner tick: all channels at once),
so the figure is what the rig can log with every record on disk when the call returns.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from castrig.store import SYNCHRONOUS, RunInfo, SqliteRunStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--channels", type=int, default=8)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteRunStore(Path(tmp))
        info = RunInfo("bench", "bench", "-", "bench", "-", "bench", 0, "", "now")
        with store.create_run(info) as rec:
            names = [f"ch{i}" for i in range(args.channels)]
            ticks = 0
            t0 = time.perf_counter()
            while time.perf_counter() - t0 < args.seconds:
                rec.add_samples(float(ticks), {n: float(ticks) for n in names})
                ticks += 1
            dt = time.perf_counter() - t0
            ev0 = time.perf_counter()
            for i in range(500):
                rec.add_event(float(i), "bench", "bench", "event")
            ev_dt = time.perf_counter() - ev0
    print("journal_mode       WAL")
    print(f"synchronous        {SYNCHRONOUS}")
    print(f"ticks/s            {ticks / dt:10.0f}   (one durable transaction each)")
    print(f"samples/s          {ticks * args.channels / dt:10.0f}   ({args.channels} channels per tick)")
    print(f"events/s           {500 / ev_dt:10.0f}")
    print(f"latency per tick   {1e3 * dt / ticks:10.3f} ms")


if __name__ == "__main__":
    main()
