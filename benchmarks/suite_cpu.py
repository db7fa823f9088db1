"""Where the test suite's CPU goes: per test, per file, and in all (the suite's own process and
the castrig processes it waits for).

CI runs the suite on 2 cores under an 8-minute budget, and the suite is CPU-bound there (at
2026-12-07: ~790 s of CPU in ~405 s of pytest, six workers), so its wall time is about its CPU
over two; a test's wall time in a loaded run says little, its CPU says what it costs the budget.

    python benchmarks/suite_cpu.py [--top N] [--keep FILE] [--durations FILE] [pytest arguments...]

Runs ``python -m pytest`` (the README's command, with any arguments given) with a small plugin
that records, around each test, the CPU of the worker (``RUSAGE_SELF``) and of the children it
waited for (``RUSAGE_CHILDREN``: the castrig subprocesses; a child never waited for is not
counted), then prints the totals, the ``--top`` tests and files by CPU, and the run's tail: how
long it ended with fewer tests running than workers (the longest tests, started last, set it).
``--durations tests/durations.tsv`` writes each file's wall time in this run, the order in which
tests/conftest.py hands the files to the workers (longest first): refresh it when files are added
or grow.
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
    ap.add_argument("--durations", metavar="FILE",
                    help="write each test file's wall time in this run (s, TSV), e.g. tests/durations.tsv")
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
    tests = [(float(s), float(c), node) for s, c, _, _, _, node in rows]
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
    if a.durations and done.returncode == 0:
        _write_durations(Path(a.durations), [(float(t1) - float(t0), node) for _, _, t0, t1, _, node in rows])
    _print_tail([(float(t0), float(t1), node) for _, _, t0, t1, _, node in rows], a.top)
    return done.returncode


def _write_durations(path: Path, walls: list[tuple[float, str]]) -> None:
    files: dict[str, float] = collections.defaultdict(float)
    for wall, node in walls:
        files[node.split("::", 1)[0]] += wall
    lines = [f"{wall:.1f}\t{name}" for name, wall in sorted(files.items(), key=lambda kv: (-kv[1], kv[0]))]
    path.write_text("# each test file's wall time (s) in a full suite run, longest first: the order the xdist\n"
                    "# workers take the files in (tests/conftest.py). Written by: python benchmarks/suite_cpu.py "
                    "--durations tests/durations.tsv\n" + "\n".join(lines) + "\n")
    print(f"\nwrote {path} ({len(lines)} files)")


def _print_tail(spans: list[tuple[float, float, str]], top: int) -> None:
    """When the number of tests running at once fell below the workers' for good, and the tests
    still running then: on CI's 2 cores that tail is time the suite leaves a core idle."""
    if not spans:
        return
    begin, end = min(t[0] for t in spans), max(t[1] for t in spans)
    edges = sorted([(t0, 1) for t0, _, _ in spans] + [(t1, -1) for _, t1, _ in spans])
    running, peak, last_full = 0, 0, begin
    for t, d in edges:
        running += d
        peak = max(peak, running)
    running = 0
    for t, d in edges:
        running += d
        if running >= peak:
            last_full = t
    print(f"\nthe run took {end - begin:.0f} s with up to {peak} tests at once; fewer ran from {last_full - begin:.0f} s "
          f"on ({end - last_full:.0f} s); the {top} tests running then, by end:")
    for t0, t1, node in sorted((s for s in spans if s[1] > last_full), key=lambda s: -s[1])[:top]:
        print(f"{t0 - begin:6.0f} s -> {t1 - begin:6.0f} s  ({t1 - t0:5.1f} s)  {node}")


if __name__ == "__main__":
    sys.exit(main())
