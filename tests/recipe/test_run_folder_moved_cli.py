"""A run folder moved while its run goes on: the run stops at its next sample, saying where the
folder went, with the rig made safe -- not hours later at a capture with a FileNotFoundError."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from conftest import ROOT, castrig_main, only_run_dir, run_status, start_castrig, wait_until

LONG_WAIT = ROOT / "tests" / "data" / "day_wait.yaml"  # a 24-hour hold on the twin (virtual time)


def test_a_run_folder_moved_mid_run_stops_the_run_saying_where_it_went(tmp_path: Path, reap, capsys):
    """An outside tester moved a run's folder (`mv`) during a 24-hour hold before a capture: the
    run went on to the capture and faulted there, "FileNotFoundError: [Errno 2] No such file or
    directory: 'DATA/RUN/images'", its membrane cast and never imaged (a deleted folder took every
    record of those hours with it, unsaid). Now it stops at once, naming the folder and where it
    went, and says how to go on; the rig is made safe and that is recorded in the moved folder.
    It still ended "cannot record the outcome ... run.json: No such file or directory", run.json
    in the moved folder 'running' (crashed to every reader): the outcome is recorded there now."""
    recipe = tmp_path / "wait-then-capture.yaml"
    recipe.write_text(LONG_WAIT.read_text() + "  - {type: capture, fields: 1}\n")
    data = tmp_path / "data"
    run = reap(start_castrig("run", str(recipe), "--data", str(data), "-q"))
    run_dir = wait_until(lambda: (d := only_run_dir(data)) is not None and run_status(d).get("step_index") == 1 and d,
                         timeout_s=60, what="the run in its 24-hour hold")
    moved = tmp_path / "moved"
    shutil.move(str(run_dir), str(moved))
    out, err = run.communicate(timeout=60)
    said = " ".join((out + err).split())
    assert run.returncode == 3, said
    assert f"the run folder {run_dir} was moved to {moved} while the run went on" in said, said
    assert "castrig resume" in said and "Traceback" not in said and "FileNotFoundError" not in said, said
    assert "safe state verified" in said, said
    assert "cannot record the outcome" not in said and "still says running" not in said, said
    assert f"faulted: {moved} " in said, said  # the summary names the folder where it is now
    log = (moved / "log.jsonl").read_text()
    assert "was moved to" in log and '"kind": "safe_state"' in log
    assert not (moved / "images").exists()  # stopped in the hold, before the capture
    info = json.loads((moved / "run.json").read_text())
    assert info["outcome"] == "faulted" and "was moved to" in info["outcome_reason"] and info["ended_utc"], info
    assert info["parts"][-1]["outcome"] == "faulted", info["parts"]
    assert '"kind": "run_end"' in log and '"outcome": "faulted"' in log
    # readers of the moved folder see it ended (before: crashed, run.json 'running', no process)
    status = castrig_main(capsys, "status", str(moved))
    assert status.returncode == 0 and "faulted" in status.stdout and "crashed" not in status.stdout, status.stdout
    # the data root it left: its catalog row follows the folder (indexed where it went), outside
    # this root; `castrig runs` said 'faulted' as if the run were here, with no word of where. Now
    # the row says where it went, and neither the list nor the lots read that folder from here
    runs = castrig_main(capsys, "runs", "--data", str(data))
    said = " ".join(runs.stdout.replace("\u2502", " ").split())
    assert runs.returncode == 0 and f"moved: its folder was moved to {moved}, outside this data root (recorded faulted)" in said, said
    lots = castrig_main(capsys, "lots", "--data", str(data))
    assert f"not a lot: {run_dir.name}-m* — its folder was moved to {moved}, outside this data root" in " ".join(lots.stdout.split()), lots.stdout
