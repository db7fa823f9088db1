"""SIGTERM (or SIGHUP) again as an aborted run winds up: the rig is safe, the outcome about to be
written. Before, the run's signal handlers were gone by then: the second signal killed the
process (exit 143 / 129), run.json kept ``outcome: running, ended_utc: null``, ``castrig runs``
listed it ``crashed``, and a plain ``castrig resume`` started the rig again on a run the operator
had aborted. Now a repeated signal is noted: exit 3, the outcome recorded.

The moment is seeded, not a race: a sitecustomize (conftest ``SIGNAL_AT_OUTCOME``) has the
process signal itself twice just before run.json's outcome is written.
"""

from __future__ import annotations

import json
import signal

import pytest

from conftest import ROOT, SIGNAL_AT_OUTCOME, castrig, run_rows, start_castrig, wait_until, with_sitecustomize

LONG_WAIT = str(ROOT / "tests" / "data" / "long_wait.yaml")


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGHUP"])
def test_a_signal_repeated_as_the_run_ends_still_records_it_aborted(tmp_path, reap, sig):
    data = tmp_path / "runs"
    proc = reap(start_castrig("run", LONG_WAIT, "--data", str(data), "-q", SIGNAL_AT_OUTCOME=sig, SIGNAL_TIMES="2",
                              **with_sitecustomize(tmp_path, SIGNAL_AT_OUTCOME)))
    run_dir = wait_until(lambda: next((p.parent for p in data.glob("*/run.sqlite")
                                       if (run_rows(p.parent, "select count(*) from samples") or [(0,)])[0][0] > 2), None),
                         what="the run under way")
    proc.send_signal(getattr(signal, sig))  # the first: abort; two more follow as the outcome is written
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 3, (proc.returncode, out, err)
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "aborted" and info["ended_utc"] and sig in info["outcome_reason"], info
    assert info["parts"][-1]["outcome"] == "aborted"
    safe = [json.loads(d) for (d,) in run_rows(run_dir, "select data_json from events where kind='safe_state'")]
    assert safe and safe[-1]["safe"] is True
    assert "the run has ended" in " ".join(err.split())  # noted, not fatal
    listed = castrig("runs", "--data", str(data))
    assert listed.returncode == 0 and "crashed" not in listed.stdout and "aborted" in listed.stdout, listed.stdout
    if sig == "SIGTERM":  # someone decided this abort: a plain resume must not start the rig again
        refused = castrig("resume", str(run_dir))
        assert refused.returncode == 2 and "--after-abort" in refused.stderr, refused.stdout + refused.stderr
