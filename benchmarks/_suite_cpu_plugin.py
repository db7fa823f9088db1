"""pytest plugin of benchmarks/suite_cpu.py: each test's CPU, its own and its waited-for
children's, with its wall-clock start and end and its xdist worker, appended as one line to
$CASTRIG_SUITE_CPU_LOG (every xdist worker loads it too)."""

from __future__ import annotations

import os
import resource
import time

import pytest


def _cpu() -> tuple[float, float]:
    """This process's CPU and its children's: those it waited for, and the castrig commands the
    tests ran as children of the preloaded castrig (tests/castrig_zygote.py), which are its children's."""
    import sys

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    conftest = sys.modules.get("conftest")
    forked = getattr(conftest, "_zygote", {}).get("children_cpu_s", 0.0) if conftest is not None else 0.0
    return own.ru_utime + own.ru_stime, children.ru_utime + children.ru_stime + forked


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None):
    before, start = _cpu(), time.time()
    yield
    after, end = _cpu(), time.time()
    log = os.environ.get("CASTRIG_SUITE_CPU_LOG")
    if log:
        # one short line per write with O_APPEND: the workers' lines do not interleave
        with open(log, "a") as f:
            f.write(f"{after[0] - before[0]:.3f}\t{after[1] - before[1]:.3f}\t{start:.3f}\t{end:.3f}\t"
                    f"{os.environ.get('PYTEST_XDIST_WORKER', 'main')}\t{item.nodeid}\n")
