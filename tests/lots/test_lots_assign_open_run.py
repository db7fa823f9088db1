"""`castrig lots assign` refuses a lot whose run's record is not closed (crashed and not resumed,
or still running), as `castrig filter check` does, and takes one judged before an abort, saying
how its run ended."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import castrig, castrig_main, crashed_membrane_run

RUN_ID = "20260101-000001-night"
LOT = RUN_ID + "-m1"


def test_lots_assign_refuses_a_lot_of_a_crashed_or_running_run_as_filter_check_does(tmp_path, capsys):
    from castrig.store import open_store
    from castrig.store.lock import claim_run, release_run

    root = tmp_path / "data"
    run_dir = crashed_membrane_run(root, RUN_ID)
    done = castrig_main(capsys, "lots", "--data", str(root), "assign", LOT, "--use", "blood_filter")
    assert done.returncode == 2, done.stdout
    assert f"made by run {RUN_ID}, which is crashed, its record not closed" in done.stderr
    assert f"castrig resume {run_dir}" in done.stderr and "Traceback" not in done.stderr
    assert not (root / "lots.json").exists()

    claim_run(run_dir, purpose="castrig resume (test)")  # the run goes on: a process owns its folder again
    # (this assign in a process of its own: the test's process holds the run)
    try:
        done = castrig("lots", "--data", str(root), "assign", LOT, "--use", "blood_filter")
    finally:
        release_run(run_dir)
    assert done.returncode == 2, done.stdout
    assert f"its run {RUN_ID} is still running, its record not closed: wait for it to end" in done.stderr
    assert not (root / "lots.json").exists() and "Traceback" not in done.stderr

    store = open_store(root)  # the run ends aborted after m1 was judged (as `castrig abort` leaves it)
    with store.open_run(run_dir) as rec:
        rec.update_info(outcome="aborted", ended_utc="2026-01-01T08:00:00Z")
        store.index_run(rec, ["claim1", "claim2", "claim3", "claim4"])
    done = castrig_main(capsys, "lots", "--data", str(root), "assign", LOT, "--use", "blood_filter")
    assert done.returncode == 0, done.stderr
    assert f"made by run {RUN_ID}, which ended aborted after it was judged" in done.stdout
    assert json.loads((Path(root) / "lots.json").read_text())[LOT]["run_outcome"] == "aborted"
