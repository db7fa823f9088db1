"""The storage-fault and rig-limit cases of issue 15 as `benchmarks/reliability.py` counts them:
every case handled cleanly (exit code, words, no traceback, no run left running) in under 5 s
and 500 MB, through the real CLI."""

from __future__ import annotations

import pytest

from castrig.reliability import badinputs


# The whole campaign (~40 s on the CI machine): `python benchmarks/reliability.py` prints it, and
# `pytest -m slow` runs it here. CI runs a sample of the same cases one by one in
# tests/store/test_storage_faults.py (disk full, damaged folders, read-only, rig limits).
@pytest.mark.slow
def test_every_storage_case_is_handled_cleanly():
    rows = badinputs.storage_report()
    tried = [r for r in rows if r["skipped"] is None]
    assert len(tried) >= 20
    failed = [(r["case"], r["problems"]) for r in tried if not r["clean"]]
    assert not failed, failed
    assert max(r["cpu_s"] for r in tried) < badinputs.TIME_LIMIT_S
    assert max(r["peak_mb"] for r in tried) < badinputs.MEMORY_LIMIT_MB
    text = badinputs.format_storage_report(rows)
    assert f"{len(tried)}/{len(tried)} handled cleanly" in text
