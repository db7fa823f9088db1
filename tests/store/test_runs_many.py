"""A lab running castrig nightly for years, and explore studies (a run folder a trial), has
thousands of runs. ``castrig runs`` checked every catalog row against its folder, read every
run's membranes and laid all of them out in one table: 3 000 runs took 4.1 s of CPU, 20 000 took
43 s, before a line was shown; ``castrig status`` opened every run's database to find the few
that run (2.6 s, 19.5 s). Now ``castrig runs`` at a terminal shows the newest 50 that match (``--last N``,
``--all``; a script gets all unless it asks for ``--last``), checking only those, and ``castrig status`` passes over the folders whose lock is free
and whose run.json does not say running; a stale catalog row is still shown as its folder says."""

from __future__ import annotations

import json
import time

from castrig.store.lock import claim_run, release_run
from conftest import add_membrane_run, castrig_main, catalogue, linked_run_copies, membrane_metrics

RUNS = 1000


def _running(folder, **more) -> None:
    """Its run.json says the run goes on (as a run killed -9 leaves it, or one still running)."""
    info = json.loads((folder / "run.json").read_text())
    (folder / "run.json").write_text(json.dumps({**info, "outcome": "running", "ended_utc": None, **more}))


def _cpu_s(fn):
    before = time.process_time()
    out = fn()
    return out, time.process_time() - before


def test_runs_and_status_over_a_thousand_runs_check_only_what_they_show(tmp_path, capsys):
    add_membrane_run(tmp_path / "src", "20260101-000001-one", [membrane_metrics(3.0)])
    data = tmp_path / "data"
    folders = linked_run_copies(data, tmp_path / "src" / "20260101-000001-one", RUNS)
    for f in (folders[-1], folders[-2], folders[-60]):
        _running(f)  # catalogued while running (the row written at the start)
    catalogue(data, grades="claim1")
    # stale catalog rows: a run killed since (the newest; one older than the newest 50 too), a run
    # going on (its lock held), a run whose run.json was cut since; a folder the catalog lacks
    crashed, going_on, cut, old_crash = folders[-1], folders[-2], folders[-3], folders[-60]
    (cut / "run.json").write_text('{"run_id": "20261101-0')
    new = data / "20261102-000000-demo"
    new.mkdir()
    (new / "run.sqlite").write_bytes((folders[0] / "run.sqlite").read_bytes())
    (new / "run.json").write_text(json.dumps({**json.loads((folders[0] / "run.json").read_text()),
                                              "run_id": new.name, "started_utc": "2026-11-02T00:00:00Z"}))
    claim_run(going_on, purpose="castrig run (test)")
    try:
        listed, cpu_s = _cpu_s(lambda: castrig_main(capsys, "runs", "--data", str(data), "--last", "50"))
        assert listed.returncode == 0, listed
        rows = {line.split()[1]: line for line in listed.stdout.splitlines() if line.startswith("│ 2026")}
        assert list(rows) == [f.name for f in folders[-49:]] + [new.name]  # the newest 50, oldest first
        assert "crashed" in rows[crashed.name] and "running" in rows[going_on.name] and "damaged" in rows[cut.name]
        assert "completed" in rows[new.name] and "1: 1 met" in rows[new.name]
        assert "the newest 50 runs that match are shown (1001 runs in all); --last N or --all" in listed.stderr
        assert cpu_s < 0.5, cpu_s  # (1.5 s before, 0.23 s now: every row checked, every run's membranes read)

        # a filter still finds an older run, checked as it is met (the catalog row said running); a
        # script (--json, or stdout not a terminal) gets every run that matches without --last
        found = castrig_main(capsys, "runs", "--data", str(data), "--outcome", "crashed", "--json")
        assert [(json.loads(x)["run"], json.loads(x)["outcome"]) for x in found.stdout.splitlines()] == \
            [(old_crash.name, "crashed"), (crashed.name, "crashed")], found
        # the newest 2 that match are every one that matches: no older ones were left out
        two = castrig_main(capsys, "runs", "--data", str(data), "--outcome", "crashed", "--last", "2", "--json")
        assert two.stdout == found.stdout and "left out" not in two.stderr and "are shown" not in two.stderr, two
        one = castrig_main(capsys, "runs", "--data", str(data), "--outcome", "crashed", "--last", "1", "--json")
        assert [json.loads(x)["run"] for x in one.stdout.splitlines()] == [crashed.name], one
        assert "the newest 1 runs that match are shown" in one.stderr, one

        status, cpu_s = _cpu_s(lambda: castrig_main(capsys, "status", "--data", str(data)))
        assert status.returncode == 0 and going_on.name in status.stdout, status
        assert crashed.name not in status.stdout and old_crash.name not in status.stdout
        assert cpu_s < 0.3, cpu_s  # (0.93 s before, 0.06 s now: every run's database opened)
    finally:
        release_run(going_on)


def test_at_a_terminal_castrig_runs_shows_the_newest_50_and_says_so(tmp_path, terminal_run):
    """A person at a terminal gets the newest 50 (a script gets every run: the test above); the
    terminal is the process's stdout, as when someone types ``castrig runs``."""
    add_membrane_run(tmp_path / "src", "20260101-000001-one", [membrane_metrics(3.0)])
    data = tmp_path / "data"
    folders = linked_run_copies(data, tmp_path / "src" / "20260101-000001-one", 60)
    catalogue(data, grades="claim1")
    term = terminal_run(["runs", "--data", str(data)], cwd=tmp_path, cols=200)
    term.expect("the newest 50 runs that match are shown (60 runs in all)", timeout_s=60)
    assert term.proc.wait(timeout=30) == 0
    shown = [f.name for f in folders if f.name in term.output]
    assert shown == [f.name for f in folders[-50:]], shown
