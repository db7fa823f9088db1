"""One run.json field of the wrong JSON type damages that run, not the data root.

Audit 3 (repro runjson_types.sh): `started_utc: 12345` hand-edited into one run.json made
`castrig runs` and `castrig lots` end in a TypeError (exit 1) for every run under the root;
`operator: []` broke `castrig runs` (NotRenderableError); `recipe: "demo"` broke status and
report, `ended_utc: 5` or `started_utc: null` report, `profile: "sim"` resume — each a traceback.
Now run.json is read through one typed check (RunInfo.field_error): the run is listed
"damaged (run.json: field X: expected …)", the others as before, and per-run commands exit 2.

Through the CLI's entry point in this process (conftest ``castrig_main``); the served pages in
tests/serve/test_serve_hosts.py (RUN_FOLDER_DAMAGES holds these damages too).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from conftest import RUN_JSON_FIELD_DAMAGES, castrig_main


@pytest.mark.parametrize("damage", list(RUN_JSON_FIELD_DAMAGES))
def test_a_wrong_typed_run_json_field_damages_only_that_run(finished_demo_run, tmp_path: Path, capsys, damage: str):
    data, uid = finished_demo_run
    file, spoil, reason = RUN_JSON_FIELD_DAMAGES[damage]
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)  # a good run beside the damaged one
    bad = root / f"{uid}-x"
    shutil.copytree(data / uid, bad)
    spoil(bad / file)

    done = castrig_main(capsys, "runs", "--data", str(root))
    flat = " ".join(done.stdout.split())
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"{uid}-x" in flat and f"damaged: run.json: {reason}" in flat, flat
    assert "completed" in flat and "demo" in flat  # the good run, listed as before

    done = castrig_main(capsys, "lots", "--data", str(root))
    assert done.returncode == 0 and f"{uid}-m1" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]

    done = castrig_main(capsys, "status", str(bad))
    assert "damaged" in done.stdout and reason in " ".join(done.stdout.split()), done.stdout + done.stderr

    for args in (["report", str(bad), "--out", str(tmp_path / "r.html")], ["resume", str(bad), "-q"]):
        done = castrig_main(capsys, *args)
        err = " ".join(done.stderr.split())
        assert done.returncode == 2, (args, done.stdout[-1000:], done.stderr[-2000:])
        assert "damaged run folder" in err and reason in err, (args, err)
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize("damage", ["started_utc_number", "started_utc_null"])
def test_a_queue_resume_passes_over_a_wrong_typed_run_json(finished_demo_run, tmp_path: Path, damage: str):
    """`castrig queue --resume` looks for the run folder an item started among every run.json under
    the root, comparing started_utc as text: a number there was a TypeError for the whole queue."""
    from castrig.recipe.queue import _find_run_dir

    data, uid = finished_demo_run
    root = tmp_path / "data"
    shutil.copytree(data / uid, root / uid)
    info = __import__("json").loads((root / uid / "run.json").read_text())
    bad = root / f"{uid}-x"
    shutil.copytree(data / uid, bad)
    RUN_JSON_FIELD_DAMAGES[damage][1](bad / "run.json")
    item = {"recipe": info["recipe_path"], "seed": info["seed"], "started_utc": "2000-01-01T00:00:00Z"}
    assert _find_run_dir(root, item) == root / uid


def test_a_finished_run_shows_no_setpoint_after_its_last_purge(finished_demo_run, castrig_cli):
    """The demo ends on a purge (the RH loop off): `status` showed "RH 50.3 %RH (setpoint 70.0)",
    the last condition's setpoint beside the room's RH, as if it were still held."""
    import json

    root, run_id = finished_demo_run
    line = castrig_cli("status", str(root / run_id))
    assert line.returncode == 0 and "(setpoint —)" in line.stdout, line.stdout
    said = json.loads(castrig_cli("status", "--json", str(root / run_id)).stdout)
    assert said["setpoint_rh_pct"] is None and said["last_values"]["rh_setpoint_pct"]["value"] == 70.0


def test_the_line_that_starts_a_purge_shows_no_setpoint(tmp_path: Path, castrig_cli):
    """`castrig run`'s line at a purge's start said "RH 69.2 %RH (setpoint 70.0)": the step before
    it's setpoint, published before the purge's dry air was set, where a purge holds no RH. And
    the line that starts a condition after a purge said "(setpoint —)": published before the
    condition set its RH; it shows the RH the step is about to set."""
    (tmp_path / "r.yaml").write_text("name: humid-then-purge\nsteps:\n"
                                     "  - {type: condition, setpoint_rh_pct: 70, band_rh_pct: 2, stable_for_s: 10, timeout_s: 900}\n"
                                     "  - {type: purge, duration_s: 60}\n"
                                     "  - {type: condition, setpoint_rh_pct: 40, band_rh_pct: 3, stable_for_s: 10, timeout_s: 900}\n")
    done = castrig_cli("run", "r.yaml", "--data", "runs", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = (done.stdout + done.stderr).splitlines()
    (line,) = [ln for ln in lines if "step 2/3: purge" in ln]
    assert "(setpoint —)" in line, line
    (line,) = [ln for ln in lines if "step 3/3: condition" in ln]
    assert "(setpoint 40.0)" in line, line
