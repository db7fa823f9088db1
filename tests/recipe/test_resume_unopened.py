"""A resume that could not open the rig records its safe state in the run's events
(recipe/resume_unopened.py), and that write dates the folder's files: the resume that goes on
later would have read the stop as that write ("resumed 5 s later" of a film that stood for an
hour). It takes the stop the first resume dated before writing, from its event."""

from __future__ import annotations

from castrig.recipe.resume_unopened import NOT_OPENED, earlier_dated_stop
from castrig.store import open_store, utc_now_iso
from conftest import crashed_membrane_run


def test_the_stop_dated_by_a_resume_that_could_not_open_the_rig_is_the_one_a_later_resume_takes(tmp_path):
    run_dir = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    rec = open_store(run_dir.parent).open_run(run_dir)
    try:
        crashed, written = 1_767_225_600.25, 1_767_229_200.0  # the crash; an hour later, the failed resume's write
        assert earlier_dated_stop(rec, written) == written  # (nothing recorded: the files' date stands)
        rec.add_event(5.0, "safe_state", "control", "resume could not open the rig; ...",
                      {"safe": False, NOT_OPENED: "cannot open the rig", "stopped_utc": utc_now_iso(crashed, timespec="milliseconds")})
        assert earlier_dated_stop(rec, written) == crashed
        assert earlier_dated_stop(rec, None) == crashed
        assert earlier_dated_stop(rec, crashed - 10) == crashed - 10  # (an earlier date stands)
        rec.add_event(6.0, "resume", "runner", "resumed after 'running'", {})
        assert earlier_dated_stop(rec, written) == written  # (a part after it: its own stop)
    finally:
        rec.close()
