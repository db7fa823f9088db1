"""JSON files castrig reads back, nested deeper than Python's recursion allows (``[[[[...``
100 000 deep: 200 KB, well under every size bound): a run.json ended ``castrig status``,
``report``, ``resume`` and ``runs`` in a RecursionError traceback (exit 1), a queue's state
``castrig queue --resume``. Now the run folder is damaged and the state file refused, in words
(exit 2; ``status`` lists the run as damaged). In-process (conftest ``castrig_main``)."""

from __future__ import annotations

from conftest import castrig_main, crashed_membrane_run

DEEP = "[" * 100_000 + "]" * 100_000


def test_a_run_json_nested_too_deep_is_a_damaged_run_folder(tmp_path, capsys):
    run_dir = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    (run_dir / "run.json").write_text('{"run_id": ' + DEEP + "}")
    for args in (["report", run_dir], ["resume", run_dir], ["status", run_dir], ["runs", "--data", tmp_path / "runs"]):
        done = castrig_main(capsys, *args)
        said = " ".join((done.stdout + done.stderr).split())
        assert "Traceback" not in said and "RecursionError" not in said, (args, said[-1500:])
        assert "nested too deep" in said, (args, said[-1500:])
        assert done.returncode == (0 if args[0] in ("status", "runs") else 2), (args, done.returncode, said[-500:])


def test_a_queue_state_nested_too_deep_or_with_a_data_root_not_a_path_is_refused(tmp_path, capsys):
    state = tmp_path / "queue-20260101-000000.json"
    for text, says in (('{"items": ' + DEEP + "}", "nested too deep"),
                       ('{"items": [], "profile": "hw_profiles/sim.yaml", "data": [1]}',
                        "data = [1] (allowed: the data root's path or null")):
        state.write_text(text)
        done = castrig_main(capsys, "queue", "--resume", state)
        said = " ".join(done.stderr.split())
        assert done.returncode == 2 and "Traceback" not in said, (done.returncode, said[-1500:])
        assert f"--resume {state}" in said and says in said, said


def test_a_log_line_nested_too_deep_does_not_stop_the_report(tmp_path, capsys):
    """The report shows the run's warnings from its log.jsonl: one line of ``[[[[...`` ended
    ``castrig report`` in a RecursionError; it is skipped as any line that is not JSON is."""
    run_dir = crashed_membrane_run(tmp_path / "runs", "20260101-000001-night")
    with open(run_dir / "log.jsonl", "a") as fh:
        fh.write(DEEP + "\n" + '{"level": "warning", "event": "after the deep line"}\n')
    done = castrig_main(capsys, "report", run_dir)
    assert done.returncode == 0 and "Traceback" not in done.stderr, (done.returncode, done.stderr[-1500:])
    assert "after the deep line" in (run_dir / "report.html").read_text()


def test_a_search_journal_line_nested_too_deep_or_not_a_trial_is_skipped(tmp_path):
    """``castrig explore`` resuming a folder reads its trials.jsonl: a line of ``[[[[...`` ended it
    in a RecursionError, a line ``5`` in a TypeError. They are skipped as a torn line is."""
    from castrig.explore.journal import SearchFolder

    folder = SearchFolder(tmp_path)
    good = ('{"event": "started", "n": 0, "kind": "search", "params": {}, "seed": 1, "recipe": "r", "profile": "p", '
            '"extra": {}}\n')
    folder.journal_path.write_text(good + DEEP + "\n5\n[1]\n")
    assert [t.number for t in folder.trials()] == [0]
