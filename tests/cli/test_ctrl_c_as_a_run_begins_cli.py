"""Ctrl-C as ``castrig run`` makes its run folder, before the run's own signal handlers are in.

Before, it raised out of wherever it landed: exit 130 "interrupted" with run.json left
'running' (the run listed crashed, no safe state on record, the rig as the run's opening left
it), or, as the folder was claimed, an empty folder holding its lock alone. It is now the run's
first Ctrl-C: a pause at the first safe point, asked at a terminal; with nobody to ask, the run
ends interrupted (130) with the rig made safe and on record, and a plain resume goes on.

The moment is seeded, not a race: a sitecustomize (conftest ``signal_hook``) has the process
send itself SIGINT as it claims the new folder, or as it keeps the recipe's text in it.
"""

from __future__ import annotations

import json
import sqlite3

import pytest

from conftest import ROOT, TerminalRun, castrig, signal_hook, with_sitecustomize

SHORT = str(ROOT / "tests" / "data" / "short.yaml")
MOMENTS = ["castrig.store.sqlite_store:claim_run", "castrig.recipe.session:_keep_recipe_text"]


def _events(run_dir):
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        return [(k, json.loads(d or "{}")) for k, d in db.execute("select kind, data_json from events order by id")]


@pytest.mark.parametrize("moment", MOMENTS)
def test_ctrl_c_as_the_run_folder_is_made_ends_the_run_interrupted_with_the_rig_safe(tmp_path, moment):
    data = tmp_path / "runs"
    done = castrig("run", SHORT, "--data", str(data), "-q", SIGNAL_AT="SIGINT",
                   **with_sitecustomize(tmp_path, signal_hook(moment, "SIGNAL_AT")))
    assert done.returncode == 130, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    info = json.loads((run_dir / "run.json").read_text())
    assert info["outcome"] == "interrupted", info
    safe = [d for k, d in _events(run_dir) if k == "safe_state"]
    assert safe and safe[-1]["safe"] is True
    resumed = castrig("resume", str(run_dir), "-q")
    assert resumed.returncode == 0, (resumed.stdout, resumed.stderr)
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"


def test_ctrl_c_as_the_run_folder_is_made_on_a_terminal_pauses_and_asks(tmp_path, monkeypatch):
    data = tmp_path / "runs"
    for key, value in with_sitecustomize(tmp_path, signal_hook(MOMENTS[1], "SIGNAL_AT")).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("SIGNAL_AT", "SIGINT")
    term = TerminalRun(["run", SHORT, "--data", str(data)], cwd=ROOT)
    try:
        term.expect("Enter to resume", timeout_s=30)
        term.send("r\r")
        assert term.wait(60) == 0, term.output[-3000:]
    finally:
        term.close()
    (run_dir,) = [p for p in data.iterdir() if p.is_dir()]
    with sqlite3.connect(run_dir / "run.sqlite") as db:
        assert [k for (k,) in db.execute("select kind from events where source='operator' order by id")] == ["pause", "resume"]
    assert json.loads((run_dir / "run.json").read_text())["outcome"] == "completed"
