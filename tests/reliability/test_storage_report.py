"""The storage-fault and rig-limit cases of issue 15 as `benchmarks/reliability.py` counts them:
every case handled cleanly (exit code, words, no traceback, no run left running) in under 5 s
and 500 MB, through the real CLI."""

from __future__ import annotations

from castrig.reliability import badinputs


def test_every_storage_case_is_handled_cleanly():
    rows = badinputs.storage_report()
    tried = [r for r in rows if r["skipped"] is None]
    assert len(tried) >= 20
    failed = [(r["case"], r["problems"]) for r in tried if not r["clean"]]
    assert not failed, failed
    assert max(r["seconds"] for r in tried) < badinputs.TIME_LIMIT_S
    assert max(r["peak_mb"] for r in tried) < badinputs.MEMORY_LIMIT_MB
    text = badinputs.format_storage_report(rows)
    assert f"{len(tried)}/{len(tried)} handled cleanly" in text
