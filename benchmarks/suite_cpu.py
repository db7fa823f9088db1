"""Where the test suite's CPU goes: per test, per file, and in all (the suite's own process and
the castrig processes it waits for).

CI runs the suite on 2 cores under an 8-minute budget, and the suite is CPU-bound there (at
2026-12-07: ~790 s of CPU in ~405 s of pytest, six workers), so its wall time is about its CPU
over two; a test's wall time in a loaded run says little, its CPU says what it costs the budget.

    python benchmarks/suite_cpu.py [--top N] [--keep FILE] [pytest arguments...]

Runs ``python -m pytest`` (the README's command, with any arguments given) with a small plugin
that records, around each test, the CPU of the worker (``RUSAGE_SELF``) and of the children it
waited for (``RUSAGE_CHILDREN``: the castrig subprocesses; a child never waited for is not
counted), then prints the totals and the ``--top`` tests and files by CPU.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--top", type=int, default=25, help="tests and files to list (default 25)")
    ap.add_argument("--keep", metavar="FILE", help="also keep every test's line (own CPU, children's CPU, node id: TSV)")
    a, rest = ap.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="castrig-suite-cpu-") as tmp:
        log = Path(tmp) / "cpu.tsv"
        env = dict(os.environ, CASTRIG_SUITE_CPU_LOG=str(log),
                   PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
        done = subprocess.run([sys.executable, "-m", "pytest", "-p", "_suite_cpu_plugin", "-q", *rest],
                              cwd=HERE.parent, env=env)
        rows = [line.rstrip("\n").split("\t") for line in log.read_text().splitlines()] if log.exists() else []
        if a.keep and log.exists():
            Path(a.keep).write_text(log.read_text())
    tests = [(float(s), float(c), node) for s, c, node in rows]
    own, children = sum(t[0] for t in tests), sum(t[1] for t in tests)
    print(f"\n{len(tests)} tests: {own + children:.0f} s of CPU ({own:.0f} s in the test processes, "
          f"{children:.0f} s in the processes they waited for); pytest exit {done.returncode}")
    print(f"\nthe {a.top} tests costing most CPU (s: own + children):")
    for s, c, node in sorted(tests, key=lambda t: -(t[0] + t[1]))[: a.top]:
        print(f"{s + c:7.2f}  {node}")
    files: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0])
    for s, c, node in tests:
        f = files[node.split("::", 1)[0]]
        f[0] += s + c
        f[1] += 1
    print(f"\nthe {a.top} files costing most CPU (s, tests):")
    for name, (cpu, n) in sorted(files.items(), key=lambda kv: -kv[1][0])[: a.top]:
        print(f"{cpu:7.1f}  {int(n):4d}  {name}")
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
